"""The run folder (training.run_folder): which files are a run's, which checkpoint --resume takes,
how far newest.txt is trusted, and how a checkpoint's run differs from the one asked for."""
import os

import numpy as np
import pytest

from files.checkpoint import TRAINING_CHECKPOINT_KEYS, atomic_save
from training.config import TrainConfig
from training.run_folder import (named_newest, newest_training_checkpoint, run_differences,
                                 run_files)


def training_checkpoint(iteration, **args):
    """A small dict with every key of a training checkpoint."""
    obj = {key: {"w": np.zeros(1, np.float32)} for key in TRAINING_CHECKPOINT_KEYS}
    obj.update(step=1, alpha=1.0, used_sample=0, iteration=iteration, args=dict(args))
    return obj


def set_time(path, seconds):
    os.utime(path, ns=(seconds * 10 ** 9, seconds * 10 ** 9))


def test_run_files_are_train_py_checkpoint_names_and_a_log_with_rows(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    for name in ("train_state.model", "train_step-3.model", "000120.model", "notes.model",
                 "train_state.model.tmp", "train_step-x.model", "newest.txt", "a.000120.model"):
        (folder / name).write_bytes(b"x")
    (tmp_path / "log.csv").write_text("iteration,size\n")       # a header only: no run yet
    expected = [str(folder / n) for n in ("000120.model", "train_state.model",
                                          "train_step-3.model")]
    assert run_files(str(tmp_path)) == expected
    (tmp_path / "log.csv").write_text("iteration,size\n1,8\n")
    assert run_files(str(tmp_path)) == expected + [str(tmp_path / "log.csv")]
    assert run_files(str(tmp_path / "elsewhere")) == []


@pytest.mark.parametrize("content", [
    b"../train_state.model\n",                    # outside the folder, though it exists
    b"train_state.mod\xc3\xa9l\n",                 # not ASCII
    b"000120.model\n",                             # a generator checkpoint, not a training one
    b"train_step-7.model\n",                       # a name that does not exist
    b"/etc/passwd\n",
    b"",
])
def test_named_newest_trusts_only_train_py_names_of_existing_files(tmp_path, content):
    folder = tmp_path / "run" / "checkpoint"
    folder.mkdir(parents=True)
    for name in ("train_state.model", "000120.model"):
        (folder / name).write_bytes(b"x")
    (tmp_path / "run" / "train_state.model").write_bytes(b"x")
    (folder / "newest.txt").write_bytes(content)
    assert named_newest(str(folder)) is None
    (folder / "newest.txt").write_bytes(b"train_state.model\n")
    assert named_newest(str(folder)) == str(folder / "train_state.model")
    os.remove(folder / "newest.txt")
    assert named_newest(str(folder)) is None


def test_newest_training_checkpoint_is_the_named_one_then_the_latest_written_that_loads(
        tmp_path, capsys):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    state, snapshot = folder / "train_state.model", folder / "train_step-2.model"
    atomic_save(training_checkpoint(8, width=8), str(state))
    atomic_save(training_checkpoint(5, width=8), str(snapshot))
    atomic_save({"generator.w": np.zeros(1, np.float32)}, str(folder / "000009.model"))
    set_time(state, 1_000)
    set_time(snapshot, 2_000)                     # copied later, so newer on disk
    set_time(folder / "000009.model", 3_000)      # never a training checkpoint
    path, obj = newest_training_checkpoint(str(tmp_path))
    assert (path, obj["iteration"]) == (str(snapshot), 5)     # no newest.txt: by time
    (folder / "newest.txt").write_text("train_state.model\n")
    path, obj = newest_training_checkpoint(str(tmp_path))
    assert (path, obj["iteration"]) == (str(state), 8)        # the named one first
    assert obj["args"] == {"width": 8}
    state.write_bytes(b"\x80\x04damaged")                     # the named one is damaged
    path, obj = newest_training_checkpoint(str(tmp_path))
    assert (path, obj["iteration"]) == (str(snapshot), 5)
    assert f"--resume passes over {state}" in capsys.readouterr().err
    atomic_save({"generator": {}}, str(snapshot))             # loads, but not a training one
    assert newest_training_checkpoint(str(tmp_path)) is None
    assert newest_training_checkpoint(str(tmp_path / "empty")) is None


def test_run_differences_name_each_run_defining_option_and_the_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(data, tmp_path / "link")
    config = TrainConfig(path=str(data), width=8, lr=0.002, seed=4)
    same = config.run_args()
    assert run_differences(config, same) == []
    # the same folder by another name; how a run started (fade-in) and the run length do not
    # make it another run
    assert run_differences(config, dict(same, path=str(tmp_path / "link"), iter=5,
                                        fade_in_initial=True, out="elsewhere")) == []
    other = dict(same, width=16, lr=0.001, loss="wgan-gp", seed=5, path=str(tmp_path / "x"))
    assert run_differences(config, other) == [
        "lr 0.001 there, 0.002 here", "loss 'wgan-gp' there, 'r1' here",
        "width 16 there, 8 here", "seed 5 there, 4 here",
        f"data {tmp_path / 'x'} there, {data} here"]
    # no --seed given: the checkpoint's seed is taken, not a difference
    unseeded = TrainConfig(path=str(data), width=8, lr=0.002)
    assert run_differences(unseeded, dict(same, seed=5)) == []
    # options an older checkpoint lacks are not differences
    assert run_differences(config, {"width": 8}) == []
