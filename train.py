"""Train StyleGAN with progressive growing, as the reference's ``train.py`` does.

    python train.py data --init_size 8          # data/8, data/16, ... data/128 (resize.py)

Faithful to xUhEngwAng/StyleGAN-jittor (defaults, command line, maths) and to the PyTorch
original rosinality/style-based-gan-pytorch it ports (``--sched``, ``--loss wgan-gp``,
``--max_size``, ...): the networks grow from ``--init_size`` to ``--max_size``, each resolution
fading in over ``--phase`` images and then training ``--phase`` more; the discriminator is
trained with the non-saturating loss and the R1 penalty on real images (StyleGAN paper,
appendix C; Mescheder et al. 2018), the generator with the non-saturating loss and style-mixing
inputs (paper section 3.1); Adam with betas (0, 0.99), the mapping network at 1/100 of the
learning rate, and ``g_running``, an exponential moving average of the generator, is what the
samples and the ``NNNNNN.model`` files come from.

Beyond the reference: every run is reproducible from ``--seed`` and resumable exactly from its
training checkpoint (see ``Trainer``), outputs go under ``--out``, every write is atomic, and a
NaN/inf loss or Ctrl-C stops cleanly. ``train(config)`` is the plain-values core that
``main(args)`` calls.

The parts of the loop live beside this file: ``schedule.py`` (the progressive schedule, a pure
function of the images used), ``losses.py`` (R1 and WGAN-GP), ``data_stream.py`` (the
reproducible, resumable batches), ``optimizers.py`` (Adam, the moving average, optimiser
state), ``run_folder.py`` (what a run writes under ``--out``, and which run a folder holds) and
``stopping.py`` (signals, NaN losses, failed writes). Here: the configuration, ``Trainer`` (one
iteration), ``train`` (the loop) and the command line.

``mpirun -np N python train.py data ...`` trains one model on N processes with Jittor's own
MPI data parallelism: the batch is global, each process trains on its share of it (as Jittor's
Dataset shards it, ``rank_share``), Jittor's optimisers average the gradients, and only rank 0
writes (``Outputs``). See ``Trainer`` for how the processes stay identical.
"""
import argparse
import math
import os
import random
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# mpirun forwards SIGUSR1 (a clean stop, see StopRequest) to each process's whole process group.
# Until StopRequest handles it, a rank ignores it rather than dying of it; Jittor's compiler
# workers are restarted with it ignored by jittor_env.compiler_pool_ignores (in main).
if "OMPI_COMM_WORLD_SIZE" in os.environ and hasattr(signal, "SIGUSR1"):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

import jittor_env  # noqa: E402  (prepares Jittor's environment before it is imported)
import jittor as jt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from atomic import WriteError
from checkpoint import (CheckpointError, describe_object, generator_config, generator_state_dict,
                        is_generator_state_dict, is_training_checkpoint, load_checkpoint,
                        strip_data_parallel)
from data_stream import (EPOCH_ORDER_STREAM, ImageStream, derived_seed, random_flip,
                         rank_share)
from dataset import DatasetError, UnreadableImage, check_resolutions
from losses import LOSSES
from model import Discriminator, StyledGenerator, size_for_step, step_for_size
from optimizers import (EMA_DECAY, accumulate, adjust_lr, build_optimizers, copy_parameters,
                        load_optimizer_state, optimizer_state, parameter_names, torch_adam_reports,
                        train_only)
from run_folder import (CHECKPOINT_DIR, IDENTITY_KEYS, NEWEST_FILE, RUN_KEYS, TRAIN_STATE_FILE,
                        Outputs, newest_training_checkpoint, run_differences, run_files)
from schedule import Progress, ScheduleConfig, advance, schedule
from stopping import (POOL_IGNORES, OutputFailed, StopRequest, TrainingDiverged, agree,
                      any_process, check_finite, data_failed, mean_over_processes,
                      output_failed)

# --- the reference's hyper-parameters (the losses' and optimisers' are in their modules) ---------
MIXING_PROBABILITY = 0.9      # share of iterations whose fakes mix two latents (section 3.1)

REFERENCE_LR = 1e-3
REFERENCE_BATCH = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}   # the Jittor reference's
DEFAULT_BATCH = 32                                                     # sizes not in the table
SCHED_BATCH = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32}  # PyTorch --sched
SCHED_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}             # PyTorch --sched
SAMPLE_GRID = {512: (8, 4), 1024: (4, 2)}     # (columns, rows) of the sample grid, PyTorch's
DEFAULT_SAMPLE_GRID = (10, 5)

# --- reporting and exit codes --------------------------------------------------------------------
SPEED_WINDOW = 20             # iterations images/s is averaged over
SAVE_MINUTES = 30             # default --save_minutes: the most a SIGKILL or power cut loses
EXIT_USAGE = 2                # bad options or inputs, found before training (argparse's code)
EXIT_FAILURE = 1              # a failure at run time: NaN loss, unreadable image, full disk
EXIT_INTERRUPTED = 130        # Ctrl-C (SIGINT) or SIGUSR1
EXIT_TERMINATED = 143         # SIGTERM (preemption, timeout, shutdown): 128 + 15


