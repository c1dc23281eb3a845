"""The numbers of docs/latents.md: projection round trip (W, W+), held-out images against the
mean w, time per image, and SeFa directions against random ones.

    python -m tools.latents_numbers GENERATOR TRAIN_STATE HELDOUT_FOLDER --size 32

Without a checkpoint, on the published architecture (StyledGenerator(): code_dim 512, width
512) with seeded random weights and pixels alone (no discriminator): the round trip and the
directions, or with --cost_only the seconds per projection step at --size (batch 1) and the
peak memory. Random weights cost what trained ones do; their PSNRs are not a trained model's.

    python -m tools.latents_numbers --random_full_width --size 32 --n 4 --steps 1000
    python -m tools.latents_numbers --random_full_width --cost_only --size 1024

--directions_only skips the projections: SeFa's top direction (the authors' and directions.py's
default, without the rescales instance norm cancels) against random unit directions.
"""
import argparse
import os
import resource
import time

import numpy as np

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt

from files.checkpoint import load_generator
from files.images import list_images
from files.grid import to_uint8_image
from latents.projection import Schedule, load_discriminator, project, psnr
from latents.sefa import (rescale_directions, seeded_mean_style, sefa_directions,
                          unit_row_blocks)
from latents.synthesis import edit, render
from model import StyledGenerator, noise_shapes, step_for_size
from PIL import Image

WARMUP_STEPS = 2                 # --cost_only: steps run before timing (Jittor compiles here)
TIMED_STEPS = 5


def as_saved(images):
    """Images as a PNG would hold them (8 bits), back in [-1, 1]."""
    return np.stack([to_uint8_image(image).transpose(2, 0, 1) for image in images]
                    ).astype(np.float32) / 127.5 - 1


def fit(generator, discriminator, targets, step, w_plus, steps, progress=None):
    started = time.perf_counter()
    result = project(generator, targets, step, discriminator, w_plus, Schedule(steps=steps),
                     progress=progress)
    seconds = time.perf_counter() - started
    return result, seconds


class StepClock:
    """Stands in for project()'s progress bar: notes when each step ends."""

    def __init__(self):
        self.ends = []

    def set_postfix(self, **_):
        pass

    def update(self, _):
        self.ends.append(time.perf_counter())


