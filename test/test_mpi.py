"""train.py under MPI: ``mpirun -np 2`` on the CPU trains one model on two processes.

``test/mpi_train_run.py`` runs under ``mpirun`` (as root and oversubscribed where needed) and
trains a narrow model (width 8, code_dim 8, 2 mapping layers) for 3 iterations on a global batch
of 8, so each rank takes 4 images: two iterations at 8 px, then growth to 16 px. It runs again
stopped after 2 iterations and resumed from the checkpoint. What must hold: every rank starts
from the same weights and holds identical generator, discriminator and g_running parameters
at the end; the losses equal those of one process on the same global batches; the resumed run
equals the uninterrupted one; each rank's data is its share of the global batch.

The minibatch-stddev layer of the discriminator is computed over the images one process sees:
under MPI that is its share of the global batch (as PyTorch's DataParallel in the reference).
So "one process on the same global batch" means one process that runs the discriminator on each
rank's share separately and concatenates the scores; that is what data parallelism computes,
since every loss is a mean over images and the ranks' gradients are averaged. Everything else
(generator, R1 penalty, losses) is per image.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jittor as jt
import model
import train
from files.checkpoint import load_checkpoint
from helpers import children
from train import build_parser
from training.config import ConfigError, TrainConfig, validate
from training.data_stream import ImageStream, rank_share
from training.run_folder import LOG_FILE, TRAIN_STATE_FILE
from training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "test", "mpi_train_run.py")
WORLD_SIZE = 2
N_IMAGES = 16
SIZES = (8, 16)
BATCH = 8                      # global: 4 images per rank
ITERATIONS, RESUME_AT = 3, 2
# phase 4: iterations 1-2 at 8 px (used_sample 0, 8 is not > 2 x 4), iteration 3 grows to 16 px
FLAGS = ["--width", "8", "--code_dim", "8", "--n_mlp", "2", "--init_size", "8", "--max_size",
         "16", "--phase", "4", "--batch", str(BATCH), "--seed", "5", "--sample_every", "1",
         "--save_every", "100"]
MPI_TIMEOUT = 600              # seconds; about 40 s with a warm Jittor cache
LOSS_RTOL = 1e-4
NETWORKS = ("generator", "discriminator", "g_running")

needs_mpirun = pytest.mark.skipif(
    shutil.which("mpirun") is None,
    reason="mpirun not found: install OpenMPI (openmpi-bin, libopenmpi-dev; make install)")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """root/8 and root/16, each with 16 two-tone images of random colours."""
    root = tmp_path_factory.mktemp("mpi_data")
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, (N_IMAGES, 2, 3))
    for size in SIZES:
        (root / str(size)).mkdir()
        for i, (left, right) in enumerate(colours):
            pixels = np.empty((size, size, 3), np.uint8)
            pixels[:, :size // 2], pixels[:, size // 2:] = left, right  # flips change it
            Image.fromarray(pixels).save(root / str(size) / f"img{i:02d}.png")
    return str(root)


@pytest.fixture(scope="module")
def mpi_run(data_root, tmp_path_factory):
    """Runs mpi_train_run.py on 2 processes; returns its dump folder."""
    dump = tmp_path_factory.mktemp("mpi_dump")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(WORLD_SIZE),
               sys.executable, RUNNER, str(dump), data_root, str(ITERATIONS), str(RESUME_AT),
               *FLAGS]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=MPI_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-5000:]}"
    return dump


def load(dump, run, rank):
    with np.load(dump / f"{run}_rank{rank}.npz") as f:
        return {k: f[k] for k in f.files}


def read_log(out):
    with open(os.path.join(out, LOG_FILE)) as f:
        return f.read().splitlines()[1:]


# --- what needs no MPI ---------------------------------------------------------------------------

def test_a_batch_that_the_processes_cannot_share_equally_is_refused(monkeypatch):
    monkeypatch.setattr(jt, "world_size", 3)
    with pytest.raises(ConfigError, match="global batch at 8 px \\(8, from --batch\\) is not a "
                                         "multiple of the 3 MPI processes.*--batch a multiple"):
        validate(TrainConfig(path="data", init_size=8, max_size=8, batch=8))
    with pytest.raises(ConfigError, match="at 8 px \\(256, from the batch table"):
        validate(TrainConfig(path="data", init_size=8, max_size=128))
    validate(TrainConfig(path="data", init_size=8, max_size=128, batch=24))


def test_help_says_the_batch_is_global():
    text = " ".join(build_parser().format_help().split())
    assert "global batch" in text and "batch / N" in text


# --- mpirun -np 2 ----------------------------------------------------------------------------------

@pytest.mark.slow
@needs_mpirun
def test_ranks_start_from_the_same_weights_and_stay_identical(mpi_run):
    for run in ("full", "resumed"):
        rank0, rank1 = load(mpi_run, run, 0), load(mpi_run, run, 1)
        assert rank0.keys() == rank1.keys()
        for net in NETWORKS:
            for when in ("initial", "final"):
                assert any(k.startswith(f"{when}/{net}/") for k in rank0)
        for key in rank0:  # generator, discriminator and g_running, at the start and the end
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=f"{run}: {key}")
        moved = [k for k in rank0 if k.startswith("final/g_running/")
                 and not np.array_equal(rank0[k], rank0[k.replace("final/", "initial/")])]
        assert moved  # the moving average was updated, identically on both ranks


@pytest.mark.slow
@needs_mpirun
def test_each_rank_reads_its_share_of_every_global_batch(mpi_run, data_root):
    from mpi_train_run import STREAM_BATCH, STREAM_BATCHES, STREAM_SEED, STREAM_SIZE
    stream = ImageStream(data_root, STREAM_SIZE, STREAM_BATCH, STREAM_SEED)
    batches = [stream.next() for _ in range(STREAM_BATCHES)]  # one process: global batches
    stream.close()
    assert [images for _, images in batches] == [6, 6, 4, 6]  # 16 images: a short third one
    for rank in range(WORLD_SIZE):
        with np.load(mpi_run / f"stream_rank{rank}.npz") as mine:
            assert list(mine["images"]) == [6, 6, 4, 6]  # every rank counts the global images
            for i, (batch, images) in enumerate(batches):
                share = rank_share(images, STREAM_BATCH, rank, WORLD_SIZE)
                np.testing.assert_array_equal(mine[f"batch{i}"], batch[share])


@pytest.mark.slow
@needs_mpirun
def test_losses_equal_one_process_on_the_same_global_batches(mpi_run, data_root, tmp_path,
                                                              monkeypatch):
    execute = model.Discriminator.execute

    def per_rank_share(self, input, step=0, alpha=-1):  # the stddev grouping of 2 processes
        n = input.shape[0]
        shares = [rank_share(n, BATCH, r, WORLD_SIZE) for r in range(WORLD_SIZE)]
        return jt.concat([execute(self, input[s.start:s.stop], step=step, alpha=alpha)
                          for s in shares])

    monkeypatch.setattr(model.Discriminator, "execute", per_rank_share)
    losses, initial = [], {}
    iteration = Trainer.train_iteration

    def recording(trainer):
        if not initial:
            initial.update({f"initial/{net}/{name}": p.numpy().copy() for net in NETWORKS
                            for name, p in getattr(trainer, net).named_parameters()})
        result = iteration(trainer)
        losses.append((result.g_loss, result.d_loss, result.grad_penalty))
        return result

    monkeypatch.setattr(Trainer, "train_iteration", recording)
    train.main(build_parser().parse_args([data_root, *FLAGS, "--iter", str(ITERATIONS),
                                          "--out", str(tmp_path)]))
    mpi = load(mpi_run, "full", 0)
    for key, value in initial.items():  # the same seed gives the same first weights
        np.testing.assert_array_equal(mpi[key], value, err_msg=key)
    np.testing.assert_allclose(mpi["losses"], np.array(losses), rtol=LOSS_RTOL)
    # and the same log: sizes, alphas, used_sample counting the global batch
    one, two = read_log(tmp_path), read_log(mpi_run / "full")
    assert [row.split(",")[:5] for row in two] == [row.split(",")[:5] for row in one]
    assert [row.split(",")[3] for row in two] == ["8", "16", "8"]


@pytest.mark.slow
@needs_mpirun
def test_resume_under_mpi_continues_as_the_uninterrupted_run(mpi_run):
    full, resumed = load(mpi_run, "full", 0), load(mpi_run, "resumed", 0)
    np.testing.assert_allclose(resumed["losses"], full["losses"], rtol=1e-5)
    for key in full:
        np.testing.assert_allclose(resumed[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
@needs_mpirun
def test_only_rank_0_writes_one_log_samples_and_checkpoints(mpi_run):
    out = mpi_run / "full"
    assert [row.split(",")[0] for row in read_log(out)] == ["1", "2", "3"]  # one row each
    assert sorted(os.listdir(out / "sample")) == ["000001.png", "000002.png", "000003.png"]
    assert sorted(os.listdir(out / "checkpoint")) == ["newest.txt", "train_state.model",
                                                      "train_step-2.model"]


# --- SIGTERM -------------------------------------------------------------------------------------

SIGNAL_RUNNER = os.path.join(ROOT, "test", "mpi_signal_run.py")
PAUSE = 1.0                    # seconds after each iteration, to signal the processes mid-run


def log_losses(out):
    """(g_loss, d_loss, grad_penalty) of each row of log.csv."""
    import csv
    with open(os.path.join(out, LOG_FILE), newline="") as f:
        return np.array([[float(r["g_loss"]), float(r["d_loss"]), float(r["grad_penalty"])]
                         for r in csv.DictReader(f)])


@pytest.mark.slow
@needs_mpirun
def test_sigterm_to_every_rank_saves_exits_143_and_resume_continues(mpi_run, data_root,
                                                                   tmp_path):
    import signal
    import time
    out = tmp_path / "run"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(WORLD_SIZE),
              sys.executable, SIGNAL_RUNNER]
    argv = [data_root, *FLAGS, "--iter", str(ITERATIONS), "--out", str(out), "--resume"]
    job = subprocess.Popen(mpirun + [str(PAUSE)] + argv, cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + MPI_TIMEOUT
    try:
        while not (os.path.isfile(out / LOG_FILE) and read_log(out)):
            assert job.poll() is None, job.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no iteration logged in time"
            time.sleep(0.05)
        ranks = children(job.pid)
        assert len(ranks) == WORLD_SIZE
        for rank in ranks:  # as SLURM does: every process of the job step gets SIGTERM
            os.kill(rank, signal.SIGTERM)
        _, err = job.communicate(timeout=MPI_TIMEOUT)
    finally:
        if job.poll() is None:
            job.terminate()  # SIGKILL would end pytest (Jittor's SIGCHLD handler)
    assert job.returncode == 143, err[-3000:]
    state = load_checkpoint(str(out / "checkpoint" / TRAIN_STATE_FILE))
    done = int(state["iteration"])
    assert 1 <= done < ITERATIONS and len(read_log(out)) == done
    # the requeue: the same command continues, and gives the uninterrupted run's losses
    again = subprocess.run(mpirun + ["0"] + argv, cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=MPI_TIMEOUT)
    assert again.returncode == 0, again.stderr[-3000:]
    np.testing.assert_allclose(log_losses(out), log_losses(mpi_run / "full"), rtol=1e-5,
                               atol=1e-6)