class TrainError(ValueError):
    """Bad options or inputs, found before training starts (one line, names the option)."""


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Plain values a run is made of; see ``build_parser`` for each one's meaning."""
    path: str
    init_size: int = 8
    max_size: int = 128
    phase: int = 150_000
    iter: int = 100_000
    lr: float = REFERENCE_LR
    sched: bool = False
    loss: str = "r1"
    mixing: bool = True
    batch: int = None
    from_rgb_activate: bool = True
    code_dim: int = 512
    n_mlp: int = 8
    width: int = 512
    seed: int = None
    out: str = "."
    sample_every: int = 100
    save_every: int = 10_000
    workers: int = 0
    ema_decay: float = EMA_DECAY
    save_minutes: float = SAVE_MINUTES
    ckpt: str = None
    resume: bool = False
    fade_in_initial: bool = False   # the reference fades in the first size too when it loads
                                    # a checkpoint (its `args.ckpt is None` test)

    def batch_for(self, size):
        """Images per iteration (all processes together) at image side ``size``."""
        if self.batch is not None:
            return self.batch
        return (SCHED_BATCH if self.sched else REFERENCE_BATCH).get(size, DEFAULT_BATCH)

    def lr_for(self, size):
        """Learning rate at ``size``: ``--lr``, or the PyTorch original's table with --sched.

        The PyTorch original falls back to a hard-coded 0.001 here (``args.lr.get(resolution,
        0.001)``), so its --lr never takes effect; sizes outside the table get --lr here."""
        return SCHED_LR.get(size, self.lr) if self.sched else self.lr

    @property
    def schedule_config(self):
        return ScheduleConfig(step_for_size(self.init_size), step_for_size(self.max_size),
                              self.phase, self.fade_in_initial)

    def run_args(self):
        """The ``args`` dict a training checkpoint stores (plain values only)."""
        return asdict(self)


def _positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TrainError(f"--{name} must be an integer >= {minimum}, got {value!r}")


def _size(name, value):
    try:
        return step_for_size(value)
    except ValueError:
        raise TrainError(f"--{name} must be a power of two from 4 to 1024, got {value}") from None


def validate(config):
    """Raise TrainError naming the option for any bad value; return ``config`` unchanged."""
    init_step = _size("init_size", config.init_size)
    max_step = _size("max_size", config.max_size)
    if init_step > max_step:
        raise TrainError(f"--init_size {config.init_size} is larger than --max_size "
                         f"{config.max_size}")
    for name in ("phase", "iter", "code_dim", "n_mlp", "width", "sample_every", "save_every"):
        _positive(name, getattr(config, name))
    _positive("workers", config.workers, minimum=0)
    if config.batch is not None:
        _positive("batch", config.batch)
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise TrainError(f"--lr must be a positive number, got {config.lr!r}")
    if not (isinstance(config.save_minutes, (int, float)) and math.isfinite(config.save_minutes)
            and config.save_minutes >= 0):
        raise TrainError(f"--save_minutes must be a number >= 0 (0: only every --save_every "
                         f"iterations), got {config.save_minutes!r}")
    if config.resume and config.ckpt is not None:
        raise TrainError("--resume and --ckpt exclude each other: --resume continues the run in "
                         "--out from its newest checkpoint; --ckpt starts from a given file")
    if not (isinstance(config.ema_decay, (int, float)) and 0 <= config.ema_decay < 1):
        raise TrainError(f"--ema_decay must be a number in [0, 1), got {config.ema_decay!r}")
    if config.loss not in LOSSES:
        raise TrainError(f"--loss must be one of {', '.join(LOSSES)}, got {config.loss!r}")
    if config.seed is not None and not 0 <= config.seed < 2 ** 32:
        raise TrainError(f"--seed must be an integer from 0 to 2**32 - 1, got {config.seed}")
    for size in (size_for_step(s) for s in range(init_step, max_step + 1)):
        batch = config.batch_for(size)
        if batch % jt.world_size:
            source = "--batch" if config.batch is not None else "the batch table (see --help)"
            raise TrainError(f"the global batch at {size} px ({batch}, from {source}) is not a "
                             f"multiple of the {jt.world_size} MPI processes, which take equal "
                             f"shares of it: give --batch a multiple of {jt.world_size}")
    return config


def drawn(random_var):
    """``random_var`` filled now. Jittor fills a random Var when its graph runs, in that graph's
    execution order: drawn one after the other here, the values depend on the seed alone, not on
    which gradients an iteration computes (train_only changed that order once)."""
    random_var.sync()
    return random_var


def with_seed(config):
    """``config``, with a random seed if it has none (recorded, so the run stays resumable)."""
    if config.seed is not None:
        return config
    return replace(config, seed=random.SystemRandom().randrange(2 ** 32))


def training_sizes(config):
    return [size_for_step(s) for s in range(step_for_size(config.init_size),
                                            step_for_size(config.max_size) + 1)]


# ------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------

def build_networks(config):
    generator = StyledGenerator(code_dim=config.code_dim, n_mlp=config.n_mlp, width=config.width)
    discriminator = Discriminator(from_rgb_activate=config.from_rgb_activate, width=config.width)
    g_running = StyledGenerator(code_dim=config.code_dim, n_mlp=config.n_mlp, width=config.width)
    return generator, discriminator, g_running


