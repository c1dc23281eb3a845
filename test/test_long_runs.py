"""Long runs that lose nothing: signals, the rolling checkpoint, --resume, and faults
injected mid-run (SIGKILL inside a save, a full disk, an image that cannot be read).

The set-up is test_train.py's (8 and 16 px, 16 flat images per size, width 8, batch 4, phase 8:
iterations 1-5 at 8 px, 6-8 at 16 px), so Jittor's compiled operators are shared. Runs that must
be signalled or killed run as child processes with a time limit; the others call
``train.command_line`` or ``train.main`` in-process. "The same losses" is checked against one
uninterrupted run.
"""
import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import jittor as jt
import train
from files.checkpoint import load_checkpoint
from dataset import UnreadableImage
from helpers import children, flat_image_root
import train
from runtime.cli import UsageError
from train import build_parser, main
from training.data_stream import ImageStream
from training.loop import RollingCheckpoint
from training.run_folder import newest_training_checkpoint

# The tests marked slow train, or run train.py in a child process; the others stop before the
# first iteration.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 16
SIZES = (8, 16)
SMALL_RUN = ["--width", "8", "--code_dim", "8", "--n_mlp", "2", "--init_size", "8",
             "--max_size", "16", "--phase", "8", "--batch", "4", "--seed", "1",
             "--sample_every", "100"]
ITERATIONS = 8
AT_8_PX = 5                   # iterations before the run grows to 16 px
CHILD_TIMEOUT = 300           # seconds for a child run (about 20 s with a warm Jittor cache)
SLOW_ITERATION = 0.4          # seconds a child sleeps after each iteration, to be signalled


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """root/8 and root/16, each with 16 flat images of random colours."""
    return flat_image_root(tmp_path_factory.mktemp("data"), SIZES, N_IMAGES)


def args(data_root, out, *extra):
    return [data_root, *SMALL_RUN, "--out", str(out), *extra]