def print_step_cost(generator, size, steps_per_projection):
    """Seconds per projection step (W, batch 1: forward, loss, backward, Adam, noise
    renormalisation) after WARMUP_STEPS, and the process's peak resident memory."""
    targets = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    clock = StepClock()
    fit(generator, None, targets, step_for_size(size), False, WARMUP_STEPS + TIMED_STEPS, clock)
    seconds = np.diff(clock.ends[WARMUP_STEPS - 1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # Linux: KiB
    print("| size | s per step (mean of 5) | min / max | min per "
          f"{steps_per_projection} steps | peak resident memory (GiB) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {size} px | {seconds.mean():.2f} | {seconds.min():.2f} / {seconds.max():.2f} | "
          f"{seconds.mean() * steps_per_projection / 60:.0f} | {peak:.1f} |")


def read_images(folder, n):
    names = list_images(folder)[:n]
    return np.stack([np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"),
                                dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1
                     for name in names])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generator", nargs="?")
    parser.add_argument("train_state", nargs="?")
    parser.add_argument("heldout", nargs="?")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--random_full_width", action="store_true",
                        help="no checkpoint: StyledGenerator() with weights from seed 0, "
                             "pixel loss only")
    parser.add_argument("--cost_only", action="store_true",
                        help="only the seconds per projection step at --size and peak memory")
    parser.add_argument("--directions_only", action="store_true",
                        help="only the SeFa directions against random ones (no projections)")
    args = parser.parse_args()
    step = step_for_size(args.size)
    if args.random_full_width:
        if args.generator is not None:
            parser.error("--random_full_width takes no checkpoint")
        jt.set_global_seed(0)
        generator, discriminator = StyledGenerator(), None
        generator.eval()
    else:
        needs_heldout = not (args.cost_only or args.directions_only)
        if args.train_state is None or (args.heldout is None and needs_heldout):
            parser.error("give GENERATOR TRAIN_STATE HELDOUT_FOLDER, or --random_full_width")
        generator, info = load_generator(args.generator)
        discriminator, missing = load_discriminator(args.train_state, info["width"])
        assert missing is None, missing
    if args.cost_only:
        print_step_cost(generator, args.size, args.steps)
        return
    jt.set_global_seed(1)
    rng = np.random.default_rng(1)

    with jt.no_grad():
        w = generator.style(jt.randn(args.n, generator.code_dim)).numpy()
    noise = [rng.standard_normal(s).astype(np.float32) for s in noise_shapes(step, args.n)]
    known = as_saved(render(generator, np.repeat(w[:, None], step + 1, 1), noise, step))
    print(f"targets generated from known w: {np.mean(np.abs(known) == 1) * 100:.1f} % of "
          "their values saved at 0 or 255")
    if not args.directions_only:
        print_projections(generator, discriminator, known, args, step)
        print()
    print_directions(generator, w, noise, step, rng)


def print_projections(generator, discriminator, known, args, step):
    target_sets = [("generated from known w", known)]
    if args.heldout is not None:
        target_sets.append(("held-out emoji", read_images(args.heldout, args.n)))
    print("| targets | space | PSNR mean w (dB) | PSNR projected (dB) | final loss | s per image |")
    print("|---|---|---:|---:|---:|---:|")
    for label, targets in target_sets:
        for w_plus in (False, True):
            result, seconds = fit(generator, discriminator, targets, step, w_plus, args.steps)
            print(f"| {label} | {'W+' if w_plus else 'W'} | "
                  f"{psnr(result.start_images, targets).mean():.2f} | "
                  f"{psnr(result.images, targets).mean():.2f} | {result.distance.mean():.4f} | "
                  f"{seconds / len(targets):.1f} |", flush=True)


def rescale_share(generator, layers, vector, mean_style):
    """How much of ``vector``'s unit-row style change is a rescale of the AdaINs' outputs at the
    mean style: sum over AdaINs of its squared component along each one's rescale direction, over
    its squared length."""
    changes = [block @ vector for block in unit_row_blocks(generator, layers)]
    rescales = rescale_directions(generator, layers, mean_style)
    return (sum(float(u @ change) ** 2 for u, change in zip(rescales, changes))
            / sum(float(change @ change) for change in changes))


def print_directions(generator, w, noise, step, rng):
    """The mean |pixel change| (0..255) of the images of ``w`` for steps of +1 and -1 along the
    top direction of each method and along 16 random unit directions, on the same layers."""
    mean_style = seeded_mean_style(generator)           # directions.py's
    print("| layers | random unit directions (mean of 16) | authors' top | ratio | its rescale "
          "share | default top | ratio | its rescale share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    w_layers = np.repeat(w[:, None], step + 1, axis=1)
    base = render(generator, w_layers, noise, step)
    random_vectors = rng.standard_normal((16, generator.code_dim))
    random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
    ranges = [(0, min(1, step)), (0, step), (2, step), (step, step)]
    for layers in dict.fromkeys(r for r in ranges if r[0] <= r[1]):   # in order, once each
        def change(vector):  # mean |pixel change| in [0, 255] per unit step (steps of 1 and -1)
            moved = [render(generator, edit(w_layers, vector, s, layers), noise, step)
                     for s in (1.0, -1.0)]
            return np.mean([np.abs(m - base).mean() for m in moved]) * 127.5

        random = np.mean([change(v) for v in random_vectors])
        cells = []
        for mean in (None, mean_style):
            top = sefa_directions(generator, layers, mean)[0][0]
            moved = change(top)
            cells.append(f"{moved:.2f} | {moved / random:.2f} | "
                         f"{rescale_share(generator, layers, top, mean_style):.2f}")
        print(f"| {layers[0]}-{layers[1]} | {random:.2f} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
