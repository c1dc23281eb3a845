"""Stopping a run cleanly: signals (``StopRequest``), a NaN/inf loss (``check_finite``), an
output that cannot be written or an image that cannot be read (the errors that name the last
checkpoint), and the all-reduces by which every MPI process takes the same decision.
"""
import math
import os
import signal
import sys

import jittor as jt
from tqdm import tqdm

from dataset import UnreadableImage

# What Jittor's compiler processes ignore, so that a signal sent to the whole process group
# reaches the training loop alone. Not SIGTERM: Jittor ends those processes with it (pool
# cleanup), so they must keep dying of it (see docs/long_runs.md for what that means).
POOL_IGNORES = ("SIGINT", "SIGUSR1")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; training stopped without writing the bad state."""


class OutputFailed(RuntimeError):
    """An output could not be written mid-run (full disk, ...): one line, the run stopped."""


def mean_over_processes(*values):
    """Scalar Vars as floats, averaged over the MPI processes (one all-reduce): what one
    process would get on the global batch, and the same on every process, so all of them
    take the same decisions (a NaN stops them all)."""
    values = jt.concat([v.reshape((1,)) for v in values])
    if jt.in_mpi:
        values = values.mpi_all_reduce("mean")
    return [float(v) for v in values.numpy()]


def any_process(*flags):
    """Each flag as a bool, made true on every MPI process when it is true on any of them (one
    all-reduce), so that all processes take the same decisions."""
    if not jt.in_mpi:
        return [bool(flag) for flag in flags]
    summed = jt.array([float(bool(flag)) for flag in flags]).mpi_all_reduce("add").numpy()
    return [bool(value > 0) for value in summed]


class StopRequest:
    """First Ctrl-C, SIGTERM or SIGUSR1: finish the iteration, save, stop. A second Ctrl-C stops
    at once; a second SIGTERM is ignored (under SLURM a rank may get one from the scheduler and
    one forwarded by mpirun; the scheduler's SIGKILL after its grace period ends it anyway).

    Under mpirun, Ctrl-C ends the job at once (mpirun sends SIGTERM, then SIGKILL 1 s later unless
    ``OMPI_MCA_odls_base_sigkill_timeout`` gives more), but mpirun forwards SIGUSR1 to every
    process: ``kill -USR1 <mpirun's pid>`` stops an MPI run cleanly. ``signum`` is the signal
    received (the first one)."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1")
                    if hasattr(signal, name))

    def __init__(self):
        self.requested = False
        self.signum = None
        self._previous = {}
        self._pid = os.getpid()

    def __enter__(self):
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
                # SA_RESTART: a blocking call in C++ that the signal interrupts is resumed, not
                # failed. Jittor waits for its cache lock with fcntl(F_SETLKW) while another
                # process compiles, and took EINTR for an error: a SIGTERM then ended a rank with
                # exit 1, unsaved, and left the other MPI ranks waiting (test_mpi hung so).
                signal.siginterrupt(signum, False)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:  # a process forked from this one: not its business,
            if signum == getattr(signal, "SIGTERM", None):  # but Jittor ends its compiler pool
                signal.signal(signum, signal.SIG_DFL)       # with SIGTERM: die of it, as
                os.kill(os.getpid(), signum)                # Jittor expects (data loaders
                                                            # see dataset.py)
            return
        first = not self.requested
        self.requested = True
        self.signum = self.signum or signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if jt.rank == 0 and first:
            name = signal.Signals(signum).name
            tqdm.write(f"{name}: saving a checkpoint after this iteration "
                       "(Ctrl-C again to quit without saving)", file=sys.stderr)

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False


def kept_checkpoint(last_checkpoint):
    """What a stopped run still has: ``last_checkpoint`` (path, iteration), in words."""
    if last_checkpoint is not None:
        return (f"the last checkpoint, {last_checkpoint[0]} (iteration {last_checkpoint[1]}), "
                f"is intact")
    return "no checkpoint was written yet"


def check_finite(result, last_checkpoint):
    """TrainingDiverged when a loss of the iteration's ``result`` is NaN or infinite."""
    for name, value in (("discriminator", result.d_loss), ("generator", result.g_loss),
                        ("gradient penalty", result.grad_penalty)):
        if not math.isfinite(value):
            raise TrainingDiverged(f"iteration {result.iteration}: the {name} loss is {value}; "
                                   f"training stopped, {kept_checkpoint(last_checkpoint)}; try "
                                   f"a lower --lr")


def output_failed(outputs, last_checkpoint):
    """The OutputFailed to raise when an output could not be written (on rank 0)."""
    if outputs.error is not None:
        return OutputFailed(f"{outputs.error}; training stopped, "
                            f"{kept_checkpoint(last_checkpoint)}: resume with --resume once it "
                            f"can be written")
    return OutputFailed("rank 0 could not write its outputs (it says why); training stopped")


def data_failed(error, iteration, saved, last_checkpoint):
    """The UnreadableImage to raise when iteration ``iteration + 1`` could not read its batch,
    after the state before it was ``saved`` (a path, or None when that failed)."""
    where = (f"the state after iteration {iteration} is saved in {saved}"
             if saved else kept_checkpoint(last_checkpoint))
    return UnreadableImage(error.path, f"{error}; training stopped, {where}: then resume with "
                                       f"--resume (the same command)")