def read_log(out):
    with open(os.path.join(out, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def iteration_of(path):
    return int(load_checkpoint(str(path))["iteration"])


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    """log.csv rows of 8 uninterrupted iterations."""
    out = tmp_path_factory.mktemp("uninterrupted")
    main(build_parser().parse_args(args(data_root, out, "--iter", str(ITERATIONS))))
    return read_log(out)


def assert_same_losses(rows, reference):
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in reference]
    for mine, theirs in zip(rows, reference):
        for key in ("size", "alpha", "used_sample"):
            assert mine[key] == theirs[key]
        for key in ("g_loss", "d_loss", "grad_penalty"):
            assert float(mine[key]) == pytest.approx(float(theirs[key]), rel=1e-5, abs=1e-6)


CHILD = r"""
import sys, time
sys.path.insert(0, {root!r})
from runtime.jittor_setup import setup
jt = setup()
import train
from training.trainer import Trainer
if {slow!r}:
    original = Trainer.train_iteration
    def slow(self):
        result = original(self)
        time.sleep({slow!r})
        return result
    Trainer.train_iteration = slow
if {hang_in_save!r}:
    real_save, calls = jt.save, []
    def save(obj, path):  # the second train_state save: half a file, then hang (to be killed)
        if "train_state" in path:
            calls.append(path)
            if len(calls) == 2:
                with open(path, "wb") as f:
                    f.write(b"\x80\x04partial")
                time.sleep(600)
        real_save(obj, path)
    jt.save = save
train.command_line({argv!r})
"""


def start_child(argv, slow=0, hang_in_save=False, through_shell=False):
    """train.command_line(argv) in a child process. ``through_shell``: as the child of a shell, so
    that SIGKILL can end it without this process seeing a child killed by a signal (Jittor's SIGCHLD
    handler would end pytest: it tolerates children that exit or die of SIGTERM only)."""
    code = CHILD.format(root=ROOT, slow=slow, hang_in_save=hang_in_save, argv=list(argv))
    command = [sys.executable, "-c", code]
    if through_shell:
        command = ["sh", "-c", '"$@"; exit $?', "sh", *command]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def cli(argv):
    """train.py's command line in this process; returns its exit status."""
    return train.command_line(argv, leave=lambda status: status)


def wait_for(condition, child, what):
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not condition():
        if child.poll() is not None:
            out, err = child.communicate()
            pytest.fail(f"the child ended ({child.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            child.terminate()  # not SIGKILL: see start_child
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish(child):
    try:
        out, err = child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.terminate()
        try:
            out, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # it ignores SIGTERM once stopping: a hang, end it
            child.kill()  # (conftest.py keeps Jittor's SIGCHLD handler out of pytest)
            out, err = child.communicate()
        pytest.fail(f"the child did not end in {CHILD_TIMEOUT} s:\n{err[-3000:]}")
    return child.returncode, err


def log_rows(out):
    try:
        return len(read_log(out))
    except (OSError, csv.Error):
        return 0


# --- signals --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_saves_after_the_iteration_exits_143_and_resume_gives_the_same_losses(
        data_root, tmp_path, uninterrupted):
    command = args(data_root, tmp_path, "--iter", str(ITERATIONS), "--resume")
    child = start_child(command, slow=SLOW_ITERATION)
    wait_for(lambda: log_rows(tmp_path) >= 2, child, "two iterations")
    child.send_signal(signal.SIGTERM)
    code, err = finish(child)
    assert code == 143, err[-3000:]
    done = iteration_of(tmp_path / "checkpoint" / "train_state.model")
    assert 2 <= done < ITERATIONS and log_rows(tmp_path) == done
    assert (f"train.py: stopped at iteration {done} (SIGTERM); resume with --ckpt "
            f"{tmp_path / 'checkpoint' / 'train_state.model'}, or --resume") in err
    # the requeue: the very same command continues the run
    code, err = finish(start_child(command))
    assert code == 0, err[-3000:]
    assert f"--resume: {tmp_path / 'checkpoint' / 'train_state.model'} (iteration {done})" in err
    assert_same_losses(read_log(tmp_path), uninterrupted)


@pytest.mark.slow
def test_save_minutes_writes_the_rolling_checkpoint_on_time(data_root, tmp_path, monkeypatch):
    saved = []
    original = RollingCheckpoint.save

    def recording(self):
        saved.append(self.trainer.iteration)
        return original(self)

    monkeypatch.setattr(RollingCheckpoint, "save", recording)
    main(build_parser().parse_args(args(data_root, tmp_path / "default", "--iter", "3")))
    assert saved == [3]                 # 30 minutes: only the final save
    saved.clear()
    main(build_parser().parse_args(args(data_root, tmp_path / "often", "--iter", "3",
                                        "--save_minutes", "1e-6")))
    assert saved == [1, 2, 3]           # due after every iteration
    assert iteration_of(tmp_path / "often" / "checkpoint" / "train_state.model") == 3
    assert build_parser().parse_args(["data"]).save_minutes == 30


# --- faults while writing -------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_save_keeps_the_previous_one_and_resume_continues(
        data_root, tmp_path, uninterrupted):
    command = args(data_root, tmp_path, "--iter", str(ITERATIONS), "--save_every", "2",
                   "--resume")
    child = start_child(command, hang_in_save=True, through_shell=True)
    folder = tmp_path / "checkpoint"

    def half_written():
        return any(name.startswith(".train_state.model.") and
                   (folder / name).read_bytes() == b"\x80\x04partial"
                   for name in (os.listdir(folder) if folder.is_dir() else []))

    wait_for(half_written, child, "the second checkpoint save")
    (python,) = children(child.pid)
    os.kill(python, signal.SIGKILL)
    finish(child)
    assert child.returncode == 128 + signal.SIGKILL   # the shell's report of it
    assert iteration_of(folder / "train_state.model") == 2   # the save at 4 never replaced it
    code, err = finish(start_child(command))
    assert code == 0, err[-3000:]
    assert "(iteration 2): continuing to iteration 8" in err
    assert_same_losses(read_log(tmp_path), uninterrupted)


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_stops_with_one_line_and_keeps_the_last(
        data_root, tmp_path, monkeypatch, capsys):
    real_save, calls = jt.save, []

    def save(obj, path):
        if "train_state" in path:
            calls.append(path)
            if len(calls) == 2:
                with open(path, "wb") as f:
                    f.write(b"\x80\x04part")
                raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(jt, "save", save)
    assert cli(args(data_root, tmp_path, "--iter", "6", "--save_every", "2")) == 1
    state = tmp_path / "checkpoint" / "train_state.model"
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == (f"train.py: error: cannot write {state}: No space left on device (the "
                         f"disk is full: free some space); training stopped, the last "
                         f"checkpoint, {state} (iteration 2), is intact: resume with --resume "
                         f"once it can be written")
    assert iteration_of(state) == 2 and log_rows(tmp_path) == 4
    assert sorted(os.listdir(tmp_path / "checkpoint")) == ["000002.model", "000004.model",
                                                           "newest.txt", "train_state.model"]
    assert (tmp_path / "checkpoint" / "newest.txt").read_text() == "train_state.model\n"


