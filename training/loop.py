"""The training loop: iterations until --iter, with the progress bar and log.csv, the periodic
sample grids and checkpoints, the rolling resumable checkpoint, and clean stops (signals, a NaN
loss, a failed write, an unreadable image)."""
import signal
import time
from collections import deque
from dataclasses import dataclass

import jittor as jt
from tqdm import tqdm

from files.checkpoint import is_training_checkpoint
from training.config import with_seed
from training.run_folder import TRAIN_STATE_FILE
from training.samples import SampleGrid
from training.snapshots import load_snapshot
from training.stopping import (OutputFailed, StopRequest, any_process, check_finite,
                               data_failed, output_failed)
from training.trainer import Trainer
from dataset import UnreadableImage

SPEED_WINDOW = 20             # iterations images/s is averaged over


class RollingCheckpoint:
    """The rolling resumable checkpoint ``train_state.model``: writes it, and keeps the last
    training checkpoint written or resumed from (``last``: path and iteration) and when the
    rolling one was last written (for --save_minutes)."""

    def __init__(self, trainer, last=None):
        self.trainer = trainer
        self.last = last
        self.written_at = time.monotonic()

    def save(self):
        """Write it; returns its path (None when that failed: ``outputs.error`` says why, and the
        previous one is intact)."""
        path = self.trainer.outputs.save(self.trainer.state(), TRAIN_STATE_FILE)
        self.written_at = time.monotonic()
        if path is not None:
            self.last = (path, self.trainer.iteration)
        return path

    def due(self, seconds):
        """True when ``seconds`` (> 0) have passed since it was last written."""
        return seconds > 0 and time.monotonic() - self.written_at >= seconds

    def is_current(self):
        """True when the last checkpoint holds the trainer's current iteration."""
        return self.last is not None and self.last[1] == self.trainer.iteration


@dataclass
class RunEnd:
    """How ``train`` ended: the trainer, the signal that stopped it (None when it ran to
    --iter) and the last training checkpoint (path, iteration), if any."""
    trainer: Trainer
    interrupted: int = None
    last_checkpoint: tuple = None


class IterationReport:
    """Each iteration's row of log.csv and line of the progress bar (rank 0), with images/s
    averaged over the last SPEED_WINDOW iterations."""

    def __init__(self, config, trainer):
        self.outputs = trainer.outputs
        self.bar = tqdm(total=config.iter, initial=trainer.iteration,
                        disable=not self.outputs.writer, dynamic_ncols=True)
        self.speed = deque(maxlen=SPEED_WINDOW)

    def add(self, result, used_sample, seconds):
        self.speed.append((result.images, seconds))
        images_per_sec = (sum(n for n, _ in self.speed)
                          / max(sum(t for _, t in self.speed), 1e-9))
        self.outputs.log(dict(iteration=result.iteration, size=result.size,
                              alpha=f"{result.alpha:.6f}", used_sample=used_sample,
                              images=result.images, g_loss=f"{result.g_loss:.6f}",
                              d_loss=f"{result.d_loss:.6f}",
                              grad_penalty=f"{result.grad_penalty:.6f}",
                              images_per_sec=f"{images_per_sec:.2f}", seconds=f"{seconds:.4f}"))
        self.bar.set_description(
            f"Size: {result.size}; G: {result.g_loss:.3f}; D: {result.d_loss:.3f}; "
            f"Grad: {result.grad_penalty:.3f}; Alpha: {result.alpha:.5f}; "
            f"img/s: {images_per_sec:.1f}")
        self.bar.update(1)

    def close(self):
        self.bar.close()


def write_periodic_outputs(config, trainer, samples, rolling, n):
    """After iteration ``n``: the sample grid every --sample_every iterations, g_running's
    ``NNNNNN.model`` and the rolling checkpoint every --save_every. Returns whether the rolling
    checkpoint was written."""
    if n % config.sample_every == 0 and trainer.outputs.writer:
        images, columns = samples.images(trainer.g_running, trainer.progress.step, trainer.alpha)
        trainer.outputs.sample(images, trainer.iteration, nrow=columns)
    if n % config.save_every == 0:
        trainer.outputs.save(trainer.generator_file(), f"{n:06d}.model")
        rolling.save()
        return True
    return False


def stop_or_save(trainer, rolling, stop, saved, save_seconds):
    """After an iteration, the decisions every MPI process takes alike (rank 0's clock, any
    process's signal or failed write): OutputFailed when an output could not be written; the
    rolling checkpoint when a stop was asked or ``save_seconds`` passed since the last one
    (unless ``saved`` just now). Returns the signal that stops the run, or None."""
    failed, stop_now, terminated, save_now = any_process(
        trainer.outputs.error is not None, stop.requested,
        stop.signum == getattr(signal, "SIGTERM", None), jt.rank == 0 and rolling.due(save_seconds))
    if failed:
        raise output_failed(trainer.outputs, rolling.last)
    if (stop_now or save_now) and not saved:
        rolling.save()
    if stop_now:
        return signal.SIGTERM if terminated else stop.signum or signal.SIGINT
    return None


def train(config, checkpoint=None, trainer=None):
    """Train until ``config.iter`` iterations; returns a ``RunEnd``. ``checkpoint`` is the
    loaded ``--ckpt`` dict, if any. Raises TrainingDiverged on a NaN/inf loss, OutputFailed when
    an output cannot be written (full disk), UnreadableImage (after saving the rolling
    checkpoint) when an image cannot be read. Ctrl-C, SIGTERM or SIGUSR1 save the rolling
    checkpoint and return with ``interrupted`` set to the signal's number. The rolling checkpoint
    is also written every ``config.save_minutes`` minutes."""
    config = with_seed(config)
    trainer = trainer or Trainer(config)
    rolling = RollingCheckpoint(trainer)
    if checkpoint is not None:
        if is_training_checkpoint(checkpoint):
            trainer.restore(checkpoint, config.ckpt)
            rolling.last = (config.ckpt, trainer.iteration)
        else:
            load_snapshot(trainer, checkpoint, config.ckpt)
    samples = SampleGrid(trainer.seed, config.code_dim)
    outputs = trainer.outputs
    outputs.prepare(trainer.iteration)
    if any_process(outputs.error is not None)[0]:
        raise OutputFailed(str(outputs.error) if outputs.error is not None
                           else "rank 0 could not write its outputs (it says why)")
    end = RunEnd(trainer)
    rolling.written_at = time.monotonic()
    report = IterationReport(config, trainer)
    try:
        with StopRequest() as stop:
            while trainer.iteration < config.iter:
                started = time.perf_counter()
                try:
                    result = trainer.train_iteration()
                except UnreadableImage as error:  # the state before the iteration: save it
                    raise data_failed(error, trainer.iteration, rolling.save(),
                                      rolling.last) from None
                check_finite(result, rolling.last)
                report.add(result, trainer.progress.used_sample, time.perf_counter() - started)
                saved = write_periodic_outputs(config, trainer, samples, rolling,
                                               result.iteration)
                end.interrupted = stop_or_save(trainer, rolling, stop, saved,
                                               config.save_minutes * 60)
                if end.interrupted is not None:
                    break
            else:
                if not rolling.is_current():
                    rolling.save()
            if outputs.error is not None:
                raise output_failed(outputs, rolling.last)
    finally:
        report.close()
        outputs.close()
        trainer.close_stream()
    end.last_checkpoint = rolling.last
    return end
