"""Project images into a generator's latent space: find the w (or one w per layer, W+) and the
noise maps with which the generator reproduces each image.

    python3 projector.py CKPT photo.jpg other.png --size 32 --out projected
    python3 generate.py CKPT --size 32 --w projected/latents.npz --out edits

The optimisation is NVlabs' projector's (stylegan2-ada-pytorch ``projector.py``): from the
mean w, a learning-rate ramp, decaying noise added to w, noise maps optimised with a penalty on
their autocorrelation (``latents/projection.py``). Its distance is theirs, LPIPS on VGG16, when
``--vgg16`` and ``--lpips_weights`` give the two weight files (``metrics/lpips.py``). Without
them it needs no downloaded weights: pixels at every scale plus the discriminator's features at
the model's resolutions, when the checkpoint holds a discriminator (train.py's
``checkpoint/train_state.model`` does; its ``checkpoint/NNNNNN.model`` files hold the generator
only, and the loss is then pixels alone).

Images are cropped and resized as resize.py does. Writes under ``--out``: ``latents.npz`` (every
image's w or w+, its noise maps and its name; ``files/latents.py``), ``NAME.png`` (the target
beside the reconstruction) and, with ``--gif``, ``NAME.gif`` (the optimisation).
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor

from runtime import cli
from runtime.cli import UsageError
from files.atomic import make_folder
from files.checkpoint import CheckpointError, size_beyond_training
from files.generators import load_generator
from files.grid import save_gif, save_image_grid
from files.images import prepare_image
from files.latents import save_latents
from latents.projection import Schedule, load_discriminator, project, psnr
from metrics.lpips import LIN_WEIGHTS_NAME, MIN_SIZE, VGG_WEIGHTS_NAME, load_lpips
from model import size_for_step, step_for_size

DEFAULT_OUT = "projected"
DEFAULT_BATCH = 8
DEFAULT_FRAMES = 50
DEFAULT_SEED = 0
LATENTS_FILE = "latents.npz"


def read_image(path, size):
    """The image at ``path`` as resize.py would write it at ``size`` px, (3, size, size) in
    [-1, 1] (as training reads it); UsageError (one line) when it cannot be read."""
    try:
        with Image.open(path) as img:
            img.load()
            square = prepare_image(img, size)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such image") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: a folder, not an image") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UsageError(f"{path}: cannot be read as an image ({error})") from None
    pixels = np.asarray(square, dtype=np.float32).transpose(2, 0, 1)
    return pixels / 127.5 - 1


def image_names(paths):
    """Each image's name (its file name without the extension); UsageError for a repeat, since
    its outputs would overwrite another's."""
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    seen = {}
    for path, name in zip(paths, names):
        if name in seen:
            raise UsageError(f"{seen[name]} and {path} have the same name {name!r}; their "
                             f"outputs would overwrite each other: rename one")
        seen[name] = path
    return names