@dataclass
class IterationResult:
    iteration: int          # iterations done, this one included
    size: int
    alpha: float
    images: int             # real images this iteration trained on
    g_loss: float
    d_loss: float
    grad_penalty: float


class Trainer:
    """Networks, optimisers, schedule and data of one run, advanced one iteration at a time.

    Exact resume: every iteration ``i`` first reseeds Python's, numpy's and Jittor's random
    generators from ``(seed, i)`` (``jt.set_global_seed``), and the data order depends only on
    ``(seed, epoch)`` and the position in the epoch (``ImageStream``). A training checkpoint
    holds the networks, both optimisers' states (Adam moments, step count, per-group lr), the
    progress and the data position, so the next iterations after a resume draw the same batches,
    flips, latents, noise and mixing points and give the same losses as an uninterrupted run.

    Under MPI every process seeds alike (not Jittor's default seed + rank) and builds the same
    weights, then takes rank 0's (``mpi_param_broadcast``). Each iteration draws the flips,
    latents, noise and mixing points of the global batch and takes its ``rank_share`` of them,
    so N processes compute what one does on the global batch, except that the discriminator's
    minibatch-stddev sees one process's share. The averaged gradients keep the networks, and so
    g_running, identical; the logged losses are averaged over the processes, so a NaN stops all.
    """

    def __init__(self, config, outputs=None):
        config = with_seed(config)
        self.config = config
        self.seed = config.seed
        self.outputs = outputs or Outputs(config.out)
        jt.set_global_seed(derived_seed(self.seed), different_seed_for_mpi=False)
        self.generator, self.discriminator, self.g_running = build_networks(config)
        self.generator.mpi_param_broadcast()      # every MPI process starts from rank 0's
        self.discriminator.mpi_param_broadcast()  # weights (already equal: the same seed)
        copy_parameters(self.g_running, self.generator)   # the EMA starts as a copy
        self.generator.train()
        self.discriminator.train()
        self.g_running.eval()
        self.g_optimizer, self.d_optimizer = build_optimizers(
            self.generator, self.discriminator, config.lr)
        self.progress = Progress(step_for_size(config.init_size))
        self.alpha = None          # alpha of the last iteration done
        self.iteration = 0
        self.data_epoch, self.data_position = 0, 0
        self.stream = None
        self.interrupted = False   # set by train() when Ctrl-C stopped the run
        latent_rng = np.random.RandomState(self.seed)  # the same latents all run long, resumed too
        self.sample_latents = latent_rng.randn(
            max(c * r for c, r in [DEFAULT_SAMPLE_GRID, *SAMPLE_GRID.values()]),
            config.code_dim).astype(np.float32)
        self._sample_noise = {}
        self._ema_names_at = {}         # step -> names of the parameters the EMA follows
        self.last_checkpoint = None     # (path, iteration) of the last rolling checkpoint
        self.last_save_time = time.monotonic()   # for --save_minutes
        self.discriminator_loss, self.generator_loss = LOSSES[config.loss]

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self):
        """The training checkpoint (format: checkpoint.py's docstring) of the current state."""
        data = self._data_state()
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_running": self.g_running.state_dict(),
            "g_optimizer": optimizer_state(self.g_optimizer),
            "d_optimizer": optimizer_state(self.d_optimizer),
            "step": self.progress.step,
            "alpha": 1.0 if self.alpha is None else self.alpha,
            "used_sample": self.progress.used_sample,
            "iteration": self.iteration,
            "args": self.config.run_args(),
            "final_progress": self.progress.final_progress,
            # per-iteration seeds derive from args["seed"]; this is the data order's position
            "rng": {"seed": self.seed, "data_epoch": data["epoch"],
                    "data_position": data["position"]},
        }

    def load(self, ckpt, path):
        """Restore a training checkpoint (from ``train.py``) exactly."""
        for name, net in (("generator", self.generator), ("discriminator", self.discriminator),
                          ("g_running", self.g_running)):
            try:
                net.load_state_dict(ckpt[name])
            except (ValueError, TypeError, AttributeError) as error:
                raise CheckpointError(f"{path}: its {name} does not fit the model of its args: "
                                      f"{error}") from None
        load_optimizer_state(self.g_optimizer, ckpt["g_optimizer"], f"{path}: its g_optimizer")
        load_optimizer_state(self.d_optimizer, ckpt["d_optimizer"], f"{path}: its d_optimizer")
        step = int(ckpt["step"])
        if not step_for_size(self.config.init_size) <= step <= step_for_size(self.config.max_size):
            raise CheckpointError(f"{path}: step {step} is outside its run's sizes "
                                  f"{self.config.init_size}..{self.config.max_size}")
        self.progress = Progress(step, int(ckpt["used_sample"]),
                                 bool(ckpt.get("final_progress", False)))
        self.alpha = float(ckpt["alpha"])
        self.iteration = int(ckpt["iteration"])
        rng = ckpt.get("rng") or {}
        self.data_epoch = int(rng.get("data_epoch", 0))
        self.data_position = int(rng.get("data_position", 0))
        self.last_checkpoint = (path, self.iteration)

    def load_reference_snapshot(self, ckpt, path):
        """Load a training snapshot: the reference's or the PyTorch original's
        ``train_step-K.model`` or published "Model & Optimizer" file (generator, discriminator,
        g_running, and in the original's also both Adam states); training then starts at
        --init_size with its fade-in, as the original's --ckpt does."""
        for name, net in (("generator", self.generator), ("discriminator", self.discriminator),
                          ("g_running", self.g_running)):
            try:
                net.load_state_dict(strip_data_parallel(ckpt[name]))
            except (ValueError, TypeError, AttributeError) as error:
                raise CheckpointError(f"{path}: its {name} does not fit --width "
                                      f"{self.config.width} --code_dim {self.config.code_dim} "
                                      f"--n_mlp {self.config.n_mlp}: {error}") from None
        for message in torch_adam_reports(ckpt, path, self.generator, self.discriminator,
                                          self.g_optimizer, self.d_optimizer):
            if jt.rank == 0:
                print(f"train.py: {message}", file=sys.stderr)

    def save_train_state(self):
        """Write the rolling ``train_state.model``; returns its path (None when that failed:
        ``outputs.error`` says why, and the previous one is intact)."""
        path = self.outputs.save(self.state(), TRAIN_STATE_FILE)
        self.last_save_time = time.monotonic()
        if path is not None:
            self.last_checkpoint = (path, self.iteration)
        return path

    # --- one iteration -------------------------------------------------------------------------
    def _data_state(self):
        """The data order's position: the stream's, or the checkpoint's before it opens."""
        if self.stream is not None:
            return self.stream.state()
        return dict(epoch=self.data_epoch, position=self.data_position)

    def _open_stream(self, step, new_epoch):
        """Data at ``step``: the checkpoint's epoch and position when the run (re)starts, a new
        epoch when the reference rebuilds its loader (a resolution change)."""
        epoch = self.stream.epoch if self.stream is not None else self.data_epoch
        position = self.data_position
        if self.stream is not None:
            self.stream.close()
        if new_epoch:
            epoch, position = epoch + 1, 0
        size = size_for_step(step)
        self.stream = ImageStream(self.config.path, size, self.config.batch_for(size), self.seed,
                                  epoch=epoch, position=position, workers=self.config.workers)
        lr = self.config.lr_for(size)
        adjust_lr(self.g_optimizer, lr)
        adjust_lr(self.d_optimizer, lr)

    def _latents(self, images, share):
        """The reference's generator inputs: two lists of two latents with probability 0.9
        (style mixing), else two single latents; one for the D step, one for the G step.
        Drawn for the global batch of ``images``; this process takes its ``share``."""
        code_dim = self.config.code_dim
        if self.config.mixing and random.random() < MIXING_PROBABILITY:
            z = drawn(jt.randn(4, images, code_dim))[:, share.start:share.stop]
            return [z[0], z[1]], [z[2], z[3]]
        z = drawn(jt.randn(2, images, code_dim))[:, share.start:share.stop]
        return z[0], z[1]

    def _noise(self, step, images, share):
        """Noise maps for the D step's and the G step's fakes (the generator would draw them
        per call): drawn for the global batch, this process's ``share`` of them."""
        maps = [[drawn(jt.randn(images, 1, size_for_step(s), size_for_step(s)))
                 for s in range(step + 1)] for _ in range(2)]
        return [[m[share.start:share.stop] for m in one_pass] for one_pass in maps]

    def _undo_iteration(self, progress, data):
        """Back to the state before an iteration that could not read its batch, so that the
        checkpoint then written resumes with that very iteration."""
        self.progress = progress
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.data_epoch, self.data_position = data["epoch"], data["position"]

    def _enter_schedule(self):
        """The reference's schedule for this iteration (``progress`` is set); at a new size,
        first its snapshot and a new data loader. Returns alpha."""
        progress, alpha, snapshot_step = schedule(self.progress, self.config.schedule_config)
        if snapshot_step is not None:
            # the reference saves the state reached so far, then reloads data at the new size
            self.outputs.save(self.state(), f"train_step-{snapshot_step}.model")
            self._open_stream(progress.step, new_epoch=True)
        elif self.stream is None:
            self._open_stream(progress.step, new_epoch=False)
        self.progress = progress
        return alpha

    def _real_images(self, before):
        """``(real, images, share)``: this process's ``share`` of the next global batch of
        ``images``, flipped. An image that cannot be read, on any process, stops every process
        before the D step (UnreadableImage), back at the state ``before`` the iteration."""
        try:
            batch, images = self.stream.next()  # under MPI: this process's share of the batch
            unreadable = None
        except UnreadableImage as error:
            unreadable = error
        if any_process(unreadable is not None):
            self._undo_iteration(*before)
            if unreadable is None:
                raise UnreadableImage(None, "another MPI process could not read an image (its "
                                            "message names it)")
            if jt.rank != 0:
                print(f"train.py: rank {jt.rank}: {unreadable}", file=sys.stderr, flush=True)
            raise unreadable
        share = rank_share(images, self.stream.batch_size)
        return jt.array(random_flip(batch, share=share, total=images)), images, share

    def train_iteration(self):
        """One iteration of the reference's loop: schedule, D step, G step, EMA."""
        jt.set_global_seed(derived_seed(self.seed, self.iteration), different_seed_for_mpi=False)
        before = (self.progress, self._data_state())
        alpha = self._enter_schedule()
        step = self.progress.step
        real, images, share = self._real_images(before)
        gen_in1, gen_in2 = self._latents(images, share)
        noise1, noise2 = self._noise(step, images, share)
        # as PyTorch's Adam, which skips parameters without a gradient: only the layers in use
        train_only(self.generator, self.generator.modules_in_use(step, alpha))
        train_only(self.discriminator, self.discriminator.modules_in_use(step, alpha))

        # D step: the reference freezes the generator with requires_grad(generator, False);
        # here the optimiser differentiates its own parameters only and the fakes are detached.
        # Under MPI, Jittor's optimisers average the gradients of all processes.
        fake = self.generator(gen_in1, noise=noise1, step=step, alpha=alpha)
        d_total, d_loss, penalty = self.discriminator_loss(
            self.discriminator, real, fake.detach(), step, alpha)
        self.d_optimizer.step(d_total)

        # G step (one per D step, the PyTorch original's n_critic = 1), then the moving average
        fake = self.generator(gen_in2, noise=noise2, step=step, alpha=alpha)
        g_loss = self.generator_loss(self.discriminator(fake, step=step, alpha=alpha))
        self.g_optimizer.step(g_loss)
        accumulate(self.g_running, self.generator, self.config.ema_decay, self._ema_names(step))
        jt.sync_all()

        self.progress = advance(self.progress, images)
        self.alpha = alpha
        self.iteration += 1
        return IterationResult(self.iteration, size_for_step(step), alpha, images,
                               *mean_over_processes(g_loss, d_loss, penalty))

    def _ema_names(self, step):
        """The generator's parameters the moving average follows at ``step``: those of the
        layers up to it (see optimizers.accumulate)."""
        if step not in self._ema_names_at:
            self._ema_names_at[step] = parameter_names(
                self.generator, self.generator.modules_up_to(step))
        return self._ema_names_at[step]

    # --- samples --------------------------------------------------------------------------------
    def sample_noise(self, step, count):
        """Fixed noise maps for the sample grid at ``step`` (drawn once from the seed)."""
        if step not in self._sample_noise:
            rng = np.random.RandomState(derived_seed(self.seed, step, EPOCH_ORDER_STREAM))
            self._sample_noise[step] = [
                rng.randn(count, 1, size_for_step(s), size_for_step(s)).astype(np.float32)
                for s in range(step + 1)]
        return self._sample_noise[step]

    def sample(self):
        """The reference's grid from g_running: ``columns`` x ``rows`` images, fixed latents."""
        step = self.progress.step
        columns, rows = SAMPLE_GRID.get(size_for_step(step), DEFAULT_SAMPLE_GRID)
        noise = self.sample_noise(step, columns * rows)
        images = []
        with jt.no_grad():
            for c in range(columns):  # the reference generates one column-sized chunk at a time
                chunk = slice(c * rows, (c + 1) * rows)
                out = self.g_running(jt.array(self.sample_latents[chunk]),
                                     noise=[jt.array(n[chunk]) for n in noise],
                                     step=step, alpha=self.alpha)
                images.append(out.numpy())
        return self.outputs.sample(np.concatenate(images), self.iteration, nrow=columns)


