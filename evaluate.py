"""Score a generator against its data set with the multi-scale sliced Wasserstein distance.

    python evaluate.py CKPT DATA --size 32 --n 8192            # generated vs real
    python evaluate.py DATA --size 32 --n 8192 --real-vs-real  # the data's own floor
    python evaluate.py CKPT DATA --size 32 --real-vs-real      # both, in one table
    python evaluate.py RUN DATA --size 32 --n 488              # every checkpoint of a run

DATA is the data root holding ``DATA/<size>/`` (the layout resize.py writes). ``--n`` generated
images are compared with ``--n`` real images drawn at random (with ``--seed``) from
``DATA/<size>``; with ``--real-vs-real`` another ``--n`` disjoint real images are compared with
the same ones, which gives the value a perfect generator would get on average (the floor). The
metric is ``swd.py``'s (Karras et al. 2018), reported x 1e3 per pyramid level (``--size`` down to
16 px) and averaged, as a markdown table on stdout.

Given a training run's folder RUN (train.py's ``--out``), every ``RUN/checkpoint/NNNNNN.model`` is
scored exactly as it would be alone (``evaluate_run``), like the official code scores every
snapshot. The table, one row per checkpoint, goes to ``RUN/swd.csv`` (the primary record: CSV,
like train.py's log.csv) and stdout; ``RUN/curves.png`` draws the losses of ``RUN/log.csv`` and
the SWD over iterations (plot.py, with Pillow).

Both sets enter the metric as the uint8 values a PNG holds: the data set's images as read from
their files (RGB, resized like dataset.py when a file is not ``--size`` px), the generator's
[-1, 1] outputs exactly as grid.py writes them to a PNG (clamped to [-1, 1], mapped to 0..255,
rounded to nearest). FID is not computed: it needs Inception weights this project cannot fetch.
"""
import argparse
import csv
import os
import re
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

import jittor_env  # noqa: F401  (prepares Jittor's environment before it is imported)
import jittor as jt

import cli
import swd
from atomic import atomic_write
from checkpoint import CheckpointError, load_generator, size_beyond_training
from dataset import IMAGE_ERRORS, DatasetError, check_resolutions, resolution_folder
from grid import to_uint8_image
from model import (MEAN_STYLE_LATENTS, StyledGenerator, average_style, size_for_step,
                   step_for_size)
from plot import Line, Panel, Series, save_panels
from resize import list_images, prepare_image
from run_folder import CHECKPOINT_DIR, LOG_FILE

DEFAULT_SIZE = 128
DEFAULT_N = 8192
DEFAULT_BATCH = 64
DEFAULT_SEED = 0
NO_TRUNCATION = 1.0
ALPHA = 1                           # the newest block fully faded in, as generate.py samples
GENERATED_COLUMN = "generated vs real"
FLOOR_COLUMN = "real vs real"
UNTRAINED_COLUMN = "untrained vs real"
DIGITS = 4                          # the official code prints SWD x 1e3 with %.4f
RUN_CHECKPOINT = re.compile(r"^(\d{6,})\.model$")   # train.py's checkpoint/NNNNNN.model
RUN_TABLE = "swd.csv"               # written into the run folder: one row per checkpoint
RUN_PLOT = "curves.png"             # losses from log.csv and SWD over iterations
LOSS_POINTS = 200                   # the loss curves are means over about len(log) / 200 rows


class EvaluateError(ValueError):
    """A flag, the data folder or the checkpoint cannot be used (one-line message)."""


class EvaluateUsageError(EvaluateError):
    """A flag has a value evaluate.py cannot use (exit 2; files that fail exit 1)."""


def to_pixels(images):
    """(N, 3, H, W) generator outputs in [-1, 1] -> (N, 3, H, W) uint8: the values grid.py writes
    to a PNG for each image (``save_image_grid(image, path, nrow=1)``)."""
    return np.stack([to_uint8_image(image) for image in np.asarray(images)]).transpose(0, 3, 1, 2)


def read_images(paths, size, progress=None):
    """(N, 3, size, size) uint8 RGB pixels of the image files ``paths``, read as dataset.py
    reads them (``resize.prepare_image``: unchanged when already an RGB square of that size)."""
    images = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                images[i] = np.asarray(prepare_image(img, size), dtype=np.uint8).transpose(2, 0, 1)
        except IMAGE_ERRORS as err:
            raise EvaluateError(f"cannot read {path} ({type(err).__name__}: {err}); remove or "
                                f"replace it") from None
        if progress is not None:
            progress.update(1)
    return images


