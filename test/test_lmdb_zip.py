"""The data sets users already have: the PyTorch original's LMDB and NVlabs' dataset_tool.py zips.

The LMDB fixture was written by the original's own prepare_data.py code path and the expected
values were read by the original's own MultiResolutionDataset (tools/make_lmdb_fixture.py, in a
throwaway environment with torch): here they must be matched without torch.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import lmdb

from dataset import DatasetError, MultiResolutionDataset, check_resolutions
from files import zip_data
from files.datasets import open_source
from files.lmdb_data import LmdbWriter, image_key
from resize import resize_path
from tools.make_lmdb_fixture import LMDB_FIXTURE, EXPECTED, reverse_images
from training.data_stream import ImageStream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(EXPECTED) as _f:
    EXPECTED_VALUES = json.load(_f)


def sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def listing(folder):
    """{relative path: (size, bytes digest)} of every file under ``folder``."""
    out = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "resize.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def assert_one_line_refusal(run, *words):
    assert run.returncode in (1, 2), run.stdout + run.stderr
    lines = run.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("resize.py: error:"), run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def original_lmdb(tmp_path):
    path = tmp_path / "data.lmdb"
    shutil.copytree(LMDB_FIXTURE, path)
    return str(path)


# --- the original's LMDB, read here -------------------------------------------------------------

def test_original_lmdb_gives_what_the_original_dataset_reads_at_every_size(original_lmdb):
    before = listing(original_lmdb)
    expected = EXPECTED_VALUES["prepare_data"]
    check_resolutions(original_lmdb, [8, 16, 32])
    source = open_source(original_lmdb)
    assert source.length == expected["length"] == 5
    for size in (8, 16, 32):
        ds = MultiResolutionDataset(original_lmdb, resolution=size, flip=False)
        assert ds.num_images == 5
        for index in range(5):
            want = expected["keys"][f"{size}-{index:05d}"]
            item = ds[index]
            assert list(item.shape) == want["shape"]
            assert sha256(item) == want["tensor_sha256"], f"{size}-{index:05d}"
            pixels = np.asarray(source.open_image(size, index))
            assert sha256(pixels) == want["pixels_sha256"]
    # read-only: no lock.mdb, nothing changed
    assert listing(original_lmdb) == before == {"data.mdb": before["data.mdb"]}


def test_resize_lmdb_is_read_by_the_original_as_committed(tmp_path):
    """resize.py --format lmdb on the tool's images: the original's MultiResolutionDataset read
    the keys of the same LMDB as the committed values (made in the throwaway environment)."""
    source = reverse_images(str(tmp_path / "src"))
    out = tmp_path / "made.lmdb"
    summary = resize_path(source, min_size=8, workers=1, progress=False, fmt="lmdb", out=str(out))
    assert summary.sizes == [8, 16, 32] and summary.written == 12
    assert sorted(os.listdir(out)) == ["data.mdb"]  # no lock.mdb left behind
    expected = EXPECTED_VALUES["resize_lmdb"]
    with lmdb.open(str(out), readonly=True, lock=False) as env, env.begin() as txn:
        keys = sorted(bytes(k).decode() for k in txn.cursor().iternext(values=False))
        assert keys == sorted(expected["keys"]) + ["length"]
        assert txn.get(b"length") == b"4"
        for key, want in expected["keys"].items():
            with Image.open(io.BytesIO(txn.get(key.encode()))) as img:
                assert img.format == "JPEG"
                pixels = np.asarray(img)
            tensor = ((pixels.astype(np.float32) / np.float32(255) - np.float32(0.5))
                      / np.float32(0.5)).transpose(2, 0, 1)
            assert sha256(pixels) == want["pixels_sha256"], key
            assert sha256(tensor) == want["tensor_sha256"], key


def test_loader_workers_each_open_the_lmdb_and_give_the_same_batches(original_lmdb):
    plain = MultiResolutionDataset(original_lmdb, resolution=16, flip=False, batch_size=2)
    workers = MultiResolutionDataset(original_lmdb, resolution=16, flip=False, batch_size=2,
                                     num_workers=2)
    try:
        expected = [b.numpy() for b in plain]
        got = [b.numpy() for b in workers]
    finally:
        workers.terminate()
    assert [b.shape for b in got] == [(2, 3, 16, 16), (2, 3, 16, 16), (1, 3, 16, 16)]
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(original_lmdb)) == ["data.mdb"]


def test_missing_lmdb_sizes_are_named_with_the_command_that_adds_them(original_lmdb):
    with pytest.raises(DatasetError) as error:
        check_resolutions(original_lmdb, [4, 8, 16, 32, 64, 128])
    message = str(error.value)
    assert "\n" not in message
    assert "lacks sizes 4, 64, 128 (it holds 8, 16, 32)" in message
    assert f"add them with: python resize.py {original_lmdb} --min_size 4" in message
    assert "64, 128 cannot be made from 32 px" in message and "--max_size 32" in message

    summary = resize_path(original_lmdb, min_size=4, workers=1, progress=False)
    assert summary.sizes == [4] and summary.written == 5
    check_resolutions(original_lmdb, [4, 8, 16, 32])
    assert sorted(os.listdir(original_lmdb)) == ["data.mdb"]
    # size 4 is made from 32, the largest size, as resize.py makes its folders
    with Image.open(io.BytesIO(open_source(original_lmdb).read_bytes(32, 2))) as img:
        want = np.asarray(img.convert("RGB").resize((4, 4), Image.LANCZOS))
    got = np.asarray(open_source(original_lmdb).open_image(4, 2))
    assert np.abs(got.astype(int) - want).max() <= 4  # JPEG at quality 100 rounds a little


def lmdb_with(path, entries):
    with lmdb.open(str(path), map_size=2 ** 20) as env, env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    os.remove(os.path.join(path, "lock.mdb"))
    return str(path)


def jpeg(size, colour=(10, 200, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


@pytest.mark.parametrize("entries, words", [
    ({b"8-00000": jpeg(8)}, ["no 'length' key", "still being written"]),
    ({b"8-00000": jpeg(8), b"length": b"many"}, ["'length' key holds b'many'"]),
    ({b"8-00000": jpeg(8), b"16-00000": jpeg(16), b"16-00001": jpeg(16), b"length": b"2"},
     ["lacks 1 of the 2 keys of size 8, e.g. 8-00001", "python resize.py"]),
    ({b"8-00000": jpeg(8), b"8-00001": b"#!/bin/sh\nrm -rf /\n", b"length": b"2"},
     ["key 8-00001 is not an image"]),
])
def test_bad_lmdb_is_one_line_and_nothing_is_written(tmp_path, entries, words):
    path = lmdb_with(tmp_path / "bad.lmdb", entries)
    before = listing(tmp_path)
    with pytest.raises(DatasetError) as error:
        check_resolutions(path, [8])
    for word in words:
        assert word in str(error.value)
    assert "\n" not in str(error.value)
    assert listing(tmp_path) == before
    if b"length" in entries and b"many" not in entries.values():
        return  # resize.py adds the sizes such an LMDB lacks
    assert_one_line_refusal(run_cli(path, "--min_size", "4", "--quiet"), *words)
    assert listing(tmp_path) == before


def test_lmdb_being_written_is_refused_and_left_alone(tmp_path):
    """prepare_data.py writes everything in one transaction: until it commits, a reader sees
    no 'length'. Here a transaction stays open while resize.py and the dataset look."""
    path = str(tmp_path / "writing.lmdb")
    with lmdb.open(path, map_size=2 ** 20) as env:
        with env.begin(write=True) as txn:
            txn.put(b"length", b"1")
        writing = env.begin(write=True)
        writing.put(b"8-00000", jpeg(8))
        try:
            run = run_cli(path, "--min_size", "4", "--quiet")
            assert_one_line_refusal(run, "no size with all of its 1 images", "still being written")
        finally:
            writing.abort()
    other = str(tmp_path / "empty.lmdb")
    with lmdb.open(other, map_size=2 ** 20) as env:
        writing = env.begin(write=True)
        writing.put(b"8-00000", jpeg(8))
        try:
            assert_one_line_refusal(run_cli(other, "--min_size", "4", "--quiet"),
                                    "no 'length' key", "still being written")
        finally:
            writing.abort()


def test_lmdb_writer_grows_its_map_as_the_data_grows(tmp_path, monkeypatch):
    from files import lmdb_data
    monkeypatch.setattr(lmdb_data, "INITIAL_MAP_BYTES", 64 * 1024)
    writer = LmdbWriter(str(tmp_path / "grown.lmdb"), create=True)
    rng = np.random.default_rng(0)
    values = [rng.bytes(40_000) for _ in range(20)]  # 800 kB into a 64 kB map
    for i, value in enumerate(values):
        writer.put(image_key(8, i), value)
        if i % 5 == 4:
            writer.flush()
    writer.finish(length=20)
    assert writer.map_size > 64 * 1024
    with lmdb.open(str(tmp_path / "grown.lmdb"), readonly=True, lock=False) as env:
        with env.begin() as txn:
            assert [txn.get(image_key(8, i)) for i in range(20)] == values
            assert txn.get(b"length") == b"20"


def test_resize_lmdb_refuses_an_existing_output(tmp_path):
    source = reverse_images(str(tmp_path / "src"))
    (tmp_path / "taken.lmdb").mkdir()
    before = listing(tmp_path)
    run = run_cli(source, "--format", "lmdb", "--out", tmp_path / "taken.lmdb", "--quiet")
    assert_one_line_refusal(run, "taken.lmdb exists")
    assert listing(tmp_path) == before


# --- dataset_tool.py zips -----------------------------------------------------------------------

def dataset_tool_zip(path, images, labels=True):
    """A zip in dataset_tool.py's layout: stored PNGs in numbered folders, dataset.json last."""
    names = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, pixels in enumerate(images):
            name = f"{index // 1000:05d}/img{index:08d}.png"
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="png", compress_level=0)
            archive.writestr(name, buffer.getvalue())
            names.append(name)
        archive.writestr("dataset.json", json.dumps(
            {"labels": [[name, i % 3] for i, name in enumerate(names)] if labels else None}))
    return str(path)