# ------------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------------

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


def write_periodic_outputs(config, trainer, n):
    """After iteration ``n``: the sample grid every --sample_every iterations, g_running's
    ``NNNNNN.model`` and the rolling checkpoint every --save_every. Returns whether the rolling
    checkpoint was written."""
    if n % config.sample_every == 0 and trainer.outputs.writer:
        trainer.sample()
    if n % config.save_every == 0:
        trainer.outputs.save(trainer.g_running.state_dict(), f"{n:06d}.model")
        trainer.save_train_state()
        return True
    return False


def stop_or_save(trainer, stop, saved, save_seconds):
    """After an iteration, the decisions every MPI process takes alike (rank 0's clock, any
    process's signal or failed write): OutputFailed when an output could not be written; the
    rolling checkpoint when a stop was asked or ``save_seconds`` passed since the last one
    (unless ``saved`` just now). True to stop, with ``trainer.interrupted`` set to the signal."""
    due = (save_seconds > 0 and jt.rank == 0
           and time.monotonic() - trainer.last_save_time >= save_seconds)
    failed, stop_now, terminated, save_now = agree(
        trainer.outputs.error is not None, stop.requested,
        stop.signum == getattr(signal, "SIGTERM", None), due)
    if failed:
        raise output_failed(trainer.outputs, trainer)
    if (stop_now or save_now) and not saved:
        trainer.save_train_state()
    if stop_now:
        trainer.interrupted = signal.SIGTERM if terminated else stop.signum or signal.SIGINT
    return stop_now