def image_folder(data, size):
    """``DATA/<size>`` and the sorted names of its images; EvaluateError (with dataset.py's hint
    on how to write the folder) when it is missing or empty."""
    try:
        check_resolutions(data, [size])
    except DatasetError as error:
        raise EvaluateError(str(error)) from None
    folder = resolution_folder(data, size)
    return folder, list_images(folder)


def images_per_set(available, n, real_vs_real):
    """Images in each compared set: ``n``, or fewer when the folder has too few (with a note)."""
    needed = 2 * n if real_vs_real else n
    if available >= needed:
        return n, None
    if real_vs_real:
        if available < 2:
            raise EvaluateError(f"--real-vs-real needs at least 2 images, the folder holds "
                                f"{available}")
        each = available // 2
        return each, (f"note: the folder holds {available} images, fewer than the {needed} "
                      f"--real-vs-real needs (2 x --n {n}); comparing sets of {each}")
    return available, (f"note: the folder holds {available} images, fewer than --n {n}; "
                       f"comparing {available} generated with {available} real images")


def check_args(args):
    """Validate the flags that do not depend on the files."""
    if args.path is None and not args.real_vs_real:
        raise EvaluateUsageError("a checkpoint is needed (evaluate.py CKPT DATA), unless "
                            "--real-vs-real is given")
    if args.path is None and args.untrained:
        raise EvaluateUsageError("--untrained needs a checkpoint: the untrained generator takes its "
                            "architecture")
    try:
        swd.level_sizes(args.size)
    except ValueError as error:
        raise EvaluateUsageError(f"--size: {error}") from None
    for flag in ("n", "batch", "directions", "repeats"):
        if getattr(args, flag) < 1:
            raise EvaluateUsageError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if not 0 <= args.seed < 2 ** 32:
        raise EvaluateUsageError(f"--seed must be an integer from 0 to 2**32 - 1, got "
                                 f"{args.seed}")


def load(path, size):
    """The generator in ``path`` and its step for ``size``; EvaluateError when it cannot be used."""
    try:
        generator, info = load_generator(path)
    except CheckpointError as error:
        raise EvaluateError(str(error)) from None
    reason = size_beyond_training(size, info)
    if reason:
        raise EvaluateError(reason)
    return generator, info, step_for_size(size)


def generate_images(generator, step, n, batch, truncation=NO_TRUNCATION, progress=None,
                    out_size=None):
    """``n`` generated images as (n, 3, size, size) uint8 PNG values, ``batch`` per forward pass;
    with ``truncation`` psi != 1 the styles are w = mean + psi (w - mean). With ``out_size``
    larger than the step's size, each pixel is repeated to ``out_size`` (nearest neighbour, as
    the official progressive GAN's generator outputs its lower resolutions)."""
    size = size_for_step(step)
    repeat = 1 if out_size is None else out_size // size
    images = np.empty((n, 3, size * repeat, size * repeat), dtype=np.uint8)
    with jt.no_grad():
        mean_style = None
        if truncation != NO_TRUNCATION:
            mean_style = average_style(generator)
        for start in range(0, n, batch):
            count = min(batch, n - start)
            output = generator(jt.randn(count, generator.code_dim), step=step, alpha=ALPHA,
                               mean_style=mean_style, style_weight=truncation)
            pixels = to_pixels(output.numpy())
            images[start:start + count] = pixels.repeat(repeat, axis=2).repeat(repeat, axis=3)
            if progress is not None:
                progress.update(count)
    return images


def untrained_generator(info, seed):
    """A freshly initialised generator with the architecture in ``info`` (code_dim, n_mlp,
    width): the baseline that training must beat. Drawn after the trained generator's images,
    so adding --untrained leaves the other columns as they were."""
    jt.set_global_seed(seed + 1)
    generator = StyledGenerator(code_dim=info["code_dim"], n_mlp=info["n_mlp"],
                                width=info["width"])
    generator.eval()
    return generator