def check_args(args):
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.frames < 2:
        raise UsageError(f"--frames must be at least 2, got {args.frames}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    if not args.noise_regularization >= 0:
        raise UsageError(f"--noise_regularization must be 0 or more, got "
                         f"{args.noise_regularization}")
    if (args.vgg16 is None) != (args.lpips_weights is None):
        given, other = (("--vgg16", "--lpips_weights") if args.lpips_weights is None
                        else ("--lpips_weights", "--vgg16"))
        raise UsageError(f"{given} needs {other} too: LPIPS takes VGG16's weights "
                         f"({VGG_WEIGHTS_NAME}) and its linear layers ({LIN_WEIGHTS_NAME})")
    if args.vgg16 is not None and (args.discriminator is not None or args.pixels_only):
        flag = "--discriminator" if args.discriminator is not None else "--pixels_only"
        raise UsageError(f"{flag} sets the default loss; with --vgg16 the loss is LPIPS: give "
                         f"one or the other")
    if args.size is not None:
        try:
            step_for_size(args.size)
        except ValueError as error:
            raise UsageError(f"--size: {error}") from None


def resolve_size(args, info):
    """The size to project at: --size, else the size a training checkpoint reached."""
    if args.size is None:
        if info["kind"] != "training checkpoint":
            raise UsageError(f"{args.path} is a {info['kind']}, which does not say the size it "
                             f"was trained to: give --size")
        return size_for_step(info["max_step"])
    reason = size_beyond_training(args.size, info)
    if reason:
        raise UsageError(reason)
    return args.size


def main(args):
    """Project ``args.images``; returns the paths written (latents.npz first)."""
    check_args(args)
    names = image_names(args.images)
    with cli.input_errors(CheckpointError):
        generator, info = load_generator(args.path)
    size = resolve_size(args, info)
    step = step_for_size(size)
    targets = np.stack([read_image(path, size) for path in args.images])

    discriminator = lpips = None
    if args.vgg16 is not None:
        if size < MIN_SIZE:
            raise UsageError(f"--vgg16: LPIPS needs images of at least {MIN_SIZE} px; this "
                             f"projection is at {size} px")
        with cli.input_errors(CheckpointError):
            lpips = load_lpips(args.vgg16, args.lpips_weights)
    elif not args.pixels_only:
        source = args.discriminator or args.path
        with cli.input_errors(CheckpointError):
            discriminator, missing = load_discriminator(source, info["width"])
        if missing:
            print(f"projector.py: note: {missing}; the loss is pixels only (train.py's "
                  f"checkpoint/train_state.model holds one: --discriminator)", file=sys.stderr)
    make_folder(args.out)
    loss = ("LPIPS (VGG16)" if lpips is not None else "pixels + discriminator features"
            if discriminator is not None else "pixels")
    print(f"loaded {info['kind']} {args.path} (code_dim={info['code_dim']}, width="
          f"{info['width']}); projecting {len(targets)} images at {size} px into "
          f"{'W+' if args.w_plus else 'W'}, {args.steps} steps, loss: {loss}")

    schedule = Schedule(steps=args.steps, initial_lr=args.lr,
                        noise_regularization=args.noise_regularization)
    results = []
    n_batches = -(-len(targets) // args.batch)
    started = time.perf_counter()
    with tqdm(total=args.steps * n_batches, desc="project", unit="step",
              file=sys.stderr) as progress:
        for start in range(0, len(targets), args.batch):
            results.append(project(generator, targets[start:start + args.batch], step,
                                   discriminator, args.w_plus, schedule, seed=args.seed + start,
                                   progress=progress, frames=args.frames if args.gif else 0,
                                   lpips=lpips))
    seconds = time.perf_counter() - started

    w = np.concatenate([r.w for r in results])
    noise = [np.concatenate([r.noise[i] for r in results]) for i in range(step + 1)]
    images = np.concatenate([r.images for r in results])
    start_images = np.concatenate([r.start_images for r in results])
    written = [os.path.join(args.out, LATENTS_FILE)]
    save_latents(written[0], w, noise, names)
    for k, name in enumerate(names):
        written.append(os.path.join(args.out, f"{name}.png"))
        save_image_grid(np.stack([targets[k], images[k]]), written[-1], nrow=2)
    if args.gif:
        frames = [frame for r in results for frame in np.split(np.stack(r.frames), len(r.w), axis=1)]
        for k, name in enumerate(names):
            beside = np.concatenate([np.repeat(targets[k][None], len(frames[k]), axis=0),
                                     frames[k][:, 0]], axis=3)
            written.append(os.path.join(args.out, f"{name}.gif"))
            save_gif(beside, written[-1])

    final, initial = psnr(images, targets), psnr(start_images, targets)
    for name, after, before in zip(names, final, initial):
        print(f"{name}: PSNR {after:.2f} dB (mean w: {before:.2f} dB)")
    print(f"wrote {len(written)} files to {args.out} in {seconds:.1f} s "
          f"({seconds / len(targets):.1f} s per image)")
    return written


def build_parser():
    parser = argparse.ArgumentParser(
        description="Project images into a StyleGAN generator's latent space (W or W+, with "
                    "noise maps), as NVlabs' projector does: with their LPIPS loss when "
                    "--vgg16 and --lpips_weights are given, else with a loss that needs no "
                    "downloaded weights.", formatter_class=cli.HelpFormatter)
    parser.add_argument("path", type=str,
                        help="checkpoint: a training checkpoint (its g_running, and its "
                             "discriminator for the loss) or a generator state dict")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (any size; centre-cropped and resized as resize.py "
                             "does); each one's name (file name without extension) names its "
                             "outputs")
    parser.add_argument("--out", type=str, default=DEFAULT_OUT,
                        help=f"folder for {LATENTS_FILE}, NAME.png and NAME.gif, created if "
                             f"needed (default {DEFAULT_OUT})")
    parser.add_argument("--size", type=int, default=None,
                        help="image side in px, a power of two; at most what a training "
                             "checkpoint reached (default: that size; a generator state dict "
                             "needs --size)")
    parser.add_argument("--w_plus", action="store_true",
                        help="fit one w per synthesis layer (W+) instead of one w for all "
                             "(W): closer reconstructions, less editable latents")
    parser.add_argument("--steps", type=int, default=Schedule.steps,
                        help=f"optimisation steps (default {Schedule.steps}, NVlabs')")
    parser.add_argument("--lr", type=float, default=Schedule.initial_lr,
                        help=f"peak learning rate of Adam (default {Schedule.initial_lr}, NVlabs')")
    parser.add_argument("--noise_regularization", type=float,
                        default=Schedule.noise_regularization,
                        help="weight of the noise maps' autocorrelation penalty (default "
                             f"{Schedule.noise_regularization:g}, NVlabs')")
    parser.add_argument("--discriminator", type=str, default=None, metavar="CKPT",
                        help="checkpoint whose discriminator gives the loss's features, e.g. "
                             "checkpoint/train_state.model of the same run (default: the "
                             "projected checkpoint itself; pixels alone when it holds none)")
    parser.add_argument("--pixels_only", action="store_true",
                        help="leave the discriminator's features out of the loss")
    parser.add_argument("--vgg16", type=str, default=None, metavar="PATH",
                        help=f"torchvision's VGG16 weights ({VGG_WEIGHTS_NAME}); with "
                             f"--lpips_weights the loss is NVlabs' LPIPS instead of pixels and "
                             f"discriminator features (default: none)")
    parser.add_argument("--lpips_weights", type=str, default=None, metavar="PATH",
                        help=f"the lpips package's linear layers for VGG ({LIN_WEIGHTS_NAME} "
                             f"inside the package); goes with --vgg16 (default: none)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help="images optimised together (each on its own: the results do not "
                             "depend on the batch's other images, except through the seed)")
    parser.add_argument("--gif", action="store_true",
                        help="also write NAME.gif: the target beside the image during the "
                             "optimisation")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="frames of each --gif")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the initial noise maps and of the noise added to w")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(CheckpointError,))