def train(config, checkpoint=None, trainer=None):
    """Train until ``config.iter`` iterations; returns the Trainer. ``checkpoint`` is the loaded
    ``--ckpt`` dict, if any. Raises TrainingDiverged on a NaN/inf loss, OutputFailed when an
    output cannot be written (full disk), UnreadableImage (after saving the rolling checkpoint)
    when an image cannot be read. Ctrl-C, SIGTERM or SIGUSR1 save the rolling checkpoint and
    return with ``trainer.interrupted`` set to the signal's number. The rolling checkpoint is
    also written every ``config.save_minutes`` minutes."""
    config = with_seed(config)
    trainer = trainer or Trainer(config)
    if checkpoint is not None:
        if is_training_checkpoint(checkpoint):
            trainer.load(checkpoint, config.ckpt)
        else:
            trainer.load_reference_snapshot(checkpoint, config.ckpt)
    outputs = trainer.outputs
    outputs.prepare(trainer.iteration)
    if agree(outputs.error is not None)[0]:
        raise OutputFailed(str(outputs.error) if outputs.error is not None
                           else "rank 0 could not write its outputs (it says why)")
    trainer.interrupted = False
    trainer.last_save_time = time.monotonic()
    report = IterationReport(config, trainer)
    try:
        with StopRequest() as stop:
            while trainer.iteration < config.iter:
                started = time.perf_counter()
                try:
                    result = trainer.train_iteration()
                except UnreadableImage as error:  # the state before the iteration: save it
                    raise data_failed(error, trainer, trainer.save_train_state()) from None
                check_finite(result, trainer)
                report.add(result, trainer.progress.used_sample, time.perf_counter() - started)
                saved = write_periodic_outputs(config, trainer, result.iteration)
                if stop_or_save(trainer, stop, saved, config.save_minutes * 60):
                    break
            else:
                if trainer.last_checkpoint is None or trainer.last_checkpoint[1] != trainer.iteration:
                    trainer.save_train_state()
            if outputs.error is not None:
                raise output_failed(outputs, trainer)
    finally:
        report.close()
        outputs.close()
        if trainer.stream is not None:
            trainer.stream.close()
    return trainer


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def classify_checkpoint(obj, path):
    """'training' or 'snapshot'; CheckpointError for any other kind of file."""
    if is_training_checkpoint(obj):
        if not isinstance(obj.get("args"), dict):
            raise CheckpointError(f"{path}: a training checkpoint without its args dict")
        return "training"
    if all(k in obj for k in ("generator", "discriminator", "g_running")):
        return "snapshot"
    hint = ("--ckpt needs a training checkpoint written by train.py (checkpoint/"
            f"{TRAIN_STATE_FILE}, checkpoint/train_step-K.model) or the reference's "
            "train_step-K.model")
    if is_generator_state_dict(obj):
        raise CheckpointError(f"{path}: a generator state dict (what generate.py samples), not "
                              f"a training checkpoint; {hint}")
    raise CheckpointError(f"{path}: {describe_object(obj)}, not a training checkpoint; {hint}")


