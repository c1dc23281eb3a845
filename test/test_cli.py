"""cli.py and every script's command line: exit 2 for a bad flag value, 1 for a
failure at run time (a file that cannot be read or written, a full disk), 130 for Ctrl-C, 143
for SIGTERM; each error one line, never a traceback."""
import argparse
import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from runtime import cli
from files.atomic import WriteError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT_TIMEOUT = 300
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def exit_of(action, capsys, failures=()):
    with pytest.raises(SystemExit) as caught:
        cli.run(argparse.ArgumentParser(prog="x.py"), action, failures=failures)
    return caught.value.code, capsys.readouterr().err


def raising(error):
    def action():
        raise error
    return action


def test_run_maps_errors_and_signals_to_the_exit_codes(capsys):
    assert exit_of(lambda: None, capsys) == (0, "")
    assert exit_of(raising(cli.UsageError("--n must be at least 1")), capsys) \
        == (2, "x.py: error: --n must be at least 1\n")
    assert exit_of(raising(KeyError("k")), capsys, failures=(KeyError,)) == (1, "x.py: error: 'k'\n")
    full = WriteError("cannot write a.png: No space left on device", errno.ENOSPC)
    assert exit_of(raising(full), capsys) == (1, f"x.py: error: {full}\n")
    assert exit_of(raising(KeyboardInterrupt()), capsys) == (130, "x.py: interrupted (Ctrl-C)\n")
    assert exit_of(raising(cli.Stopped("stopped at iteration 3 (SIGINT)")), capsys) \
        == (130, "x.py: stopped at iteration 3 (SIGINT)\n")
    assert exit_of(raising(cli.Stopped("stopped at iteration 3 (SIGTERM)", terminated=True)),
                   capsys) == (143, "x.py: stopped at iteration 3 (SIGTERM)\n")

    def terminated():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert exit_of(terminated, capsys) == (143, "x.py: stopped by SIGTERM\n")
    assert time.monotonic() - started < 5 and signal.getsignal(signal.SIGTERM) == before


def test_input_errors_turn_the_named_types_into_exit_2_and_leave_others(capsys):
    def wrong_file():
        with cli.input_errors(KeyError):
            raise KeyError("a.model: a discriminator only, no generator")
    assert exit_of(wrong_file, capsys, failures=(KeyError,)) \
        == (2, "x.py: error: 'a.model: a discriminator only, no generator'\n")

    def other_failure():
        with cli.input_errors(KeyError):
            raise OSError("disk gone")
    assert exit_of(other_failure, capsys, failures=(OSError,)) == (1, "x.py: error: disk gone\n")


def test_run_is_silent_where_it_must_not_speak_and_leaves_as_told(capsys):
    """Under MPI only rank 0 speaks; train.py leaves through its own exit."""
    left = []
    cli.run(argparse.ArgumentParser(prog="x.py"), raising(cli.UsageError("bad")), speaks=False,
            leave=left.append)
    assert left == [2] and capsys.readouterr().err == ""


def test_write_error_survives_a_process_pool():
    import pickle
    error = pickle.loads(pickle.dumps(WriteError("cannot write x: full", errno.ENOSPC)))
    assert str(error) == "cannot write x: full" and error.errno == errno.ENOSPC


