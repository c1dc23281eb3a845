"""A training run's configuration: the plain values it is made of (``TrainConfig``), their
defaults (the reference's; train.py's flags take them from here), the per-size batch and
learning-rate tables, and their validation."""
import math
import random
from dataclasses import asdict, dataclass, fields, replace

import jittor as jt

from networks.shapes import size_for_step, step_for_size
from training.losses import LOSSES
from training.optimizers import EMA_DECAY
from training.schedule import ScheduleConfig

REFERENCE_LR = 1e-3
REFERENCE_BATCH = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}   # the Jittor reference's
DEFAULT_BATCH = 32                                                     # sizes not in the table
SCHED_BATCH = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32}  # PyTorch --sched
SCHED_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}             # PyTorch --sched
SAVE_MINUTES = 30             # default --save_minutes: the most a SIGKILL or power cut loses
SEED_LIMIT = 2 ** 32          # seeds are 0 .. 2**32 - 1 (numpy's RandomState takes them all)


@dataclass(frozen=True)
class TrainConfig:
    """Plain values a run is made of; train.py's ``build_parser`` says what each one means."""
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
    nvidia: dict = None             # NVIDIA's architecture ({"generator", "discriminator"}) of
                                    # a run continuing an official model, else None

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


DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


class ConfigError(ValueError):
    """A bad option value; its text names the flag (train.py exits 2 with it)."""


def _positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"--{name} must be an integer >= {minimum}, got {value!r}")


def _size(name, value):
    try:
        return step_for_size(value)
    except ValueError:
        raise ConfigError(f"--{name} must be a power of two from 4 to 1024, got {value}") from None


def validate(config):
    """Raise ConfigError naming the option for any bad value; return ``config`` unchanged."""
    init_step = _size("init_size", config.init_size)
    max_step = _size("max_size", config.max_size)
    if init_step > max_step:
        raise ConfigError(f"--init_size {config.init_size} is larger than --max_size "
                         f"{config.max_size}")
    for name in ("phase", "iter", "code_dim", "n_mlp", "width", "sample_every", "save_every"):
        _positive(name, getattr(config, name))
    _positive("workers", config.workers, minimum=0)
    if config.batch is not None:
        _positive("batch", config.batch)
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise ConfigError(f"--lr must be a positive number, got {config.lr!r}")
    if not (isinstance(config.save_minutes, (int, float)) and math.isfinite(config.save_minutes)
            and config.save_minutes >= 0):
        raise ConfigError(f"--save_minutes must be a number >= 0 (0: only every --save_every "
                         f"iterations), got {config.save_minutes!r}")
    if config.resume and config.ckpt is not None:
        raise ConfigError("--resume and --ckpt exclude each other: --resume continues the run in "
                         "--out from its newest checkpoint; --ckpt starts from a given file")
    if not (isinstance(config.ema_decay, (int, float)) and 0 <= config.ema_decay < 1):
        raise ConfigError(f"--ema_decay must be a number in [0, 1), got {config.ema_decay!r}")
    if config.loss not in LOSSES:
        raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {config.loss!r}")
    if config.seed is not None and not 0 <= config.seed < SEED_LIMIT:
        raise ConfigError(f"--seed must be an integer from 0 to 2**32 - 1, got {config.seed}")
    for size in training_sizes(config):
        batch = config.batch_for(size)
        if batch % jt.world_size:
            source = "--batch" if config.batch is not None else "the batch table (see --help)"
            raise ConfigError(f"the global batch at {size} px ({batch}, from {source}) is not a "
                             f"multiple of the {jt.world_size} MPI processes, which take equal "
                             f"shares of it: give --batch a multiple of {jt.world_size}")
    return config


def with_seed(config):
    """``config``, with a random seed if it has none (recorded, so the run stays resumable)."""
    if config.seed is not None:
        return config
    return replace(config, seed=random.SystemRandom().randrange(SEED_LIMIT))


def training_sizes(config):
    """The image sides of the run, ``--init_size`` to ``--max_size``."""
    return [size_for_step(s) for s in range(step_for_size(config.init_size),
                                            step_for_size(config.max_size) + 1)]
