"""Sample a trained StyleGAN generator: a sample grid, style-mixing grids, and optionally an
interpolation strip and GIF and single images.

Faithful to the reference's ``generate.py``: ``python generate.py CHECKPOINT`` computes the mean
style w from 10 x 1024 random latents, writes ``style_mixing/sample.png`` (n_row x n_col samples
with the truncation trick at style_weight 0.7) and 20 style-mixing grids
``style_mixing/sample_mixing_{j}.png``. A mixing grid has an empty (black) tile top-left, the
n_col source images along the first row, then one row per target (n_row of them): the target
image, then the images that take the layers in ``mixing_range`` (default (0, 1): the coarse
4-8 px styles) from each column's source and all other layers from the row's target, which is
what the reference's ``generator([target, source], mixing_range=(0, 1))`` computes.

Beyond the reference, from files of ``files/latents.py``: ``--w FILE`` (projector.py's latents)
replaces the random samples by the projected images: ``projected.png``, a mixing grid of them
(``projected_mixing.png``: the layers of ``--mixing_range`` from each column's image, the others
from each row's) and with ``--interpolate``, the straight lines between consecutive ones
(``projected_interpolation.png``, ``.gif`` and single frames). ``--direction FILE:K`` (a
directions.py file) writes ``direction_K.png``: one row per projected image or random sample,
one column per ``--strength``, the edit applied to the file's layers only.

NVIDIA's official pickles are read too (``files.generators``), at their own resolution by
default, truncated towards their ``dlatent_avg`` below ``--truncation_cutoff`` (8); ``--noise
stored`` uses their noise maps, and ``--z FILE.npy`` renders given latent codes, one PNG each
in NVIDIA's 8-bit conversion (docs/pretrained.md).
"""
import argparse
import os
import sys

import numpy as np
from tqdm import tqdm

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt

from runtime import cli
from runtime.cli import UsageError
from files.atomic import make_folder
from files.checkpoint import CheckpointError, size_beyond_training
from files.generators import load_generator
from files.grid import official_uint8, save_gif, save_image_grid, save_png
from files.latents import LatentsError, load_directions, load_latents
from latents.synthesis import edit, mix, render
from networks.style_layers import (DEFAULT_LAYER_GROUP, LAYER_GROUPS, LAYER_RANGE_SYNTAX,
                                   parse_layer_range)
from latents.mean_style import MEAN_STYLE_BATCH, MEAN_STYLE_LATENTS, average_style
from model import noise_shapes, size_for_step, step_for_size, truncate

DEFAULT_SIZE = 128
DEFAULT_N_ROW = 5
DEFAULT_N_COL = 5
DEFAULT_OUT = "style_mixing"
DEFAULT_N_MIXING = 20
STYLE_WEIGHT = 0.7                  # the reference's truncation: w = mean + 0.7 (w - mean)
NO_TRUNCATION = 1.0
ALPHA = 1                           # the newest block fully faded in, as the reference samples
IMAGE_BATCH = 16                    # images per forward pass for --interpolate and --n_images
MAX_BATCH_PIXELS = 32 * 128 * 128   # images x pixels of one forward pass: bounds the memory at
                                    # 256-1024 px (1024 px: one image a pass; 128 px: 32)
DEFAULT_STRENGTH = "-3:3:7"         # SeFa's authors step unit directions from -3 to 3


def parse_mixing_range(text):
    """--mixing_range's layer range -> (first layer, last layer)."""
    try:
        return parse_layer_range(text)
    except ValueError as error:
        raise UsageError(f"--mixing_range: {error}") from None


def parse_direction(text):
    """``FILE:K`` -> (FILE, K), K the index of a direction (0: the largest eigenvalue's)."""
    path, colon, index = text.rpartition(":")
    try:
        k = int(index)
    except ValueError:
        k = -1
    if not colon or not path or k < 0:
        raise UsageError(f"--direction must be FILE:K (K = 0, 1, ...: which direction of the "
                         f"file), got {text!r}")
    return path, k