def format_table(levels, columns):
    """Markdown table: one row per level and one for the average, one column per comparison."""
    names = list(columns)
    lines = ["| level | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    labels = [f"{size} px" for size in levels] + ["average"]
    for row, label in enumerate(labels):
        lines.append(f"| {label} | " + " | ".join(f"{columns[name][row]:.{DIGITS}f}"
                                                   for name in names) + " |")
    return "\n".join(lines)


def run_checkpoints(run):
    """``[(iteration, path)]`` of the run folder's ``checkpoint/NNNNNN.model``, oldest first."""
    folder = os.path.join(run, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        raise EvaluateError(f"{run}: a folder without {CHECKPOINT_DIR}/; give a checkpoint file "
                            f"or a train.py --out folder")
    found = sorted((int(match.group(1)), os.path.join(folder, name))
                   for name in os.listdir(folder) for match in [RUN_CHECKPOINT.match(name)]
                   if match)
    if not found:
        raise EvaluateError(f"{folder}: no NNNNNN.model checkpoints (train.py writes one every "
                            f"--save_every iterations)")
    return found


def read_log(run):
    """train.py's ``log.csv`` of the run: one dict per iteration with ``iteration``, ``size``,
    ``images`` (of that iteration), ``images_seen`` (up to and with it), ``g_loss``, ``d_loss``."""
    path = os.path.join(run, LOG_FILE)
    rows, seen = [], 0
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                seen += int(row["images"])
                rows.append(dict(iteration=int(row["iteration"]), size=int(row["size"]),
                                 images=int(row["images"]), images_seen=seen,
                                 g_loss=float(row["g_loss"]), d_loss=float(row["d_loss"])))
    except OSError as error:
        raise EvaluateError(f"{path}: cannot read it ({error.strerror}); the run's log gives "
                            f"each checkpoint's size and images seen") from None
    except (KeyError, TypeError, ValueError) as error:
        raise EvaluateError(f"{path}: not a train.py log ({type(error).__name__}: {error})") \
            from None
    return rows


def write_run_table(path, levels, rows):
    """``path``: CSV, one row per checkpoint: iteration, images_seen, size (trained then),
    swd_<L>px per level and swd_average (x 1e3); written through a temporary file."""
    columns = (["iteration", "images_seen", "size"] + [f"swd_{level}px" for level in levels]
               + ["swd_average"])
    with atomic_write(path) as temporary:
        with open(temporary, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([row["iteration"], row["images_seen"], row["size"]]
                                + [f"{value:.{DIGITS}f}" for value in row["swd"]])
    return path


def format_run_table(levels, rows):
    """Markdown table of a run: one row per checkpoint."""
    lines = ["| iteration | images seen | size | " + " | ".join(f"{level} px" for level in levels)
             + " | average |", "|---:|---:|---:|" + "---:|" * (len(levels) + 1)]
    for row in rows:
        lines.append(f"| {row['iteration']} | {row['images_seen']} | {row['size']} px | "
                     + " | ".join(f"{value:.{DIGITS}f}" for value in row["swd"]) + " |")
    return "\n".join(lines)


def smoothed(xs, ys, points=LOSS_POINTS):
    """Means of consecutive windows of about len(xs) / points values, at their last x."""
    window = max(1, len(xs) // points)
    return ([xs[min(i + window, len(xs)) - 1] for i in range(0, len(xs), window)],
            [float(np.mean(ys[i:i + window])) for i in range(0, len(ys), window)])


def plot_run(path, log, levels, rows, references):
    """``path``: the losses of ``log`` (window means) above the SWD of ``rows`` per level and
    average, with ``references`` (name -> per-level values and average) as dashed lines at their
    average, and a grey line where each size starts."""
    iterations = [row["iteration"] for row in log]
    sizes = [Line(row["iteration"], f"{row['size']} px") for previous, row in zip([None] + log, log)
             if previous is None or previous["size"] != row["size"]]
    window = max(1, len(log) // LOSS_POINTS)
    losses = [Series(f"{name} loss", *smoothed(iterations, [row[key] for row in log]))
              for name, key in (("G", "g_loss"), ("D", "d_loss"))]
    checkpoints = [row["iteration"] for row in rows]
    scores = [Series(f"{level} px", checkpoints, [row["swd"][i] for row in rows], markers=True)
              for i, level in enumerate(levels)]
    if len(levels) > 1:
        scores.append(Series("average", checkpoints, [row["swd"][-1] for row in rows],
                             markers=True))
    lines = [Line(values[-1], f"{name} (average)") for name, values in references.items()]
    title = "losses" if window == 1 else f"losses (means of {window} iterations)"
    return save_panels(path, [Panel(title, losses, vlines=sizes),
                              Panel("SWD x 1e3 (lower is better)", scores, hlines=lines,
                                    vlines=sizes)])


def evaluate_run(args):
    """Score every ``checkpoint/NNNNNN.model`` of the run folder ``args.path`` as ``main`` scores
    one checkpoint (same real set, latents and seeds, so each row equals that checkpoint scored
    alone at the size it had reached). A checkpoint saved below ``--size`` generates at its size,
    repeated to ``--size`` px. Writes RUN/swd.csv and RUN/curves.png, prints the table; returns
    ``dict(levels, n, rows, references, table, plot)``."""
    run = args.path
    checkpoints = run_checkpoints(run)
    log = read_log(run)
    logged = {row["iteration"]: row for row in log}
    for iteration, path in checkpoints:
        if iteration not in logged:
            raise EvaluateError(f"{os.path.join(run, LOG_FILE)}: no row for iteration "
                                f"{iteration} ({path}); score that checkpoint alone")
    folder, names, n = real_set(args)
    real = read_real_set(folder, names, n, args)
    rows = []
    for iteration, path in checkpoints:
        size = min(logged[iteration]["size"], args.size)
        generator, info, step = load(path, size)
        jt.set_global_seed(args.seed)  # as main: the same latents and noise for every checkpoint
        with tqdm(total=n, desc=f"generate {iteration}", unit="img", file=sys.stderr) as progress:
            images = generate_images(generator, step, n, args.batch, args.truncation, progress,
                                     out_size=args.size)
        result = score(real[:n], [images], args)
        rows.append(dict(iteration=iteration, images_seen=logged[iteration]["images_seen"],
                         size=logged[iteration]["size"],
                         swd=[float(v) for v in result.distances[0]] + [float(result.averages[0])]))
    references = {}
    if args.untrained:
        untrained = untrained_generator(info, args.seed)
        with tqdm(total=n, desc="untrained", unit="img", file=sys.stderr) as progress:
            images = generate_images(untrained, step_for_size(args.size), n, args.batch,
                                     args.truncation, progress)
        references[UNTRAINED_COLUMN] = images
    if args.real_vs_real:
        references[FLOOR_COLUMN] = real[n:]
    for name, images in references.items():
        result = score(real[:n], [images], args)
        references[name] = [float(v) for v in result.distances[0]] + [float(result.averages[0])]
    levels = result.levels
    table = write_run_table(os.path.join(run, RUN_TABLE), levels, rows)
    picture = plot_run(os.path.join(run, RUN_PLOT), log, levels, rows, references)
    print(f"SWD x 1e3 (Karras et al. 2018) of each checkpoint of {run}, {args.size} px, sets of "
          f"{n} images, seed {args.seed}; lower is better")
    print(format_run_table(levels, rows))
    for name, values in references.items():
        print(f"{name}: " + ", ".join(f"{level} px {value:.{DIGITS}f}"
                                      for level, value in zip(levels, values))
              + f", average {values[-1]:.{DIGITS}f}")
    print(f"wrote {table} and {picture}")
    return dict(levels=levels, n=n, rows=rows, references=references, table=table,
                plot=picture)


def real_set(args):
    """``DATA/<size>``, its image names and the images per compared set (printing the note
    when the folder holds fewer than asked)."""
    folder, names = image_folder(args.data, args.size)
    n, note = images_per_set(len(names), args.n, args.real_vs_real)
    if note:
        print(note, file=sys.stderr)
    return folder, names, n


def read_real_set(folder, names, n, args):
    """The real images compared: ``n`` (2 ``n`` with --real-vs-real) drawn at random with
    ``--seed``; the first ``n`` are the reference set every candidate is compared with."""
    order = np.random.default_rng(args.seed).permutation(len(names))
    n_real = 2 * n if args.real_vs_real else n
    paths = [os.path.join(folder, names[i]) for i in order[:n_real]]
    with tqdm(total=n_real, desc="read", unit="img", file=sys.stderr) as progress:
        return read_images(paths, args.size, progress)


def score(reference, candidates, args):
    """``swd.multiscale_swd`` of each candidate set against ``reference`` with the flags' seed,
    repeats and directions (a candidate's value depends on its place in the list)."""
    with tqdm(total=swd.progress_steps(args.size, len(candidates), args.repeats), desc="swd",
              unit="step", file=sys.stderr) as progress:
        return swd.multiscale_swd(reference, candidates, seed=args.seed, repeats=args.repeats,
                                  directions_per_repeat=args.directions, progress=progress)


def main(args):
    """Print the SWD table the flags ask for; returns ``dict(levels, n, columns)`` where
    ``columns`` maps each comparison to its per-level values and their average (x 1e3)."""
    check_args(args)
    if args.path is not None and os.path.isdir(args.path):
        return evaluate_run(args)
    folder, names, n = real_set(args)
    loaded = load(args.path, args.size) if args.path is not None else None
    if loaded is not None:
        jt.set_global_seed(args.seed)  # the latents and the generator's noise

    real = read_real_set(folder, names, n, args)
    candidates, columns = [], []
    if loaded is not None:
        generator, info, step = loaded
        print(f"loaded {info['kind']} {args.path} (code_dim={info['code_dim']}, "
              f"n_mlp={info['n_mlp']}, width={info['width']})", file=sys.stderr)
        with tqdm(total=n, desc="generate", unit="img", file=sys.stderr) as progress:
            candidates.append(generate_images(generator, step, n, args.batch, args.truncation,
                                              progress))
        columns.append(GENERATED_COLUMN if args.truncation == NO_TRUNCATION
                       else f"generated (psi {args.truncation:g}) vs real")
        if args.untrained:
            untrained = untrained_generator(info, args.seed)
            with tqdm(total=n, desc="untrained", unit="img", file=sys.stderr) as progress:
                candidates.append(generate_images(untrained, step, n, args.batch,
                                                  args.truncation, progress))
            columns.append(UNTRAINED_COLUMN)
    if args.real_vs_real:
        candidates.append(real[n:])
        columns.append(FLOOR_COLUMN)

    result = score(real[:n], candidates, args)
    table = {name: [float(v) for v in result.distances[i]] + [float(result.averages[i])]
             for i, name in enumerate(columns)}
    print(f"SWD x 1e3 (Karras et al. 2018), {args.size} px, sets of {n} images, seed "
          f"{args.seed}; lower is better")
    print(format_table(result.levels, table))
    return dict(levels=result.levels, n=n, columns=table)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Multi-scale sliced Wasserstein distance (SWD x 1e3, Karras et al. 2018) "
                    "between a generator's images and its data set, per Laplacian pyramid level "
                    "from --size down to 16 px, and averaged; lower is better. Given a "
                    "training run's folder instead of a checkpoint, scores every "
                    f"checkpoint/NNNNNN.model in it and writes RUN/{RUN_TABLE} and "
                    f"RUN/{RUN_PLOT}. FID is not computed.")
    parser.add_argument("path", nargs="?", metavar="CKPT",
                        help="generator checkpoint: a generator state dict or a training "
                             "checkpoint (its g_running is used); may be left out with "
                             "--real-vs-real. Or a run folder (train.py's --out): each "
                             "checkpoint/NNNNNN.model in it is scored as if given alone, one row "
                             f"per checkpoint in RUN/{RUN_TABLE} (iteration, images_seen, size, "
                             f"swd_<L>px per level, swd_average), and RUN/{RUN_PLOT} draws the "
                             "losses of RUN/log.csv above the SWD over iterations (with "
                             "--untrained and --real-vs-real as dashed lines); a checkpoint "
                             "saved before training reached --size generates at its size, each "
                             "pixel repeated to --size")
    parser.add_argument("data", metavar="DATA",
                        help="data root holding DATA/<size>/ with the real images (the layout "
                             "resize.py writes)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help="image side in px, a power of two from 16 to 1024; reads "
                             f"DATA/<size>/ and generates at that size (default {DEFAULT_SIZE})")
    parser.add_argument("--n", type=int, default=DEFAULT_N,
                        help="images in each compared set: --n generated vs --n real (and, with "
                             "--real-vs-real, --n real vs another --n real); fewer when the "
                             f"folder holds too few, with a note (default {DEFAULT_N})")
    parser.add_argument("--real_vs_real", "--real-vs-real", action="store_true",
                        help="also compare the --n real images with --n other real images (the "
                             "data split in two): the floor a perfect generator would reach on "
                             "average; CKPT may then be left out")
    parser.add_argument("--untrained", action="store_true",
                        help="also score a freshly initialised generator of CKPT's architecture "
                             "against the same real images: the value training should lower")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed for the choice of real images, the latents and noise, the "
                             "neighbourhoods and the directions; the same seed, files and flags "
                             f"give the same table (default {DEFAULT_SEED})")
    parser.add_argument("--directions", type=int, default=swd.DIRECTIONS_PER_REPEAT,
                        help="random projection directions per repeat (default "
                             f"{swd.DIRECTIONS_PER_REPEAT}, the official code's)")
    parser.add_argument("--repeats", type=int, default=swd.DIRECTION_REPEATS,
                        help=f"repeats of --directions directions, averaged (default "
                             f"{swd.DIRECTION_REPEATS}: {swd.DIRECTION_REPEATS} x "
                             f"{swd.DIRECTIONS_PER_REPEAT} = 512 directions per level, the "
                             "paper's 512 projections)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"images per generator forward pass (default {DEFAULT_BATCH})")
    parser.add_argument("--truncation", type=float, default=NO_TRUNCATION, metavar="PSI",
                        help="truncation psi: w = mean + psi (w - mean), the mean style over "
                             f"{MEAN_STYLE_LATENTS} latents; 1 = none (default {NO_TRUNCATION:g}, "
                             "the honest setting for a quality metric)")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), usage=(EvaluateUsageError,),
            failures=(EvaluateError,))