def script(name, *argv, cwd=ROOT):
    """Run a top-level script by its path, or a tool (``tools/x.py``) as ``python -m tools.x``."""
    if name.startswith("tools/"):
        command = ["-m", name[:-len(".py")].replace("/", ".")]
    else:
        command = [os.path.join(ROOT, name)]
    done = subprocess.run([sys.executable, *command, *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, timeout=SCRIPT_TIMEOUT)
    return done.returncode, done.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import jittor as jt
    from files.checkpoint import atomic_save
    from model import StyledGenerator
    jt.set_global_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.model"
    atomic_save(StyledGenerator(code_dim=8, n_mlp=2, width=8).state_dict(), str(path))
    return path


@pytest.mark.slow
def test_bad_flag_values_exit_2_with_one_line_in_every_script(tmp_path, tiny_checkpoint):
    cases = [
        (("generate.py", tiny_checkpoint, "--seed", "-1"),
         "generate.py: error: --seed must be an integer from 0 to 2**32 - 1, got -1"),
        (("generate.py", tiny_checkpoint, "--seed", 2 ** 32),
         f"generate.py: error: --seed must be an integer from 0 to 2**32 - 1, got {2 ** 32}"),
        (("evaluate.py", tmp_path, "--real-vs-real", "--seed", 2 ** 32),
         f"evaluate.py: error: --seed must be an integer from 0 to 2**32 - 1, got {2 ** 32}"),
        (("tools/bench_data.py", tmp_path, "--steps", "0"),
         "bench_data.py: error: --steps must be at least 1, got 0"),
        (("build_emoji.py", tmp_path / "emoji", "--limit", "0"),
         "build_emoji.py: error: --limit must be at least 1 (leave it out for all), got 0"),
        (("train.py", tmp_path, "--save_minutes", "-1"),
         "train.py: error: --save_minutes must be a number >= 0 (0: only every --save_every "
         "iterations), got -1.0"),
    ]
    for argv, line in cases:
        code, err = script(*argv)
        assert (code, err[-1:]) == (2, [line]), (argv, err)
        assert not any("Traceback" in e for e in err)
    assert not (tmp_path / "emoji").exists()


@pytest.mark.slow
def test_a_checkpoint_without_a_generator_exits_2_in_the_latent_tools(tmp_path):
    from files.checkpoint import atomic_save
    no_generator = tmp_path / "d_only.model"
    atomic_save({"discriminator": {"progression.0.conv.0.weight": np.zeros((1, 1), "float32")}},
                str(no_generator))
    image = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(image)
    for argv in (("projector.py", no_generator, image, "--out", tmp_path / "p", "--size", "8"),
                 ("directions.py", no_generator, "--out", tmp_path / "d.npz")):
        code, err = script(*argv)
        assert code == 2 and len(err) == 1, (argv, err)
        assert err[0].startswith(f"{argv[0]}: error: {no_generator}"), err
    assert not (tmp_path / "p").exists() and not (tmp_path / "d.npz").exists()


@pytest.mark.slow
def test_run_time_failures_exit_1_with_one_line_in_every_script(tmp_path, tiny_checkpoint):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = script("generate.py", tiny_checkpoint, "--out", blocker, "--n_mixing", "0",
                       "--size", "8", "--n_mean_latents", "8")
    assert code == 1 and err[-1].startswith(f"generate.py: error: cannot write {blocker}")
    code, err = script("tools/bench_data.py", tmp_path / "missing", "--sizes", "8")
    assert code == 1 and err[-1].startswith("bench_data.py: error: missing or empty resolution "
                                            f"folders: {tmp_path / 'missing' / '8'}")
    code, err = script("build_emoji.py", blocker, "--limit", "1")
    assert code == 1 and err == [f"build_emoji.py: error: cannot write {blocker / '128'}: "
                                 f"Not a directory (a file is in the way where a folder should "
                                 f"be: choose another folder)"]
    (tmp_path / "img" / "16").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(tmp_path / "img" / "16" / "a.png")
    (tmp_path / "img" / "8").write_text("")
    code, err = script("resize.py", tmp_path / "img" / "16")
    assert code == 2 and err == [f"resize.py: error: {tmp_path / 'img' / '8'} exists and is not "
                                 f"a folder"]


def test_a_full_disk_while_resizing_is_one_line_and_keeps_the_old_image(tmp_path, monkeypatch,
                                                                          capsys):
    import resize
    (tmp_path / "16").mkdir()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "16" / "a.png")
    assert resize.resize_folder(str(tmp_path / "16"), 8, workers=1, progress=False).written == 1
    old = (tmp_path / "8" / "a.png").read_bytes()
    Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / "16" / "a.png")
    os.utime(tmp_path / "16" / "a.png", (time.time() + 10, time.time() + 10))  # newer: redo it

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    code, err = exit_of(lambda: resize.resize_folder(str(tmp_path / "16"), 8, workers=1,
                                                     progress=False), capsys)
    assert code == 1 and err == (f"x.py: error: cannot write {tmp_path / '8' / 'a.png'}: No space "
                                 f"left on device (the disk is full: free some space)\n")
    assert (tmp_path / "8" / "a.png").read_bytes() == old
    assert sorted(os.listdir(tmp_path / "8")) == ["a.png"]


def test_decompression_bombs_are_one_line_naming_the_file(tmp_path, monkeypatch):
    import evaluate
    from dataset import MultiResolutionDataset, UnreadableImage
    (tmp_path / "16").mkdir()
    path = tmp_path / "16" / "big.png"
    Image.new("RGB", (16, 16)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)   # 256 pixels > 2 x 16: a "bomb"
    dataset = MultiResolutionDataset(str(tmp_path), resolution=16)
    with pytest.raises(UnreadableImage, match=f"cannot read {path} \\(DecompressionBombError"):
        dataset[0]
    with pytest.raises(evaluate.EvaluateError, match=f"cannot read {path} "
                                                     f"\\(DecompressionBombError"):
        evaluate.read_images([str(path)], 16)


def test_fonts_that_cannot_make_colour_emoji_are_refused(tmp_path):
    from build_emoji import load_font
    collection = tmp_path / "fonts.ttc"
    collection.write_bytes(b"ttcf" + bytes(60))
    with pytest.raises(cli.UsageError, match=f"{collection} is a font collection \\(.ttc\\)"):
        load_font(str(collection))
    if not os.path.isfile(DEJAVU):
        pytest.skip(f"{DEJAVU} not installed (fonts-dejavu-core)")
    with pytest.raises(cli.UsageError, match=f"{DEJAVU} has no colour glyphs"):
        load_font(DEJAVU)
    garbage = tmp_path / "garbage.ttf"
    garbage.write_bytes(b"\x00\x01")
    with pytest.raises(cli.UsageError, match=f"cannot read {garbage} as an OpenType font"):
        load_font(str(garbage))


def _forked_child_of_run():
    """In a process forked while cli.run's handler is installed: SIGTERM must end it."""
    ready, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(ready_w, b"x")   # running Python code: a signal now is not lost in the fork
        time.sleep(30)
        os._exit(0)
    os.read(ready, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_a_process_forked_under_run_dies_of_sigterm_instead_of_raising(capsys):
    """Worker pools forked by a script (Jittor's compiler pool, multiprocessing) end their
    workers with SIGTERM; a worker that raised Terminated instead was waited for forever."""
    ended = []
    assert exit_of(lambda: ended.append(_forked_child_of_run()), capsys) == (0, "")
    assert ended == [True]