def config_from_args(args):
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
              if hasattr(args, f.name)}
    values["mixing"] = not args.no_mixing
    values["from_rgb_activate"] = not args.no_from_rgb_activate
    return TrainConfig(**values)


def resumed_config(config, ckpt):
    """``config`` with the run-defining values (RUN_KEYS) of the checkpoint's args.

    Options left at their defaults are taken from the checkpoint silently; one given on the
    command line with another value is overridden, with a note."""
    saved = ckpt["args"]
    for key in ("code_dim", "n_mlp", "width"):
        if key not in saved:
            raise CheckpointError(f"{config.ckpt}: its args lack {key}")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    changes = {key: saved[key] for key in RUN_KEYS
               if key in saved and saved[key] != getattr(config, key)}
    for key, value in changes.items():
        if getattr(config, key) != defaults[key] and jt.rank == 0:
            print(f"train.py: note: {config.ckpt} continues its run with {key} = {value}, not "
                  f"{getattr(config, key)}", file=sys.stderr)
    return replace(config, **changes)


def snapshot_config(config, ckpt):
    """``config`` for continuing a training snapshot: its architecture (code_dim, n_mlp, width
    read from its g_running; from_rgb_activate from its discriminator's keys), with a note for
    each flag given otherwise, and the fade-in at --init_size that the original's --ckpt does."""
    try:
        architecture = generator_config(generator_state_dict(ckpt))
    except CheckpointError as error:
        raise CheckpointError(f"{config.ckpt}: {error}") from None
    discriminator = strip_data_parallel(ckpt["discriminator"])
    if isinstance(discriminator, dict) and any(str(k).startswith("from_rgb.") for k in discriminator):
        architecture["from_rgb_activate"] = any(str(k).startswith("from_rgb.0.0.")
                                                for k in discriminator)
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for key, value in architecture.items():
        if getattr(config, key) not in (value, defaults[key]) and jt.rank == 0:
            print(f"train.py: note: {config.ckpt} holds a model with {key} = {value}, not "
                  f"{getattr(config, key)}; continuing with {value}", file=sys.stderr)
    return replace(config, fade_in_initial=True, **architecture)


# ------------------------------------------------------------------------------------------------
# Run folders: --resume, and never writing one run over another
# ------------------------------------------------------------------------------------------------