@pytest.mark.slow
def test_a_full_disk_while_writing_log_csv_stops_with_one_line_and_keeps_the_checkpoint(
        data_root, tmp_path, monkeypatch, capsys):
    real_writerow = csv.DictWriter.writerow

    def writerow(self, row):  # the disk fills up when iteration 3's row is written
        if row.get("iteration") == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writerow(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", writerow)
    assert cli(args(data_root, tmp_path, "--iter", "6", "--save_every", "2")) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    state = tmp_path / "checkpoint" / "train_state.model"
    assert message.startswith(f"train.py: error: cannot write {tmp_path / 'log.csv'}: No space "
                              f"left on device")
    assert f"the last checkpoint, {state} (iteration 2), is intact" in message
    assert iteration_of(state) == 2 and log_rows(tmp_path) == 2


@pytest.mark.parametrize("make_unwritable", ["file", "read-only"])
def test_an_unwritable_out_is_one_line_and_exit_1(data_root, tmp_path, make_unwritable):
    out = tmp_path / "out"
    if make_unwritable == "file":
        out.write_text("not a folder")
    else:
        out.mkdir()
        os.chmod(out, 0o500)
        if os.access(out, os.W_OK):  # root writes anyway: a read-only bind mount is not here
            pytest.skip("running as root: a read-only folder is still writable")
    done = subprocess.run([sys.executable, "train.py", *args(data_root, out, "--iter", "1")],
                          capture_output=True, text=True, cwd=ROOT, timeout=CHILD_TIMEOUT)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train.py: error: cannot write {out}") and "Traceback" not in done.stderr


# --- an image that cannot be read mid-run ---------------------------------------------------------

def corrupt_copy(data_root, tmp_path):
    """A copy of the data whose 16 px images (first read at iteration 6) are all damaged."""
    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    for name in os.listdir(data / "16"):
        (data / "16" / name).write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    return data


@pytest.mark.slow
def test_an_unreadable_image_met_mid_run_saves_names_it_and_resume_continues(
        data_root, tmp_path, uninterrupted, capsys):
    data = corrupt_copy(data_root, tmp_path)
    out = tmp_path / "out"
    command = [str(data), *SMALL_RUN, "--out", str(out), "--iter", str(ITERATIONS), "--resume"]
    assert cli(command) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    state = out / "checkpoint" / "train_state.model"
    assert message.startswith(f"train.py: error: cannot read {data / '16'}{os.sep}img")
    assert message.endswith(f"training stopped, the state after iteration {AT_8_PX} is saved in "
                            f"{state}: then resume with --resume (the same command)")
    assert iteration_of(state) == AT_8_PX and log_rows(out) == AT_8_PX
    shutil.rmtree(data / "16")                 # the user replaces the files
    shutil.copytree(os.path.join(data_root, "16"), data / "16")
    assert cli(command) == 0
    assert_same_losses(read_log(out), uninterrupted)


@pytest.mark.slow
def test_an_unreadable_image_with_worker_processes_does_not_hang_and_says_which(
        data_root, tmp_path):
    data = corrupt_copy(data_root, tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "train.py", str(data), *SMALL_RUN, "--out", str(out),
                           "--iter", str(ITERATIONS), "--workers", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=CHILD_TIMEOUT)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train.py: error: cannot read {data / '16'}{os.sep}img")
    assert "Traceback" not in done.stderr
    assert iteration_of(out / "checkpoint" / "train_state.model") == AT_8_PX


def test_unreadable_image_is_named_by_the_stream_with_and_without_workers(data_root, tmp_path):
    data = corrupt_copy(data_root, tmp_path)
    for workers in (0, 2):
        stream = ImageStream(str(data), 16, 4, seed=1, workers=workers)
        try:
            with pytest.raises(UnreadableImage) as caught:
                stream.next()
        finally:
            stream.close()
        assert caught.value.path.startswith(str(data / "16"))
        assert stream.position == 0           # the batch is not counted as used


# --- --resume and run folders ---------------------------------------------------------------------

@pytest.mark.slow
def test_resume_twice_continues_and_another_run_in_the_folder_is_refused(
        data_root, tmp_path, uninterrupted, capsys):
    out = tmp_path / "run"
    first = args(data_root, out, "--iter", "4", "--resume")
    assert cli(first) == 0
    assert "--resume: no training checkpoint in" in capsys.readouterr().err
    assert cli(args(data_root, out, "--iter", str(ITERATIONS), "--resume")) == 0
    assert_same_losses(read_log(out), uninterrupted)
    assert cli(args(data_root, out, "--iter", str(ITERATIONS), "--resume")) == 0
    assert "(iteration 8): the run is complete, nothing to do" in capsys.readouterr().err
    # without --resume, the folder is not written over
    assert cli(args(data_root, out, "--iter", "2")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"train.py: error: --out {out} already holds a training run (checkpoint/train_state."
        f"model, checkpoint/train_step-2.model, log.csv): continue it with --resume (the same "
        f"command each time), or give a fresh --out")
    # --resume with another run's options: refused, nothing changed
    before = (out / "checkpoint" / "train_state.model").stat().st_mtime_ns
    with pytest.raises(UsageError, match=r"is from another run \(phase 8 there, 4 here\)"):
        main(build_parser().parse_args(args(data_root, out, "--iter", "9", "--resume") +
                                       ["--phase", "4"]))
    assert (out / "checkpoint" / "train_state.model").stat().st_mtime_ns == before
    # --ckpt of this run's own checkpoint continues it; another run's is refused
    other = tmp_path / "other"
    main(build_parser().parse_args(args(data_root, other, "--iter", "2", "--seed", "2")))
    with pytest.raises(UsageError, match=f"--out {out} holds another run"):
        main(build_parser().parse_args(args(data_root, out, "--iter", "9", "--ckpt",
                                            str(other / "checkpoint" / "train_state.model"))))
    end = main(build_parser().parse_args(args(
        data_root, out, "--iter", "9", "--ckpt", str(out / "checkpoint" / "train_state.model"))))
    assert end.trainer.iteration == 9
    with pytest.raises(UsageError, match="--resume and --ckpt exclude each other"):
        main(build_parser().parse_args(args(data_root, out, "--resume", "--ckpt", "x")))


def make_newest_by_time(path):
    """Give ``path`` a time written 1 s after the newest file beside it (a copy has just written
    them all, however long that took)."""
    newest = max(entry.stat().st_mtime_ns for entry in path.parent.iterdir())
    os.utime(path, ns=(newest + 10**9, newest + 10**9))


@pytest.mark.slow
def test_resume_of_a_copied_folder_continues_from_its_newest_checkpoint_not_the_newest_file(
        data_root, tmp_path, uninterrupted, capsys):
    """A copy (cp -r, scp, a download after preemption) gives the files new times in any order:
    --resume goes by checkpoint/newest.txt, which train.py writes with each training checkpoint,
    and by time written only without it (or when it names nothing usable)."""
    out = tmp_path / "run"
    assert cli(args(data_root, out, "--iter", "7")) == 0     # train_step-2 at 5, train_state at 7
    folder = out / "checkpoint"
    assert (folder / "newest.txt").read_text() == "train_state.model\n"
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, copy_function=shutil.copyfile)   # file times not kept
    make_newest_by_time(copy / "checkpoint" / "train_step-2.model")
    assert cli(args(data_root, copy, "--iter", str(ITERATIONS), "--resume")) == 0
    err = capsys.readouterr().err
    assert f"--resume: {copy / 'checkpoint' / 'train_state.model'} (iteration 7)" in err
    assert_same_losses(read_log(copy), uninterrupted)
    # without it, or with one that names nothing of train.py's, by time: the snapshot
    for content in (None, b"../../log.csv\n", b"\xff\xfe", b"000004.model\n"):
        again = tmp_path / f"again{len(content or b'')}"
        shutil.copytree(out, again, copy_function=shutil.copyfile)
        make_newest_by_time(again / "checkpoint" / "train_step-2.model")
        newest = again / "checkpoint" / "newest.txt"
        newest.unlink() if content is None else newest.write_bytes(content)
        assert newest_training_checkpoint(str(again))[0] == str(
            again / "checkpoint" / "train_step-2.model")


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_still_saves_and_exits_143(data_root, tmp_path):
    """As SLURM's scancel or ``timeout`` send it: the signal also reaches the children Jittor
    and multiprocessing keep (compiler pool, loader workers), whose ends Jittor's SIGCHLD handler
    would turn into exit 1 at shutdown (train.leave_process)."""
    command = [sys.executable, os.path.join(ROOT, "train.py"),
               *args(data_root, tmp_path, "--iter", "100000", "--workers", "2")]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    wait_for(lambda: log_rows(tmp_path) >= 2, child, "two iterations")
    os.killpg(child.pid, signal.SIGTERM)
    code, err = finish(child)
    assert code == 143, err[-3000:]
    assert "Caught SIGCHLD" not in err
    done = iteration_of(tmp_path / "checkpoint" / "train_state.model")
    assert done >= 2 and f"train.py: stopped at iteration {done} (SIGTERM)" in err


