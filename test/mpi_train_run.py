"""Run by test_mpi.py under ``mpirun -np N``: trains through ``train.main`` and writes, per rank,
what the test compares.

    mpirun -np 2 python3 test/mpi_train_run.py DUMP DATA ITERATIONS RESUME_AT [train.py flags]

First, ``DUMP/stream_rank<r>.npz`` holds the first ``STREAM_BATCHES`` batches this rank's
``ImageStream`` gives (``DATA/8``, global batch ``STREAM_BATCH``, so that some are short). Then two runs of ``ITERATIONS`` iterations with the given flags: an uninterrupted one (outputs in
``DUMP/full``) and one stopped after ``RESUME_AT`` iterations and resumed from its checkpoint
(``DUMP/resumed``). For each, every rank writes ``DUMP/<run>_rank<r>.npz``: the generator,
discriminator and g_running parameters before the first iteration (``initial/...``) and at the
end (``final/...``), and ``losses``, one row (g_loss, d_loss, grad_penalty) per iteration.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt  # noqa: E402
import numpy as np  # noqa: E402

import train  # noqa: E402
from training.data_stream import ImageStream  # noqa: E402
from training.run_folder import CHECKPOINT_DIR, TRAIN_STATE_FILE  # noqa: E402
from training.trainer import Trainer  # noqa: E402

NETWORKS = ("generator", "discriminator", "g_running")
STREAM_SIZE, STREAM_BATCH, STREAM_BATCHES, STREAM_SEED = 8, 6, 4, 0


def parameters(trainer, prefix):
    return {f"{prefix}/{net}/{name}": p.numpy().copy()
            for net in NETWORKS for name, p in getattr(trainer, net).named_parameters()}


class Recorder:
    """Wraps Trainer.train_iteration to keep the first parameters and every iteration's losses."""

    def __init__(self):
        self.reset()
        original = Trainer.train_iteration

        def recording(trainer):
            if self.initial is None:
                self.initial = parameters(trainer, "initial")
            result = original(trainer)
            self.losses.append((result.g_loss, result.d_loss, result.grad_penalty))
            return result

        Trainer.train_iteration = recording

    def reset(self):
        self.initial, self.losses = None, []


def barrier():
    """Wait for every rank (rank 0 writes the checkpoint that the others then read)."""
    jt.array([1.0]).mpi_all_reduce("add").sync()


def run(data, out, flags, iterations, ckpt=None):
    args = [data, *flags, "--iter", str(iterations), "--out", out]
    return train.main(train.build_parser().parse_args(
        args + (["--ckpt", ckpt] if ckpt else []))).trainer


def dump(path, recorder, trainer):
    np.savez(path, losses=np.array(recorder.losses, dtype=np.float64), **recorder.initial,
             **parameters(trainer, "final"))


def dump_stream(path, data):
    stream = ImageStream(data, STREAM_SIZE, STREAM_BATCH, STREAM_SEED)
    batches = [stream.next() for _ in range(STREAM_BATCHES)]
    stream.close()
    np.savez(path, images=[images for _, images in batches],
             **{f"batch{i}": batch for i, (batch, _) in enumerate(batches)})


def main(dump_dir, data, iterations, resume_at, *flags):
    iterations, resume_at = int(iterations), int(resume_at)
    assert jt.in_mpi, "run me under mpirun"
    dump_stream(os.path.join(dump_dir, f"stream_rank{jt.rank}.npz"), data)
    recorder = Recorder()
    trainer = run(data, os.path.join(dump_dir, "full"), flags, iterations)
    dump(os.path.join(dump_dir, f"full_rank{jt.rank}.npz"), recorder, trainer)

    recorder.reset()
    resumed = os.path.join(dump_dir, "resumed")
    run(data, resumed, flags, resume_at)
    initial, first_losses = recorder.initial, recorder.losses
    barrier()
    recorder.reset()
    trainer = run(data, resumed, flags, iterations,
                  ckpt=os.path.join(resumed, CHECKPOINT_DIR, TRAIN_STATE_FILE))
    recorder.initial, recorder.losses = initial, first_losses + recorder.losses
    dump(os.path.join(dump_dir, f"resumed_rank{jt.rank}.npz"), recorder, trainer)


if __name__ == "__main__":
    main(*sys.argv[1:])