def resume_from_out(config):
    """--resume: ``(config, checkpoint, finished)`` continuing ``config.out``'s newest training
    checkpoint (``config.ckpt`` then names it), or ``config`` unchanged and None for a fresh
    run when there is none. Says which in one line. TrainError when the checkpoint is of another
    run (other options or data): a requeued command must continue its own run."""
    found = newest_training_checkpoint(config.out)
    config = replace(config, resume=False)
    if found is None:
        if jt.rank == 0:
            print(f"train.py: --resume: no training checkpoint in "
                  f"{os.path.join(config.out, CHECKPOINT_DIR)}: starting a fresh run",
                  file=sys.stderr)
        return config, None, False
    path, checkpoint = found
    differences = run_differences(config, checkpoint["args"])
    if differences:
        raise TrainError(f"--resume: {path} is from another run ({'; '.join(differences)}): "
                         f"give the options of that run to continue it, or a fresh --out for a "
                         f"new one")
    done = int(checkpoint["iteration"])
    finished = done >= config.iter
    if jt.rank == 0:
        what = ("the run is complete, nothing to do" if finished
                else f"continuing to iteration {config.iter}")
        print(f"train.py: --resume: {path} (iteration {done}): {what}", file=sys.stderr)
    return replace(config, ckpt=path), checkpoint, finished


def check_out_is_free(config, checkpoint):
    """Refuse (TrainError) to write a run into an ``--out`` that holds another run's files,
    unless ``--ckpt`` continues that run (one of its checkpoints, or a copy of one)."""
    existing = run_files(config.out)
    if not existing:
        return
    shown = ", ".join(os.path.relpath(p, config.out) for p in existing[:3])
    shown += ", ..." if len(existing) > 3 else ""
    if config.ckpt is not None:
        own = os.path.realpath(os.path.join(config.out, CHECKPOINT_DIR))
        if os.path.dirname(os.path.realpath(config.ckpt)) == own:
            return
        found = newest_training_checkpoint(config.out) if is_training_checkpoint(checkpoint) \
            else None
        if found is not None and all(found[1]["args"].get(k) == checkpoint["args"].get(k)
                                     for k in IDENTITY_KEYS):
            return
        raise TrainError(f"--out {config.out} holds another run ({shown}) than --ckpt "
                         f"{config.ckpt}: give a fresh --out, or continue that run with --resume")
    raise TrainError(f"--out {config.out} already holds a training run ({shown}): continue it "
                     f"with --resume (the same command each time), or give a fresh --out")