@pytest.mark.slow
def test_ctrl_z_and_a_stopped_worker_do_not_end_the_run(data_root, tmp_path):
    """Ctrl-Z (SIGTSTP to the whole process group) then ``fg`` (SIGCONT), and a job scheduler's
    SIGSTOP / SIGCONT of one loader worker: Jittor's SIGCHLD handler took a stopped child for
    a dead one and ended the run at once, nothing saved (jittor_setup.ignore_stopped_children)."""
    command = [sys.executable, os.path.join(ROOT, "train.py"),
               *args(data_root, tmp_path, "--iter", str(ITERATIONS), "--workers", "2")]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    wait_for(lambda: log_rows(tmp_path) >= 1 and children(child.pid), child, "one iteration")
    os.killpg(child.pid, signal.SIGTSTP)
    time.sleep(1.0)
    os.killpg(child.pid, signal.SIGCONT)
    worker = children(child.pid)[0]
    os.kill(worker, signal.SIGSTOP)
    time.sleep(1.0)
    os.kill(worker, signal.SIGCONT)
    code, err = finish(child)
    assert "Caught SIGCHLD" not in err
    assert code == 0, err[-3000:]
    assert [int(row["iteration"]) for row in read_log(tmp_path)] == list(range(1, ITERATIONS + 1))