def parse_strength(text):
    """``A:B:N`` -> N evenly spaced strengths from A to B (both included)."""
    try:
        low, high, count = text.split(":")
        low, high, count = float(low), float(high), int(count)
    except ValueError:
        raise UsageError(f"--strength must be A:B:N (N steps from A to B), got {text!r}") from None
    if count < 1 or not (np.isfinite(low) and np.isfinite(high)):
        raise UsageError(f"--strength A:B:N needs finite A, B and N >= 1, got {text!r}")
    return np.linspace(low, high, count, dtype=np.float32)


def images_per_pass(step):
    """How many images of ``step``'s size one forward pass may hold (MAX_BATCH_PIXELS)."""
    return max(1, MAX_BATCH_PIXELS // size_for_step(step) ** 2)


@jt.no_grad()
def forward_in_batches(generator, codes, step, **settings):
    """``generator(codes, step=step, **settings)`` as numpy, images_per_pass(step) images at a
    time; ``codes`` is a latent batch or a list of them (style mixing), as the generator takes."""
    many = isinstance(codes, (list, tuple))
    n = (codes[0] if many else codes).shape[0]
    per_pass = images_per_pass(step)
    parts = []
    for start in range(0, n, per_pass):
        part = ([c[start:start + per_pass] for c in codes] if many
                else codes[start:start + per_pass])
        parts.append(generator(part, step=step, **settings).numpy())
    return np.concatenate(parts, axis=0)


@jt.no_grad()
def sample(generator, step, mean_style, n_sample, style_weight=STYLE_WEIGHT, **extra):
    """``n_sample`` random images (n, 3, size, size) in [-1, 1] (roughly), as numpy; ``extra``:
    the generator's ``truncation_cutoff`` and ``noise``."""
    return forward_in_batches(generator, jt.randn(n_sample, generator.code_dim), step,
                              alpha=ALPHA, mean_style=mean_style, style_weight=style_weight,
                              **extra)


@jt.no_grad()
def style_mixing(generator, step, mean_style, n_source, n_target, style_weight=STYLE_WEIGHT,
                 mixing_range=LAYER_GROUPS[DEFAULT_LAYER_GROUP], **extra):
    """Tiles of one mixing grid, in reading order for a grid of n_source + 1 columns."""
    source_code = jt.randn(n_source, generator.code_dim)
    target_code = jt.randn(n_target, generator.code_dim)
    size = size_for_step(step)
    settings = dict(step=step, alpha=ALPHA, mean_style=mean_style, style_weight=style_weight,
                    **extra)

    empty_tile = -np.ones((1, 3, size, size), dtype=np.float32)  # black once normalised
    source_image = forward_in_batches(generator, source_code, **settings)
    target_image = forward_in_batches(generator, target_code, **settings)
    tiles = [empty_tile, source_image]
    for i in range(n_target):
        mixed = forward_in_batches(generator, [target_code[i:i + 1].repeat(n_source, 1),
                                               source_code], mixing_range=mixing_range, **settings)
        tiles += [target_image[i:i + 1], mixed]
    return np.concatenate(tiles, axis=0)


def random_noise(step, batch=1):
    """Noise maps for every resolution up to ``step``, as the generator draws them."""
    return [jt.randn(*shape) for shape in noise_shapes(step, batch)]


@jt.no_grad()
def interpolation_frames(generator, z0, z1, noise, step, mean_style, style_weight=STYLE_WEIGHT,
                         n_frames=8, batch=IMAGE_BATCH, progress=None):
    """``n_frames`` images along the straight line in W from z0's style to z1's (both ends
    included), all with the same ``noise`` (one map per resolution, batch 1).

    Frame k uses w = (1 - t) w0 + t w1, t = k / (n_frames - 1), so the end frames have exactly
    the end points' styles and equal ``generator(z0 or z1, noise=noise, ...)``.
    """
    w0, w1 = generator.style(z0), generator.style(z1)
    if mean_style is not None:
        w0, w1 = truncate(w0, mean_style, style_weight), truncate(w1, mean_style, style_weight)
    positions = np.linspace(0.0, 1.0, n_frames, dtype=np.float32)
    frames = []
    for start in range(0, n_frames, batch):
        t = jt.array(positions[start:start + batch].reshape(-1, 1))
        w = (1 - t) * w0 + t * w1
        batch_noise = [n.repeat(t.shape[0], 1, 1, 1) for n in noise]
        frames.append(generator.generator([w] * (step + 1), batch_noise, step, ALPHA).numpy())
        if progress is not None:
            progress.update(1)
    return np.concatenate(frames, axis=0)


def projected_latents(path, code_dim, step):
    """Styles (n, step + 1, code_dim) and noise maps of a projector.py file, and the names;
    UsageError when the file does not fit the model at ``step``. Noise maps are drawn where the
    file has none for a layer (it was projected at a smaller size, or without noise)."""
    try:
        latents = load_latents(path, code_dim)
    except LatentsError as error:
        raise UsageError(f"--w {error}") from None
    n, layers, _ = latents.w.shape
    if layers < step + 1:
        raise UsageError(f"--w {path}: w+ of {layers} layers (up to {size_for_step(layers - 1)} "
                         f"px); --size {size_for_step(step)} needs {step + 1}")
    noise = list(latents.noise or [])[:step + 1]
    noise += [np.random.randn(*shape).astype(np.float32)
              for shape in noise_shapes(step, n)[len(noise):]]
    return latents.w[:, :step + 1], noise, latents.names


def projected_outputs(generator, w, noise, step, out, mixing_range, n_frames, per_pass):
    """The images of --w: the projections, their mixing grid and (n_frames > 0) interpolations
    between consecutive ones. Returns the paths written."""
    n = len(w)
    written = [os.path.join(out, "projected.png")]
    save_image_grid(render(generator, w, noise, step, per_pass), written[-1], nrow=n)

    size = size_for_step(step)
    mixed_w = np.stack([mix(w[t], w[s], mixing_range) for t in range(n) for s in range(n)])
    mixed_noise = [np.concatenate([maps[s:s + 1] if mixing_range[0] <= i <= mixing_range[1]
                                   else maps[t:t + 1] for t in range(n) for s in range(n)])
                   for i, maps in enumerate(noise)]
    mixed = render(generator, mixed_w, mixed_noise, step, per_pass).reshape(n, n, 3, size, size)
    projected = render(generator, w, noise, step, per_pass)
    tiles = [-np.ones((1, 3, size, size), dtype=np.float32), projected]
    for t in range(n):
        tiles += [projected[t:t + 1], mixed[t]]
    written.append(os.path.join(out, "projected_mixing.png"))
    save_image_grid(np.concatenate(tiles), written[-1], nrow=n + 1)

    if n_frames and n > 1:
        t = np.linspace(0, 1, n_frames, dtype=np.float32)
        frames = []
        for a in range(n - 1):  # the end frame of each line starts the next: shown once
            ends = slice(0, n_frames if a == n - 2 else n_frames - 1)
            line_w = (1 - t[:, None, None]) * w[a] + t[:, None, None] * w[a + 1]
            line_noise = [(1 - t[:, None, None, None]) * maps[a] + t[:, None, None, None]
                          * maps[a + 1] for maps in noise]
            frames.append(render(generator, line_w[ends], [m[ends] for m in line_noise], step,
                                 per_pass))
        frames = np.concatenate(frames)
        written.append(os.path.join(out, "projected_interpolation.png"))
        save_image_grid(frames, written[-1], nrow=n_frames)
        written.append(os.path.join(out, "projected_interpolation.gif"))
        save_gif(frames, written[-1])
        for k in range(len(frames)):
            written.append(os.path.join(out, "projected_interpolation", f"{k:06d}.png"))
            save_image_grid(frames[k:k + 1], written[-1], nrow=1)
    return written


def direction_grid(generator, w, noise, step, directions, k, strengths, per_pass):
    """Tiles (rows x len(strengths)) of the images of ``w`` (n, step + 1, code_dim) moved along
    direction ``k`` by each strength, on the directions' layers only."""
    n, columns = len(w), len(strengths)
    layers = (directions.layers[0], min(directions.layers[1], step))
    edited = np.concatenate([edit(w[r:r + 1].repeat(columns, 0), directions.vectors[k],
                                  strengths, layers) for r in range(n)])
    repeated_noise = [np.repeat(maps, columns, axis=0) for maps in noise]
    return render(generator, edited, repeated_noise, step, per_pass)


def check_args(args):
    """Validate the flags that do not depend on the checkpoint; returns (step, mixing range)
    (step of --size, or of DEFAULT_SIZE until the model says its own)."""
    try:
        step = step_for_size(DEFAULT_SIZE if args.size is None else args.size)
    except ValueError as error:
        raise UsageError(f"--size: {error}") from None
    for flag, minimum in (("n_row", 1), ("n_col", 1), ("n_mixing", 0), ("n_images", 0),
                          ("n_mean_latents", 1)):
        if getattr(args, flag) < minimum:
            raise UsageError(f"--{flag} must be at least {minimum}, got {getattr(args, flag)}")
    if args.interpolate == 1 or args.interpolate < 0:
        raise UsageError(f"--interpolate needs at least 2 frames (0: none), got {args.interpolate}")
    if args.truncation_cutoff is not None and args.truncation_cutoff < 0:
        raise UsageError(f"--truncation_cutoff must be 0 or more layers, got "
                         f"{args.truncation_cutoff}")
    if args.seed is not None and not 0 <= args.seed < 2 ** 32:
        raise UsageError(f"--seed must be an integer from 0 to 2**32 - 1, got {args.seed}")
    mixing_range = parse_mixing_range(args.mixing_range)
    if args.direction is not None:
        parse_direction(args.direction)
    parse_strength(args.strength)
    if (args.n_mixing or args.w) and mixing_range[0] > step:
        raise UsageError(f"--mixing_range {args.mixing_range} (layers {mixing_range[0]}-"
                         f"{mixing_range[1]}) has no layer at --size {args.size} "
                         f"(layers 0-{step}); mixed images would equal the targets")
    return step, mixing_range


def main(args):
    """Write the images the flags ask for under ``args.out``; returns the paths written."""
    step, mixing_range = check_args(args)
    generator, info = load_generator(args.path)
    official = info["flavour"] == "nvidia"
    if args.size is None:  # an official model's own resolution, else the reference's default
        args.size = size_for_step(info["max_step"]) if official else DEFAULT_SIZE
        step = step_for_size(args.size)
    reason = size_beyond_training(args.size, info)
    if reason:
        raise UsageError(reason)
    if args.noise == "stored" and not official:
        raise UsageError(f"--noise stored: {args.path} holds no noise maps (only NVIDIA's "
                         f"official models do); use --noise random")
    if args.truncation_cutoff is None and official:
        args.truncation_cutoff = info["truncation"][1]
    z = load_z(args.z, info["code_dim"]) if args.z is not None else None
    projected = (projected_latents(args.w, info["code_dim"], step) if args.w is not None
                 else None)
    direction = None
    if args.direction is not None:
        path, k = parse_direction(args.direction)
        try:
            directions = load_directions(path, info["code_dim"])
        except LatentsError as error:
            raise UsageError(f"--direction {error}") from None
        if k >= len(directions.vectors):
            raise UsageError(f"--direction {args.direction}: {path} holds directions 0-"
                             f"{len(directions.vectors) - 1}, not {k}")
        if directions.layers[0] > step:
            raise UsageError(f"--direction {path}: acts on layers {directions.layers[0]}-"
                             f"{directions.layers[1]}, none of them at --size {args.size} "
                             f"(layers 0-{step})")
        direction = (directions, k, parse_strength(args.strength))
    make_folder(args.out)  # an unwritable --out fails now, not after the mean style
    print(f"loaded {info['kind']} {args.path} (code_dim={info['code_dim']}, "
          f"n_mlp={info['n_mlp']}, width={info['width']}); generating {args.size} px")
    if args.seed is not None:
        jt.set_global_seed(args.seed)  # seeds Jittor, numpy and python's random

    truncated = args.truncation != NO_TRUNCATION and projected is None
    n_mean_batches = (-(-args.n_mean_latents // MEAN_STYLE_BATCH) if truncated and not official
                      else 0)
    per_pass = min(IMAGE_BATCH, images_per_pass(step))
    n_interpolation_batches = -(-args.interpolate // per_pass)
    n_image_batches = -(-args.n_images // per_pass)
    if z is not None:  # the given latents replace the random ones
        total = n_mean_batches + -(-len(z) // per_pass)
    elif projected is not None:  # the projected images replace the random ones
        total = n_mean_batches + 1 + (direction is not None)
    else:
        total = (n_mean_batches + 1 + args.n_mixing + n_interpolation_batches + n_image_batches
                 + (direction is not None))
    written = []
    with tqdm(total=total, desc="generate", unit="step", file=sys.stderr) as progress:
        if not truncated:
            mean_style = None
        elif official:  # the file's dlatent_avg, as NVIDIA's truncation uses
            mean_style = jt.array(generator.dlatent_avg)
        else:
            mean_style = average_style(generator, args.n_mean_latents, progress=progress)
        settings = dict(alpha=ALPHA, mean_style=mean_style, style_weight=args.truncation,
                        truncation_cutoff=args.truncation_cutoff)

        if z is not None:
            written += latent_images(generator, z, step, settings, args, per_pass, progress)
            print(f"wrote {len(written)} files to {args.out}")
            return written
        if projected is not None:
            w, noise, _ = projected
            written += projected_outputs(generator, w, noise, step, args.out, mixing_range,
                                         args.interpolate, per_pass)
            progress.update(1)
        if projected is None:
            written += random_outputs(generator, step, mean_style, mixing_range, args, per_pass,
                                      progress)
        if direction is not None:
            directions, k, strengths = direction
            if projected is not None:
                w, noise, _ = projected
            else:  # rows of random samples, truncated as sample.png
                with jt.no_grad():
                    styles = generator.style(jt.randn(args.n_row, generator.code_dim))
                    if mean_style is not None:
                        styles = truncate(styles, mean_style, args.truncation)
                w = np.repeat(styles.numpy()[:, None], step + 1, axis=1)
                noise = [np.random.randn(*shape).astype(np.float32)
                         for shape in noise_shapes(step, args.n_row)]
            tiles = direction_grid(generator, w, noise, step, directions, k, strengths, per_pass)
            written.append(os.path.join(args.out, f"direction_{k}.png"))
            save_image_grid(tiles, written[-1], nrow=len(strengths))
            progress.update(1)
    print(f"wrote {len(written)} files to {args.out}")
    return written


def generator_extras(generator, step, args):
    """The flags generate.py adds to the reference's generator call: the truncation cutoff and,
    with --noise stored, the file's noise maps (shared by every image)."""
    extra = {"truncation_cutoff": args.truncation_cutoff}
    if args.noise == "stored":
        extra["noise"] = generator.noise_maps(step, 1, stored=True)
    return extra


def load_z(path, code_dim):
    """The latent codes of a .npy file (N, code_dim), read without pickles; UsageError else."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"--z {path}: not a readable .npy array ({reason}); write it with "
                         f"numpy.save") from None
    if not isinstance(z, np.ndarray) or z.ndim != 2 or z.shape[0] < 1 or z.shape[1] != code_dim \
            or z.dtype.kind not in "fiu":
        raise UsageError(f"--z {path}: holds an array of shape {getattr(z, 'shape', '?')} and "
                         f"type {getattr(z, 'dtype', '?')}; expected (N, {code_dim}) numbers, one "
                         f"latent code a row")
    z = z.astype(np.float32)
    if not np.isfinite(z).all():
        raise UsageError(f"--z {path}: holds values that are not finite numbers")
    return z


@jt.no_grad()
def latent_images(generator, z, step, settings, args, per_pass, progress):
    """--z: one image a row of ``z``, images/NNNNNN.png in row order, in NVIDIA's 8-bit
    conversion (``files.grid.official_uint8``). Returns the paths written."""
    written = []
    extra = generator_extras(generator, step, args)
    for start in range(0, len(z), per_pass):
        batch = jt.array(z[start:start + per_pass])
        images = generator(batch, step=step, **dict(settings, **extra)).numpy()
        for k, pixels in enumerate(official_uint8(images)):
            written.append(os.path.join(args.out, "images", f"{start + k:06d}.png"))
            save_png(pixels, written[-1])
        progress.update(1)
    return written


def random_outputs(generator, step, mean_style, mixing_range, args, per_pass, progress):
    """The reference's outputs from random latents: sample.png, the mixing grids, and the
    --interpolate and --n_images images. Returns the paths written."""
    written = []
    extra = generator_extras(generator, step, args)
    images = sample(generator, step, mean_style, args.n_row * args.n_col, args.truncation,
                    **extra)
    written.append(os.path.join(args.out, "sample.png"))
    save_image_grid(images, written[-1], nrow=args.n_col)
    progress.update(1)

    for j in range(args.n_mixing):
        tiles = style_mixing(generator, step, mean_style, args.n_col, args.n_row,
                             args.truncation, mixing_range, **extra)
        written.append(os.path.join(args.out, f"sample_mixing_{j}.png"))
        save_image_grid(tiles, written[-1], nrow=args.n_col + 1)
        progress.update(1)

    if args.interpolate:
        z0, z1 = jt.randn(1, generator.code_dim), jt.randn(1, generator.code_dim)
        frames = interpolation_frames(generator, z0, z1, random_noise(step), step, mean_style,
                                      args.truncation, args.interpolate, batch=per_pass,
                                      progress=progress)
        written.append(os.path.join(args.out, "interpolation.png"))
        save_image_grid(frames, written[-1], nrow=args.interpolate)
        written.append(os.path.join(args.out, "interpolation.gif"))
        save_gif(frames, written[-1])

    for start in range(0, args.n_images, per_pass):
        count = min(per_pass, args.n_images - start)
        images = sample(generator, step, mean_style, count, args.truncation, **extra)
        for k in range(count):
            written.append(os.path.join(args.out, "images", f"{start + k:06d}.png"))
            save_image_grid(images[k:k + 1], written[-1], nrow=1)
        progress.update(1)
    return written


def joined_strength(argv):
    """``argv`` with ``--strength A:B:N`` written ``--strength=A:B:N``: argparse takes a
    negative A (``-3:3:7``) for a flag of its own otherwise."""
    argv = list(argv)
    for i in range(len(argv) - 1):
        if argv[i] == "--strength":
            argv[i:i + 2] = [f"--strength={argv[i + 1]}"]
            break
    return argv


def build_parser():
    parser = argparse.ArgumentParser(
        description="Generate samples and style-mixing grids from a StyleGAN generator checkpoint.")
    parser.add_argument("path", type=str,
                        help="checkpoint: a generator state dict (e.g. the reference's "
                             "FFHQ_80000.model, checkpoint/NNNNNN.model) or a training "
                             "checkpoint (its g_running is used), from jt.save or the PyTorch "
                             "original's torch.save (its published models), or NVIDIA's official "
                             "StyleGAN pickle (its Gs; read without running anything in it); "
                             "the model's sizes are read from it")
    parser.add_argument("--size", type=int, default=None,
                        help="image side in px, a power of two from 4 to 1024; at most what a "
                             "training checkpoint reached (a bare state dict allows any) "
                             f"(default {DEFAULT_SIZE}; an NVIDIA model's own resolution)")
    parser.add_argument("--n_row", type=int, default=DEFAULT_N_ROW,
                        help="rows of sample.png, and targets (rows) of each mixing grid "
                             f"(default {DEFAULT_N_ROW})")
    parser.add_argument("--n_col", type=int, default=DEFAULT_N_COL,
                        help="columns of sample.png, and sources (columns) of each mixing grid "
                             f"(default {DEFAULT_N_COL})")
    parser.add_argument("--out", type=str, default=DEFAULT_OUT,
                        help=f"folder the images are written to, created if needed "
                             f"(default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed: the same seed, checkpoint and flags give the same "
                             "images (default: unseeded, as the reference)")
    parser.add_argument("--truncation", type=float, default=STYLE_WEIGHT,
                        help="truncation style_weight psi: w = mean + psi (w - mean); 1 = none "
                             "(the mean style is then not computed), 0 = every image has the "
                             f"mean style (default {STYLE_WEIGHT})")
    parser.add_argument("--truncation_cutoff", type=int, default=None, metavar="N",
                        help="truncate only layers 0..N-1, counted as NVIDIA counts them (two "
                             "per size: 8 = 4 to 32 px); the centre is an NVIDIA model's stored "
                             "dlatent_avg (default: 8 for NVIDIA's models, as their code; every "
                             "layer for the original's)")
    parser.add_argument("--noise", choices=("random", "stored"), default="random",
                        help="noise maps: random draws, or an NVIDIA model's stored maps (its "
                             "randomize_noise=False: the same noise for every image) "
                             "(default random)")
    parser.add_argument("--z", type=str, default=None, metavar="FILE.npy",
                        help="render these latent codes, an (N, latent size) array saved with "
                             "numpy.save, instead of the random samples and grids: one image a "
                             "row, OUT/images/000000.png ... in row order, in NVIDIA's 8-bit "
                             "conversion (default: none)")
    parser.add_argument("--n_mixing", type=int, default=DEFAULT_N_MIXING,
                        help=f"number of style-mixing grids (default {DEFAULT_N_MIXING})")
    parser.add_argument("--mixing_range", type=str, default=DEFAULT_LAYER_GROUP,
                        help="synthesis layers that mixed images take from the sources (first "
                             "row); the others come from the targets (first column): "
                             f"{LAYER_RANGE_SYNTAX} (default {DEFAULT_LAYER_GROUP})")
    parser.add_argument("--interpolate", type=int, default=0, metavar="N",
                        help="also write interpolation.png (a strip) and interpolation.gif of N "
                             "frames along a straight line in W between two random latents, "
                             "with fixed noise (default 0: none)")
    parser.add_argument("--n_images", type=int, default=0, metavar="N",
                        help="also write N single images images/000000.png, ... (default 0)")
    parser.add_argument("--w", type=str, default=None, metavar="FILE",
                        help="latents written by projector.py (its latents.npz): write "
                             "projected.png, projected_mixing.png (--mixing_range from each "
                             "column's image) and, with --interpolate N, N frames between each "
                             "two consecutive images (projected_interpolation.png, .gif and "
                             "projected_interpolation/*.png) instead of the random samples and "
                             "grids (default: none)")
    parser.add_argument("--direction", type=str, default=None, metavar="FILE:K",
                        help="also write direction_K.png: each projected image (--w) or each of "
                             "--n_row random samples, one per row, moved along direction K of a "
                             "directions.py file (0: the largest eigenvalue's) by each --strength, "
                             "on the file's layers only (default: none)")
    parser.add_argument("--strength", type=str, default=DEFAULT_STRENGTH, metavar="A:B:N",
                        help="the --direction grid's columns: N strengths from A to B "
                             f"(default {DEFAULT_STRENGTH})")
    parser.add_argument("--n_mean_latents", type=int, default=MEAN_STYLE_LATENTS,
                        help="random latents the mean style is averaged over, in batches of "
                             f"{MEAN_STYLE_BATCH} (default {MEAN_STYLE_LATENTS}, as the reference)")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args(joined_strength(sys.argv[1:]))),
            failures=(CheckpointError,))
