"""``Trainer``: the state of one training run (networks, optimisers, schedule position, data
position) and its iteration, as the reference's ``train.py`` loop body does it."""
import random
import sys
from dataclasses import dataclass

import jittor as jt

from dataset import UnreadableImage, random_flip
from files.checkpoint import CheckpointError
from model import Discriminator, StyledGenerator
from nvidia.networks import NvidiaDiscriminator, NvidiaStyledGenerator
from nvidia.official_files import (NVIDIA_KEY, generator_extras, generator_file,
                                   set_generator_extras)
from networks.shapes import size_for_step, step_for_size
from training.config import with_seed
from training.data_stream import ImageStream, derived_seed, rank_share
from training.losses import LOSSES
from training.optimizers import (accumulate, adjust_lr, build_optimizers, copy_parameters,
                                 load_optimizer_state, optimizer_state, parameter_names,
                                 train_only)
from training.run_folder import Outputs
from training.schedule import Progress, advance, schedule
from training.stopping import any_process, mean_over_processes

MIXING_PROBABILITY = 0.9      # share of iterations whose fakes mix two latents (section 3.1)
NETWORK_NAMES = ("generator", "discriminator", "g_running")   # as the checkpoints name them


def build_networks(config):
    """The generator, the discriminator and the moving-average generator of ``config``
    (NVIDIA's networks when it continues an official model)."""
    if config.nvidia is not None:
        return (NvidiaStyledGenerator(config.nvidia["generator"]),
                NvidiaDiscriminator(config.nvidia["discriminator"]),
                NvidiaStyledGenerator(config.nvidia["generator"]))
    generator = StyledGenerator(code_dim=config.code_dim, n_mlp=config.n_mlp, width=config.width)
    discriminator = Discriminator(from_rgb_activate=config.from_rgb_activate, width=config.width)
    g_running = StyledGenerator(code_dim=config.code_dim, n_mlp=config.n_mlp, width=config.width)
    return generator, discriminator, g_running


def load_networks(trainer, state_dicts, path, mismatch):
    """Load ``state_dicts[name]`` into each of the trainer's networks (``NETWORK_NAMES``); a
    state dict that does not fit raises CheckpointError: ``path: its NAME does not fit
    MISMATCH: why``."""
    for name in NETWORK_NAMES:
        try:
            getattr(trainer, name).load_state_dict(state_dicts[name])
        except (ValueError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{path}: its {name} does not fit {mismatch}: {error}") from None


def draw_now(random_var):
    """``random_var`` with its values drawn now. Jittor fills a random Var when its graph runs,
    in that graph's execution order: drawn one after the other here, the values depend on the
    seed alone, not on which gradients an iteration computes."""
    random_var.sync()
    return random_var


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
    (``state``) holds the networks, both optimisers' states (Adam moments, step counts, per-group
    lr), the progress and the data position, so the next iterations after ``restore`` draw the
    same batches, flips, latents, noise and mixing points and give the same losses as an
    uninterrupted run.

    Under MPI every process seeds alike (not Jittor's default seed + rank) and builds the same
    weights, then takes rank 0's (``mpi_param_broadcast``). Each iteration draws the flips,
    latents, noise and mixing points of the global batch and takes its ``rank_share`` of them,
    so N processes compute what one does on the global batch, except that the discriminator's
    minibatch-stddev sees one process's share. The averaged gradients keep the networks, and so
    g_running, identical; the logged losses are averaged over the processes, so a NaN stops all.

    ``outputs`` (the run folder) receives the reference's ``train_step-K.model`` snapshot when a
    new size starts, part of the iteration as in the reference.
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
        self._ema_names_at = {}         # step -> names of the parameters the EMA follows
        self.discriminator_loss, self.generator_loss = LOSSES[config.loss]

    # --- the state a training checkpoint holds ---------------------------------------------------
    def state(self):
        """The training checkpoint (format: files/checkpoint.py's docstring) of the current
        state."""
        data = self._data_state()
        extras = self.nvidia_extras()
        return {**extras,
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

    def nvidia_extras(self):
        """{"nvidia": {network: extras}} for a run of NVIDIA's networks (their stored noise and
        dlatent_avg, which are no parameters), else {}: what the checkpoints add."""
        if self.config.nvidia is None:
            return {}
        return {NVIDIA_KEY: {name: generator_extras(getattr(self, name))
                             for name in ("generator", "g_running")}}

    def generator_file(self):
        """What ``NNNNNN.model`` holds: g_running's state dict, or for NVIDIA's networks
        ``official_files.generator_file`` (the state dict beside their extras)."""
        if self.config.nvidia is None:
            return self.g_running.state_dict()
        return generator_file(self.g_running)

    def restore(self, ckpt, path):
        """Continue exactly from a training checkpoint ``ckpt`` (``state``'s, read from
        ``path``)."""
        load_networks(self, ckpt, path, "the model of its args")
        if self.config.nvidia is not None:
            try:
                for name in ("generator", "g_running"):
                    set_generator_extras(getattr(self, name), ckpt[NVIDIA_KEY][name])
            except (KeyError, TypeError, ValueError) as error:
                raise CheckpointError(f"{path}: its NVIDIA model extras are damaged: "
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

    def _data_state(self):
        """The data order's position: the stream's, or the checkpoint's before it opens."""
        if self.stream is not None:
            return self.stream.state()
        return dict(epoch=self.data_epoch, position=self.data_position)

    # --- one iteration -------------------------------------------------------------------------
    def _open_stream(self, step, new_epoch):
        """Data at ``step``: the checkpoint's epoch and position when the run (re)starts, a new
        epoch when the reference rebuilds its loader (a resolution change)."""
        epoch = self.stream.epoch if self.stream is not None else self.data_epoch
        position = self.data_position
        self.close_stream()
        if new_epoch:
            epoch, position = epoch + 1, 0
        size = size_for_step(step)
        self.stream = ImageStream(self.config.path, size, self.config.batch_for(size), self.seed,
                                  epoch=epoch, position=position, workers=self.config.workers)
        lr = self.config.lr_for(size)
        adjust_lr(self.g_optimizer, lr)
        adjust_lr(self.d_optimizer, lr)

    def close_stream(self):
        """Stop the data stream (its worker processes), if one is open."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _latents(self, images, share):
        """The reference's generator inputs: two lists of two latents with probability 0.9
        (style mixing), else two single latents; one for the D step, one for the G step.
        Drawn for the global batch of ``images``; this process takes its ``share``."""
        code_dim = self.config.code_dim
        if self.config.mixing and random.random() < MIXING_PROBABILITY:
            z = draw_now(jt.randn(4, images, code_dim))[:, share.start:share.stop]
            return [z[0], z[1]], [z[2], z[3]]
        z = draw_now(jt.randn(2, images, code_dim))[:, share.start:share.stop]
        return z[0], z[1]

    def _noise(self, step, images, share):
        """Noise maps for the D step's and the G step's fakes (the generator would draw them
        per call): drawn for the global batch, this process's ``share`` of them."""
        maps = [[draw_now(jt.randn(*shape)) for shape in self.generator.noise_shapes(step, images)]
                for _ in range(2)]
        return [[m[share.start:share.stop] for m in one_pass] for one_pass in maps]

    def _undo_iteration(self, progress, data):
        """Back to the state before an iteration that could not read its batch, so that the
        checkpoint then written resumes with that very iteration."""
        self.progress = progress
        self.close_stream()
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
        if any_process(unreadable is not None)[0]:
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