LOCK_WAITER = """
import ctypes, fcntl, os, struct, sys
sys.path.insert(0, sys.argv[1])
from training.stopping import StopRequest
fd = os.open(sys.argv[2], os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
lock = ctypes.create_string_buffer(struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0), 64)
with StopRequest() as stop:
    print("waiting", flush=True)
    result = libc.fcntl(fd, fcntl.F_SETLKW, lock)   # in C, as Jittor waits for its cache lock
    print(result, ctypes.get_errno(), stop.requested, flush=True)
"""


@pytest.mark.slow
def test_a_signal_while_waiting_for_a_file_lock_in_c_is_noted_and_the_wait_goes_on(tmp_path):
    """Jittor waits for its cache lock with fcntl(F_SETLKW) and treats EINTR as an error; under
    StopRequest the signal handlers restart such calls (SA_RESTART), so a SIGTERM during the
    wait is kept for after the iteration instead of ending the process with exit 1."""
    import fcntl
    path = tmp_path / "lock"
    path.write_bytes(b"")
    with open(path, "r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-c", LOCK_WAITER, ROOT, str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline() == "waiting\n", child.stderr.read()
            time.sleep(0.5)                  # in fcntl by now
            child.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert child.poll() is None      # still waiting
        finally:
            fcntl.lockf(held, fcntl.LOCK_UN)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.split() == ["0", "0", "True"]   # got the lock, no EINTR, the stop was noted
