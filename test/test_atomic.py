"""atomic.py: a write either completes or leaves the previous file; failures are one line."""
import errno
import os

import pytest

from files.atomic import WriteError, atomic_write, make_folder


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "log.csv"
    with atomic_write(str(path)) as temporary:
        with open(temporary, "w") as f:
            f.write("new")
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["log.csv"]


def test_a_full_disk_mid_write_keeps_the_previous_file_and_says_so_in_one_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old")
    with pytest.raises(WriteError) as caught:
        with atomic_write(str(path)) as temporary:
            with open(temporary, "w") as f:
                f.write("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(caught.value)
    assert message == (f"cannot write {path}: No space left on device (the disk is full: free "
                       f"some space)")
    assert caught.value.errno == errno.ENOSPC and "\n" not in message
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["log.csv"]


def test_other_exceptions_pass_through_and_keep_the_previous_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(str(path), suffix=".png") as temporary:
            assert temporary.endswith(".png")
            with open(temporary, "wb") as f:
                f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.png"]


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("")
    with pytest.raises(WriteError, match=f"cannot write {blocker}.*a file is in the way"):
        make_folder(str(blocker / "checkpoint"))
    with pytest.raises(WriteError, match="a file is in the way"):
        make_folder(str(blocker))
    with pytest.raises(WriteError, match=f"cannot write {blocker}"):
        with atomic_write(str(blocker / "x.csv")):
            pass