def main(args):
    """Validate, load --ckpt (or with --resume the --out folder's newest checkpoint), check the
    data, train. Errors raise before any training. Returns the Trainer, or None when --resume
    finds the run complete."""
    config = validate(config_from_args(args))
    # Ctrl-C and SIGUSR1 reach the training loop, not Jittor's compiler processes (which would
    # end the run uncleanly)
    jittor_env.compiler_pool_ignores(POOL_IGNORES)
    checkpoint, resuming = None, config.resume
    if resuming:
        config, checkpoint, finished = resume_from_out(config)
        if finished:
            return None
    if config.ckpt is not None:
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint(config.ckpt)
        kind = classify_checkpoint(checkpoint, config.ckpt)
        if kind == "training":
            config = validate(resumed_config(config, checkpoint))
            done = int(checkpoint["iteration"])
            if done >= config.iter:
                raise TrainError(f"--iter {config.iter}: the checkpoint has already done {done} "
                                 f"iterations; give a larger --iter to train on")
        else:
            config = validate(snapshot_config(config, checkpoint))
    if not resuming:
        check_out_is_free(config, checkpoint)
    config = with_seed(config)
    if not os.path.isdir(config.path):
        raise TrainError(f"{config.path}: no such data folder (make it with build_emoji.py or "
                         f"resize.py)")
    check_resolutions(config.path, training_sizes(config))
    if jt.rank == 0:
        print(f"train.py: seed {config.seed}; sizes {config.init_size}..{config.max_size}; "
              f"outputs in {os.path.abspath(config.out)}", file=sys.stderr)
    return train(config, checkpoint)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends each flag's default, unless its help already says what the default is."""

    def _get_help_string(self, action):
        if "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train StyleGAN v1 progressively (the reference's train.py). Writes "
                    "OUT/sample/NNNNNN.png, OUT/checkpoint/NNNNNN.model (g_running), "
                    f"OUT/checkpoint/train_step-K.model, OUT/checkpoint/{TRAIN_STATE_FILE} "
                    f"(resume with --ckpt), OUT/checkpoint/{NEWEST_FILE} (which of those two "
                    "was written last: what --resume continues) and OUT/log.csv.",
        formatter_class=HelpFormatter)
    parser.add_argument("path", help="data folder holding one image folder per size "
                                     "(PATH/8, PATH/16, ...; see resize.py)")
    parser.add_argument("--ckpt", default=None,
                        help="resume from this checkpoint: a train.py training checkpoint "
                             "continues exactly (its run-defining options win over the command "
                             "line); a reference train_step-K.model gives the weights and "
                             "training starts at --init_size with a fade-in, as the reference")
    parser.add_argument("--init_size", type=int, default=8, help="initial image size")
    parser.add_argument("--max_size", type=int, default=128, help="final image size")
    parser.add_argument("--phase", type=int, default=150_000,
                        help="images per half phase: the new size fades in over PHASE images, "
                             "then trains PHASE more before the next size")
    parser.add_argument("--iter", type=int, default=100_000,
                        help="total iterations (a resumed run counts the checkpoint's)")
    parser.add_argument("--lr", type=float, default=REFERENCE_LR,
                        help="Adam learning rate (the mapping network gets lr x 0.01)")
    parser.add_argument("--sched", action="store_true",
                        help="the PyTorch original's per-size tables: lr 0.0015/0.002/0.003 "
                             "from 128/256/512 px, batch 512..32 (32 from 64 px)")
    parser.add_argument("--loss", choices=sorted(LOSSES), default="r1",
                        help="r1: non-saturating + R1 penalty (the reference); wgan-gp: the "
                             "PyTorch original's WGAN-GP with its drift term")
    parser.add_argument("--no_mixing", action="store_true",
                        help="no style-mixing inputs (the reference mixes with probability 0.9)")
    parser.add_argument("--batch", type=int, default=None,
                        help="global batch size at every size: under mpirun -np N each "
                             "process trains on batch / N images of it, so it must be a "
                             "multiple of N (default: the reference's table "
                             "4:512 8:256 16:128 32:64 64:32 128:16, else 32; global too)")
    parser.add_argument("--no_from_rgb_activate", action="store_true",
                        help="no LeakyReLU after the discriminator's from-RGB convolutions")
    parser.add_argument("--width", type=int, default=512,
                        help="channels of the 4-32 px blocks (512: the reference; smaller "
                             "narrows every layer alike, for CPU runs and tests)")
    parser.add_argument("--code_dim", type=int, default=512,
                        help="size of the latent z and style w (512 for reference checkpoints)")
    parser.add_argument("--n_mlp", type=int, default=8, help="layers of the mapping network")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of every random choice (default: a random one, printed and "
                             "stored in the checkpoints)")
    parser.add_argument("--out", default=".",
                        help="folder for checkpoint/, sample/ and log.csv")
    parser.add_argument("--sample_every", type=int, default=100,
                        help="write a sample grid every N iterations")
    parser.add_argument("--save_every", type=int, default=10_000,
                        help="write NNNNNN.model and the resumable checkpoint every N iterations")
    parser.add_argument("--save_minutes", "--save-minutes", type=float, default=SAVE_MINUTES,
                        help=f"also write the resumable checkpoint {TRAIN_STATE_FILE} every N "
                             f"minutes, so a SIGKILL or power cut loses at most that (0: only "
                             f"every --save_every iterations)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest training checkpoint, or "
                             "start it when there is none: a requeued job gives the same command "
                             "every time. Without it, an --out holding another run is refused")
    parser.add_argument("--ema_decay", type=float, default=EMA_DECAY,
                        help=f"g_running <- decay x g_running + (1 - decay) x generator after "
                             f"every iteration (default {EMA_DECAY}, the reference's: a half-life "
                             f"of ~700 iterations, right for long runs; short CPU runs such as "
                             f"the demo sample better with 0.99)")
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loading worker processes (0: load in the main process, as "
                             "the reference)")
    return parser


def cli(argv=None):
    """The command line: parse ``argv``, train, return the exit status (2 bad options or inputs,
    1 a failure at run time, 130 stopped by Ctrl-C or SIGUSR1, 143 by SIGTERM, 0 done). Errors
    are one line on stderr, from rank 0 only."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def say(message):
        if jt.rank == 0:
            print(f"train.py: {message}", file=sys.stderr)

    try:
        trainer = main(args)
    except TrainError as error:        # a bad flag value; every MPI process stops, rank 0 says why
        say(f"error: {error}")
        return EXIT_USAGE
    except (DatasetError, CheckpointError, TrainingDiverged, OutputFailed, WriteError) as error:
        say(f"error: {error}")         # a file or the run failed
        return EXIT_FAILURE
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, without saving
        say("stopped without saving")
        return EXIT_INTERRUPTED
    if trainer is not None and trainer.interrupted:
        terminated = trainer.interrupted == getattr(signal, "SIGTERM", None)
        name = signal.Signals(trainer.interrupted).name
        if trainer.last_checkpoint is not None:
            say(f"stopped at iteration {trainer.iteration} ({name}); resume with --ckpt "
                f"{trainer.last_checkpoint[0]}, or --resume (the same command)")
        else:
            say(f"stopped at iteration {trainer.iteration} ({name}); no checkpoint was written")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    return 0


def exit_now(status):
    """Exit with ``status`` at once, skipping the interpreter's shutdown. Used after a SIGTERM
    (everything is saved and flushed by then): a SIGTERM sent to the whole process group (SLURM,
    ``timeout``) also ends the children Jittor and multiprocessing keep, and at shutdown Jittor's
    SIGCHLD handler turns their ends into "Caught SIGCHLD ... quick exit" and exit status 1.
    Not under MPI, where the processes must leave through MPI's own finalisation."""
    sys.stdout.flush()
    sys.stderr.flush()
    if jt.in_mpi:
        sys.exit(status)
    os._exit(status)


if __name__ == "__main__":
    _status = cli()
    if _status == EXIT_TERMINATED:
        exit_now(_status)
    sys.exit(_status)