@pytest.fixture
def zip_and_folders(tmp_path):
    """The same seven 16 px images as data.zip and as the folder data_folders/16."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(7)]
    path = dataset_tool_zip(tmp_path / "data.zip", images)
    folders = tmp_path / "data_folders" / "16"
    folders.mkdir(parents=True)
    for index, pixels in enumerate(images):
        Image.fromarray(pixels).save(folders / f"img{index:08d}.png")
    return path, str(folders)


def test_zip_training_batches_equal_those_of_the_same_images_in_folders(zip_and_folders, capsys):
    path, folder = zip_and_folders
    with pytest.raises(DatasetError) as error:
        check_resolutions(path, [8, 16])
    assert f"add them with: python resize.py {path} --min_size 8" in str(error.value)

    summary = resize_path(path, min_size=8, workers=1, progress=False)
    assert summary.written == 7
    assert os.listdir(os.path.join(os.path.dirname(path), "data", "8"))[0].startswith("00000_img")
    resize_path(folder, min_size=8, workers=1, progress=False)
    capsys.readouterr()
    check_resolutions(path, [8, 16])
    notes = capsys.readouterr().err.strip().split("\n")
    assert len(notes) == 1 and "dataset.json has class labels for 7 images" in notes[0]
    assert "ignores them" in notes[0]

    for size in (8, 16):
        streams = [ImageStream(root, size, batch_size=3, seed=5)
                   for root in (path, os.path.dirname(folder))]
        try:
            for _ in range(4):  # past an epoch of 7 images
                (a, n), (b, m) = [stream.next() for stream in streams]
                assert n == m
                np.testing.assert_array_equal(a, b)
        finally:
            for stream in streams:
                stream.close()


def test_zip_without_labels_says_nothing_and_rerun_skips(tmp_path, capsys):
    images = [np.full((8, 8, 3), i * 30, np.uint8) for i in range(3)]
    path = dataset_tool_zip(tmp_path / "plain.zip", images, labels=False)
    first = resize_path(path, min_size=4, workers=1, progress=False)
    again = resize_path(path, min_size=4, workers=1, progress=False)
    assert (first.written, again.written, again.skipped) == (3, 0, 3)
    capsys.readouterr()
    check_resolutions(path, [4, 8])
    assert capsys.readouterr().err == ""
    ds = MultiResolutionDataset(path, resolution=8, flip=False)
    np.testing.assert_array_equal(ds[2], np.full((3, 8, 8), (60 / 255 - 0.5) / 0.5, np.float32))


def test_loader_workers_each_open_the_zip_and_give_the_same_batches(zip_and_folders):
    path, _ = zip_and_folders
    plain = MultiResolutionDataset(path, resolution=16, flip=False, batch_size=3)
    workers = MultiResolutionDataset(path, resolution=16, flip=False, batch_size=3,
                                     num_workers=2)
    try:
        expected = [b.numpy() for b in plain]
        got = [b.numpy() for b in workers]
    finally:
        workers.terminate()
    assert [b.shape[0] for b in got] == [3, 3, 1]
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def forged_size(path, member, size):
    """Rewrite the central directory entry of ``member`` to declare ``size`` bytes unpacked."""
    data = bytearray(open(path, "rb").read())
    entry = data.index(b"PK\x01\x02")
    while True:
        name_length = int.from_bytes(data[entry + 28:entry + 30], "little")
        if data[entry + 46:entry + 46 + name_length] == member.encode():
            data[entry + 24:entry + 28] = size.to_bytes(4, "little")
            break
        entry = data.index(b"PK\x01\x02", entry + 4)
    open(path, "wb").write(bytes(data))


def zip_of(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return str(path)


def png(size=8):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (1, 2, 3)).save(buffer, format="png")
    return buffer.getvalue()


def bad_zips(tmp):
    """(path, words in the one-line error) for each hostile or unfinished zip."""
    yield zip_of(tmp / "text.zip", {"00000/img0.png": png(), "notes.txt": b"hello"}), \
        ["'notes.txt' is not an image"]
    yield zip_of(tmp / "up.zip", {"00000/img0.png": png(), "../../evil.png": png()}), \
        ["'../../evil.png' points outside", "path traversal"]
    yield zip_of(tmp / "abs.zip", {"/etc/evil.png": png()}), ["points outside"]
    bomb = zip_of(tmp / "bomb.zip", {"00000/img0.png": png(), "00000/img1.png": png()})
    forged_size(bomb, "00000/img1.png", 2 ** 32 - 1)
    yield bomb, ["decompresses to 4294967295 bytes", "zip bomb"]
    yield zip_of(tmp / "fake.zip", {"00000/img0.png": png(), "00000/img1.png": b"MZ\x90\x00"}), \
        ["00000/img1.png is not an image"]
    cut = zip_of(tmp / "cut.zip", {"00000/img0.png": png(), "00000/img1.png": png()})
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[:data.index(b"PK\x01\x02")])  # no central directory yet
    yield cut, ["not a complete zip file", "still being written"]
    with open(tmp / "open.zip", "wb") as raw:  # a writer that has not closed the zip yet
        archive = zipfile.ZipFile(raw, "w")
        archive.writestr("00000/img00000000.png", png())
        raw.flush()
        yield str(tmp / "open.zip"), ["not a complete zip file"]
        archive.close()


def test_every_bad_zip_is_one_line_exit_2_and_nothing_is_written(tmp_path):
    for path, words in bad_zips(tmp_path):
        before = listing(tmp_path)
        with pytest.raises(DatasetError) as error:
            check_resolutions(path, [4, 8])
        assert "\n" not in str(error.value)
        for word in words:
            assert word in str(error.value), (path, str(error.value))
        run = run_cli(path, "--min_size", "4", "--quiet")
        assert_one_line_refusal(run, *words)
        assert run.returncode == 2
        assert listing(tmp_path) == before, path
        assert not os.path.exists(os.path.splitext(path)[0])  # no size folders


def test_a_real_deflate_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    monkeypatch.setattr(zip_data, "MAX_MEMBER_BYTES", 2 ** 20)
    path = zip_of(tmp_path / "zeros.zip", {"00000/img0.png": png(),
                                           "00000/img1.png": bytes(4 * 2 ** 20)})
    assert os.path.getsize(path) < 20_000
    with pytest.raises(DatasetError, match="decompresses to 4194304 bytes"):
        open_source(path)


def test_lmdb_and_zip_images_that_fail_to_decode_name_their_key(original_lmdb, tmp_path):
    path = zip_of(tmp_path / "trunc.zip", {"00000/img0.png": png(), "00000/img1.png": png()[:30]})
    ds = MultiResolutionDataset(path, resolution=8, flip=False)
    with pytest.raises(DatasetError, match=r"cannot read .*trunc.zip:00000/img1.png"):
        ds[1]


def test_a_zips_missing_sizes_are_made_once_as_resize_py_makes_them(tmp_path, capsys):
    from files.resizing import make_zip_sizes
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    path = dataset_tool_zip(tmp_path / "ds.zip", images)
    zipped = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert make_zip_sizes(path, [8, 16, 32], workers=2, progress=False) == [8, 16]
    assert "writing sizes 8, 16 beside it in" in capsys.readouterr().err
    check_resolutions(path, [8, 16, 32])
    folder = tmp_path / "ds"
    made = {size: {name: (folder / str(size) / name).read_bytes()
                   for name in sorted(os.listdir(folder / str(size)))} for size in (8, 16)}
    assert all(len(files) == 5 for files in made.values())
    # what resize.py writes for the same zip, elsewhere
    other = tmp_path / "copy.zip"
    shutil.copyfile(path, other)
    resize_path(str(other), min_size=8, workers=1, progress=False)
    for size in (8, 16):
        assert made[size] == {name: (tmp_path / "copy" / str(size) / name).read_bytes()
                              for name in made[size]}
    # a second call writes nothing; a zip written again is noticed; the zip is never written
    times = {p: os.stat(folder / "8" / p).st_mtime_ns for p in made[8]}
    assert make_zip_sizes(path, [8, 16, 32], progress=False) == []
    assert times == {p: os.stat(folder / "8" / p).st_mtime_ns for p in made[8]}
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == zipped
    os.utime(path)   # the zip is newer than the folders: its sizes are made again
    assert make_zip_sizes(path, [8], workers=1, progress=False) == [8]
    assert all(os.stat(folder / "8" / p).st_mtime_ns >= os.stat(path).st_mtime_ns for p in times)
    # not a zip: nothing to do here (the LMDB's and the folders' own checks say what they lack)
    assert make_zip_sizes(str(tmp_path / "missing"), [8], progress=False) == []


@pytest.mark.slow
def test_train_py_trains_on_a_zip_of_one_size_in_one_command(tmp_path):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    path = dataset_tool_zip(tmp_path / "ds.zip", images)
    zipped = hashlib.sha256(open(path, "rb").read()).hexdigest()
    command = [sys.executable, os.path.join(ROOT, "train.py"), path, "--init_size", "8",
               "--max_size", "16", "--iter", "2", "--phase", "1", "--batch", "2", "--width",
               "8", "--code_dim", "8", "--n_mlp", "1", "--sample_every", "100", "--save_every",
               "100"]
    run = subprocess.run(command + ["--out", str(tmp_path / "run")], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "writing sizes 8, 16 beside it in" in run.stderr
    assert sorted(os.listdir(tmp_path / "ds")) == ["16", "8"]
    assert len(os.listdir(tmp_path / "ds" / "8")) == 6
    with open(tmp_path / "run" / "log.csv") as f:
        assert len(f.read().strip().splitlines()) == 3   # a header and 2 iterations
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == zipped
    again = subprocess.run(command + ["--out", str(tmp_path / "run2")], capture_output=True,
                           text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and "writing sizes" not in again.stderr, again.stderr[-3000:]


@pytest.mark.slow
def test_train_py_names_the_missing_lmdb_sizes_and_writes_nothing(original_lmdb, tmp_path):
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), original_lmdb,
                          "--init_size", "8", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.strip().split("\n") if "error" in line]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "lacks sizes 64, 128 (it holds 8, 16, 32)" in lines[0]
    assert "--max_size 32" in lines[0]
    assert not out.exists() or not os.listdir(out)
    assert sorted(os.listdir(original_lmdb)) == ["data.mdb"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="OpenMPI's mpirun is not installed")
def test_mpi_ranks_each_open_the_lmdb_and_share_its_images(original_lmdb, tmp_path):
    script = (
        "import sys, hashlib; sys.path.insert(0, sys.argv[1]); from runtime.jittor_setup import setup; jt = setup()\n"
        "from dataset import MultiResolutionDataset\n"
        "ds = MultiResolutionDataset(sys.argv[2], resolution=8, flip=False, batch_size=2,"
        " shuffle=True)\n"
        "digests = [hashlib.sha256(x.tobytes()).hexdigest() for b in ds for x in b.numpy()]\n"
        "open('%s/rank%d.txt' % (sys.argv[3], jt.rank), 'w').write(' '.join(digests))\n"
    )
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    run = subprocess.run(["mpirun", "-np", "2", sys.executable, "-c", script, ROOT,
                          original_lmdb, str(tmp_path)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    want = {EXPECTED_VALUES["prepare_data"]["keys"][f"8-{i:05d}"]["tensor_sha256"]
            for i in range(5)}
    # 5 images in global batches of 2: one per rank per batch; the last is on both ranks
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert not set(ranks[0][:2]) & set(ranks[1][:2])
    assert set(ranks[0]) | set(ranks[1]) == want
    assert sorted(os.listdir(original_lmdb)) == ["data.mdb"]
