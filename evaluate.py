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
rounded to nearest).

``--metric fid`` and ``--metric kid`` (with or instead of ``swd``) score the same sets with
pytorch-fid's Inception-v3 (``metrics/inception.py``, its weight file from ``--inception`` or
torch hub's cache) and ``metrics/fid.py``: both sets at ``--size`` px, each resized bilinearly to
299 px as pytorch-fid does. The real images' features are cached (``--cache``) under a key of
the folder's files, the size, the count, the seed and the weight file's hash. Given two image
folders, the first one's images are scored against the second's (docs/fid.md).
"""
import argparse
import csv
import os
import re
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt

from runtime import cli
from runtime.cli import UsageError
from metrics import fid, inception, swd
from files.atomic import WriteError, atomic_write
from files.checkpoint import CheckpointError, size_beyond_training
from files.generators import load_generator
from dataset import IMAGE_ERRORS, DatasetError, check_resolutions, resolution_folder
from files.grid import to_uint8_image
from latents.mean_style import MEAN_STYLE_LATENTS, average_style
from model import StyledGenerator, size_for_step, step_for_size
from files.plot import Line, Panel, Series, save_panels
from files.images import list_images, prepare_image
from training.run_folder import CHECKPOINT_DIR, LOG_FILE

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
METRICS = ("swd", "fid", "kid")
FEATURE_METRICS = ("fid", "kid")
DEFAULT_FID_BATCH = 50              # pytorch-fid's default batch
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "stylegan_jittor", "fid")
RUN_TABLES = {"swd": RUN_TABLE, "fid": "fid.csv", "kid": "kid.csv"}
# How a real image reaches --size px, then the Inception's input: part of the cache key.
REAL_RESIZE = "files.images.prepare_image (PIL LANCZOS when not already --size px)"
INCEPTION_RESIZE = "bilinear to 299 px, align_corners False, no antialias (pytorch-fid)"


class EvaluateError(ValueError):
    """The data folder or the checkpoint cannot be used (one-line message, exit 1)."""


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
        raise UsageError("a checkpoint is needed (evaluate.py CKPT DATA), unless "
                            "--real-vs-real is given")
    if args.path is None and args.untrained:
        raise UsageError("--untrained needs a checkpoint: the untrained generator takes its "
                            "architecture")
    args.metrics = metrics_asked(args.metric)
    # two folders of images are scored at their images' own size unless --size is given
    args.size_given = args.size is not None
    if not args.size_given:
        args.size = DEFAULT_SIZE
    if "swd" in args.metrics:
        try:
            swd.level_sizes(args.size)
        except ValueError as error:
            raise UsageError(f"--size: {error}") from None
    elif args.size < 4 or args.size & (args.size - 1):
        raise UsageError(f"--size must be a power of two of at least 4, got {args.size}")
    for flag in ("n", "batch", "directions", "repeats", "fid_batch", "kid_subsets",
                 "kid_subset_size"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if not 0 <= args.seed < 2 ** 32:
        raise UsageError(f"--seed must be an integer from 0 to 2**32 - 1, got "
                                 f"{args.seed}")


def metrics_asked(values):
    """The metrics named by --metric (repeated or comma-separated), in METRICS' order; SWD when
    none is named."""
    asked = set()
    for value in values or ["swd"]:
        for name in value.split(","):
            name = name.strip().lower()
            if name not in METRICS:
                raise UsageError(f"--metric: {name!r} is not one of {', '.join(METRICS)}")
            asked.add(name)
    return [name for name in METRICS if name in asked]


def load_inception(args):
    """``(model, path, sha256)``: pytorch-fid's Inception with the weights of --inception (or
    the default location), or EvaluateError with one line saying where to get the file."""
    path = args.inception or inception.default_weights_path()
    if not os.path.isfile(path):
        raise EvaluateError(inception.missing_weights_message(path))
    try:
        model = inception.load_weights(path)
    except inception.InceptionWeightsError as error:
        raise EvaluateError(str(error)) from None
    digest = inception.file_sha256(path)
    if not digest.startswith(inception.WEIGHTS_SHA256_PREFIX):
        print(f"note: {path} is not pytorch-fid's published file (its SHA-256 does not start "
              f"with {inception.WEIGHTS_SHA256_PREFIX}): FID and KID are not comparable with "
              f"published values", file=sys.stderr)
    return model, path, digest


def image_features(network, images, args, desc):
    """(N, 2048) Inception features of uint8 images, --fid_batch at a time."""
    with tqdm(total=len(images), desc=desc, unit="img", file=sys.stderr) as progress:
        return inception.features(network[0], images, args.fid_batch, progress)


def reference_features(network, folder, names, n, args, read):
    """Features of the reference real set (``read()`` gives its images), from the cache when
    the cached key is exactly this one: the folder's files (names, sizes, times), --size, the
    count, the seed that picks them, both resizes and the weight file's hash. Any other cached
    key is said and recomputed; the new features replace it."""
    key = dict(format=fid.CACHE_FORMAT, folder=os.path.abspath(folder),
               files=fid.folder_fingerprint(folder, names), size=args.size, n=n,
               seed=args.seed, real_resize=REAL_RESIZE, inception_resize=INCEPTION_RESIZE,
               weights_sha256=network[2])
    path = None if args.no_cache else fid.cache_path(args.cache, folder, args.size)
    if path is not None:
        cached, why = fid.read_cached_features(path, key)
        if cached is not None:
            print(f"real features from the cache {path}", file=sys.stderr)
            return cached
        if why:
            print(f"note: the cached real features {path} were {why}", file=sys.stderr)
    features = image_features(network, read(), args, "inception real")
    if path is not None:
        try:
            fid.write_cached_features(path, key, features)
        except (OSError, WriteError) as error:
            print(f"note: the real features were not cached ({error})", file=sys.stderr)
    return features


def feature_scores(reference, candidate, args):
    """``{"fid": value, "kid": (mean, std) x 1e3}`` for the metrics asked, saying when the
    Fréchet distance needed pytorch-fid's offset."""
    scores = {}
    if "fid" in args.metrics:
        result = fid.fid(reference, candidate)
        if result.offset:
            print(f"note: the covariances' product is singular: {result.offset:g} was added to "
                  f"their diagonals, as pytorch-fid does", file=sys.stderr)
        scores["fid"] = result.distance
    if "kid" in args.metrics:
        result = fid.kid(reference, candidate, args.kid_subsets, args.kid_subset_size,
                         args.seed)
        scores["kid"] = (result.mean * fid.KID_SCALE, result.std * fid.KID_SCALE)
    return scores


def feature_note(n):
    """The warning due when the sets are too small for a full-rank covariance."""
    if n <= inception.FEATURES:
        print(f"note: sets of {n} images, no more than the {inception.FEATURES} features: the "
              f"covariances are singular and FID is biased upward at this size (the papers use "
              f"50000); compare values only at the same --n", file=sys.stderr)


def feature_header(args, n):
    names = " and ".join({"fid": "FID", "kid": "KID x 1e3"}[m] for m in args.metrics
                         if m in FEATURE_METRICS)
    return (f"{names} (pytorch-fid's Inception-v3, 2048 pool features): both sets scored at "
            f"{args.size} px, each image resized bilinearly to 299 px; sets of {n} images, seed "
            f"{args.seed}; lower is better")


def format_feature_table(metrics, columns):
    """Markdown table: one row per metric (FID, KID x 1e3 with its standard deviation over
    subsets), one column per comparison."""
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    if "fid" in metrics:
        lines.append("| FID | " + " | ".join(f"{columns[n]['fid']:.{DIGITS}f}" for n in names)
                     + " |")
    if "kid" in metrics:
        lines.append("| KID x 1e3 | " + " | ".join(
            f"{columns[n]['kid'][0]:.{DIGITS}f} ± {columns[n]['kid'][1]:.{DIGITS}f}"
            for n in names) + " |")
    return "\n".join(lines)


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
    columns = [f"swd_{level}px" for level in levels] + ["swd_average"]
    return write_csv(path, columns, rows, lambda row: row["swd"])


def write_feature_table(path, metric, size, rows):
    """``path``: CSV, one row per checkpoint: iteration, images_seen, size (trained then) and
    ``fid_<size>px``, or ``kid_<size>px`` and ``kid_<size>px_std`` (x 1e3), at the scored
    --size."""
    columns = [f"fid_{size}px"] if metric == "fid" else [f"kid_{size}px", f"kid_{size}px_std"]
    return write_csv(path, columns, rows,
                     lambda row: [row[metric]] if metric == "fid" else list(row[metric]))


def write_csv(path, columns, rows, values):
    with atomic_write(path) as temporary:
        with open(temporary, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["iteration", "images_seen", "size"] + columns)
            for row in rows:
                writer.writerow([row["iteration"], row["images_seen"], row["size"]]
                                + [f"{value:.{DIGITS}f}" for value in values(row)])
    return path


def format_run_table(levels, rows, metrics=("swd",), size=None):
    """Markdown table of a run: one row per checkpoint, the SWD levels and average, FID and
    KID x 1e3 (at ``size`` px) for the metrics asked."""
    heads, cells = [], []
    if "swd" in metrics:
        heads += [f"SWD {level} px" for level in levels] + ["SWD average"]
        cells.append(lambda row: [f"{v:.{DIGITS}f}" for v in row["swd"]])
    if "fid" in metrics:
        heads.append(f"FID ({size} px)")
        cells.append(lambda row: [f"{row['fid']:.{DIGITS}f}"])
    if "kid" in metrics:
        heads.append(f"KID x 1e3 ({size} px)")
        cells.append(lambda row: [f"{row['kid'][0]:.{DIGITS}f} ± {row['kid'][1]:.{DIGITS}f}"])
    lines = ["| iteration | images seen | size | " + " | ".join(heads) + " |",
             "|---:|---:|---:|" + "---:|" * len(heads)]
    for row in rows:
        values = [value for cell in cells for value in cell(row)]
        lines.append(f"| {row['iteration']} | {row['images_seen']} | {row['size']} px | "
                     + " | ".join(values) + " |")
    return "\n".join(lines)


def smoothed(xs, ys, points=LOSS_POINTS):
    """Means of consecutive windows of about len(xs) / points values, at their last x."""
    window = max(1, len(xs) // points)
    return ([xs[min(i + window, len(xs)) - 1] for i in range(0, len(xs), window)],
            [float(np.mean(ys[i:i + window])) for i in range(0, len(ys), window)])


def plot_run(path, log, levels, rows, references, metrics=("swd",), size=None):
    """``path``: the losses of ``log`` (window means) above one panel per metric asked: the SWD
    of ``rows`` per level and average, FID, KID x 1e3; ``references`` (name -> {metric: value})
    as dashed lines, and a grey line where each size starts."""
    iterations = [row["iteration"] for row in log]
    sizes = [Line(row["iteration"], f"{row['size']} px") for previous, row in zip([None] + log, log)
             if previous is None or previous["size"] != row["size"]]
    window = max(1, len(log) // LOSS_POINTS)
    losses = [Series(f"{name} loss", *smoothed(iterations, [row[key] for row in log]))
              for name, key in (("G", "g_loss"), ("D", "d_loss"))]
    checkpoints = [row["iteration"] for row in rows]
    title = "losses" if window == 1 else f"losses (means of {window} iterations)"
    panels = [Panel(title, losses, vlines=sizes)]
    if "swd" in metrics:
        scores = [Series(f"{level} px", checkpoints, [row["swd"][i] for row in rows],
                         markers=True) for i, level in enumerate(levels)]
        if len(levels) > 1:
            scores.append(Series("average", checkpoints, [row["swd"][-1] for row in rows],
                                 markers=True))
        lines = [Line(values["swd"][-1], f"{name} (average)")
                 for name, values in references.items()]
        panels.append(Panel("SWD x 1e3 (lower is better)", scores, hlines=lines, vlines=sizes))
    for metric, label in (("fid", "FID"), ("kid", "KID x 1e3")):
        if metric in metrics:
            value = (lambda v: v) if metric == "fid" else (lambda v: v[0])
            series = [Series(f"{label} at {size} px", checkpoints,
                             [value(row[metric]) for row in rows], markers=True)]
            lines = [Line(value(values[metric]), name) for name, values in references.items()]
            panels.append(Panel(f"{label} at {size} px (lower is better)", series, hlines=lines,
                                vlines=sizes))
    return save_panels(path, panels)


def evaluate_run(args):
    """Score every ``checkpoint/NNNNNN.model`` of the run folder ``args.path`` as ``main`` scores
    one checkpoint (same real set, latents and seeds, so each row equals that checkpoint scored
    alone at the size it had reached). A checkpoint saved below ``--size`` generates at its size,
    repeated to ``--size`` px. Writes RUN/swd.csv (fid.csv, kid.csv for those metrics) and
    RUN/curves.png, prints the table; returns ``dict(levels, n, rows, references, tables,
    table, plot)``."""
    run = args.path
    checkpoints = run_checkpoints(run)
    log = read_log(run)
    logged = {row["iteration"]: row for row in log}
    for iteration, path in checkpoints:
        if iteration not in logged:
            raise EvaluateError(f"{os.path.join(run, LOG_FILE)}: no row for iteration "
                                f"{iteration} ({path}); score that checkpoint alone")
    network = load_inception(args) if set(args.metrics) & set(FEATURE_METRICS) else None
    folder, names, n = real_set(args)
    real = RealImages(folder, names, n, args)
    reference = None
    if network is not None:
        feature_note(n)
        reference = reference_features(network, folder, names, n, args, real.reference)
    rows = []
    for iteration, path in checkpoints:
        size = min(logged[iteration]["size"], args.size)
        generator, info, step = load(path, size)
        jt.set_global_seed(args.seed)  # as main: the same latents and noise for every checkpoint
        with tqdm(total=n, desc=f"generate {iteration}", unit="img", file=sys.stderr) as progress:
            images = generate_images(generator, step, n, args.batch, args.truncation, progress,
                                     out_size=args.size)
        row = dict(iteration=iteration, images_seen=logged[iteration]["images_seen"],
                   size=logged[iteration]["size"])
        row.update(candidate_scores(real, reference, images, network, args))
        rows.append(row)
    references = {}
    if args.untrained:
        untrained = untrained_generator(info, args.seed)
        with tqdm(total=n, desc="untrained", unit="img", file=sys.stderr) as progress:
            references[UNTRAINED_COLUMN] = generate_images(
                untrained, step_for_size(args.size), n, args.batch, args.truncation, progress)
    if args.real_vs_real:
        references[FLOOR_COLUMN] = real.floor()
    for name, images in references.items():
        references[name] = candidate_scores(real, reference, images, network, args)
    levels = swd.level_sizes(args.size) if "swd" in args.metrics else []
    tables = {}
    if "swd" in args.metrics:
        tables["swd"] = write_run_table(os.path.join(run, RUN_TABLE), levels, rows)
    for metric in FEATURE_METRICS:
        if metric in args.metrics:
            tables[metric] = write_feature_table(os.path.join(run, RUN_TABLES[metric]), metric,
                                                 args.size, rows)
    picture = plot_run(os.path.join(run, RUN_PLOT), log, levels, rows, references, args.metrics,
                       args.size)
    names_asked = ", ".join({"swd": "SWD x 1e3 (Karras et al. 2018)", "fid": "FID",
                             "kid": "KID x 1e3"}[m] for m in args.metrics)
    print(f"{names_asked} of each checkpoint of {run}, {args.size} px (generated and real images "
          f"alike), sets of {n} images, seed {args.seed}; lower is better")
    print(format_run_table(levels, rows, args.metrics, args.size))
    for name, values in references.items():
        parts = []
        if "swd" in values:
            parts += [f"SWD {level} px {value:.{DIGITS}f}"
                      for level, value in zip(levels, values["swd"])]
            parts.append(f"SWD average {values['swd'][-1]:.{DIGITS}f}")
        if "fid" in values:
            parts.append(f"FID {values['fid']:.{DIGITS}f}")
        if "kid" in values:
            parts.append(f"KID x 1e3 {values['kid'][0]:.{DIGITS}f} ± {values['kid'][1]:.{DIGITS}f}")
        print(f"{name}: " + ", ".join(parts))
    print(f"wrote {', '.join(tables.values())} and {picture}")
    return dict(levels=levels, n=n, rows=rows, references=references, tables=tables,
                table=tables.get("swd"), plot=picture)


class RealImages:
    """The real images compared, read once and only when a metric needs their pixels: the
    reference set (the first ``n`` of a random order, with ``--seed``) and, with
    --real-vs-real, the next ``n`` (the floor)."""

    def __init__(self, folder, names, n, args):
        self.folder, self.names, self.n, self.args = folder, names, n, args
        self._images = None

    def _all(self):
        if self._images is None:
            self._images = read_real_set(self.folder, self.names, self.n, self.args)
        return self._images

    def reference(self):
        return self._all()[:self.n]

    def floor(self):
        return self._all()[self.n:]


def candidate_scores(real, reference, images, network, args):
    """``{"swd": [per level..., average], "fid": ..., "kid": (mean, std)}`` of one candidate
    set of images against the real reference set, for the metrics asked."""
    scores = {}
    if "swd" in args.metrics:
        result = score(real.reference(), [images], args)
        scores["swd"] = [float(v) for v in result.distances[0]] + [float(result.averages[0])]
    if network is not None:
        scores.update(feature_scores(reference, image_features(network, images, args,
                                                               "inception"), args))
    return scores


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


def is_run_folder(path):
    return os.path.isdir(os.path.join(path, CHECKPOINT_DIR))


def folder_images(path, size):
    """An image folder given directly (its images), or a data root (its ``<size>/`` folder)."""
    names = list_images(path)
    if names:
        return path, names
    return image_folder(path, size)


def image_sides(folder, names):
    """{(width, height): count} of the images ``names`` in ``folder``, read from their headers."""
    sides = {}
    for name in names:
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as img:
                sides[img.size] = sides.get(img.size, 0) + 1
        except IMAGE_ERRORS as err:
            raise EvaluateError(f"cannot read {path} ({type(err).__name__}: {err}); remove or "
                                f"replace it") from None
    return sides


def describe_sides(folder, sides):
    text = ", ".join(f"{w}x{h}" for w, h in sorted(sides))
    return f"{folder} holds {'images of ' if len(sides) > 1 else ''}{text}" + (
        " (mixed sizes)" if len(sides) > 1 else "")


def own_size(args):
    """The side both folders' images share, at which pytorch-fid would score them (a data root
    as DATA: the candidates' side, whose ``DATA/<size>`` is then read); a UsageError naming
    --size when they are not all squares of one side."""
    candidates = image_sides(args.path, list_images(args.path))
    described = [describe_sides(args.path, candidates)]
    real_names = list_images(args.data)
    real = image_sides(args.data, real_names) if real_names else {}
    if real_names:
        described.append(describe_sides(args.data, real))
    found = set(candidates) | set(real)
    if len(found) == 1:
        (width, height), = found
        if width == height:
            return width
    raise UsageError(f"{'; '.join(described)}: give --size to score both folders at one size "
                     f"(pytorch-fid scores two folders at their images' own size; these are not "
                     f"squares of one size)")


def evaluate_folders(args):
    """Score the images of the folder ``args.path`` against those of DATA (a folder of images,
    or a data root's ``DATA/<size>``), as pytorch-fid compares two folders: sets of as many
    images as both hold (at most --n, drawn with --seed), read at the images' own size (the
    side they all share), or at --size when it is given."""
    if args.real_vs_real or args.untrained:
        raise UsageError("--real-vs-real and --untrained need a checkpoint or a run folder, not "
                         "a folder of images")
    if not args.size_given:
        args.size = own_size(args)
        if "swd" in args.metrics:
            try:
                swd.level_sizes(args.size)
            except ValueError as error:
                raise UsageError(f"the images are {args.size} px, where SWD cannot be "
                                 f"computed ({error}): give --size") from None
        print(f"note: scoring at the images' own size, {args.size} px (--size to choose "
              f"another)", file=sys.stderr)
    network = load_inception(args) if set(args.metrics) & set(FEATURE_METRICS) else None
    folder, names = folder_images(args.data, args.size)
    candidates = list_images(args.path)
    n = min(args.n, len(names), len(candidates))
    if n < 2:
        raise EvaluateError(f"two folders of at least 2 images are needed; {args.path} holds "
                            f"{len(candidates)}, {folder} {len(names)}")
    if n < args.n:
        print(f"note: comparing sets of {n} images ({args.path} holds {len(candidates)}, "
              f"{folder} {len(names)}, --n is {args.n})", file=sys.stderr)
    real = RealImages(folder, names, n, args)
    order = np.random.default_rng(args.seed).permutation(len(candidates))
    with tqdm(total=n, desc="read", unit="img", file=sys.stderr) as progress:
        images = read_images([os.path.join(args.path, candidates[i]) for i in order[:n]],
                             args.size, progress)
    reference = None
    if network is not None:
        feature_note(n)
        reference = reference_features(network, folder, names, n, args, real.reference)
    column = f"{args.path} vs {folder}"
    scores = candidate_scores(real, reference, images, network, args)
    result = dict(n=n, columns={column: scores.get("swd")} if "swd" in scores else {},
                  scores={column: scores})
    if "swd" in scores:
        levels = swd.level_sizes(args.size)
        print(f"SWD x 1e3 (Karras et al. 2018), {args.size} px, sets of {n} images, seed "
              f"{args.seed}; lower is better")
        print(format_table(levels, {column: scores["swd"]}))
        result["levels"] = levels
    if network is not None:
        print(feature_header(args, n))
        print(format_feature_table(args.metrics, {column: scores}))
    return result


def main(args):
    """Print the tables the flags ask for; returns ``dict(levels, n, columns, scores)``:
    ``columns`` maps each comparison to its SWD per level and average (x 1e3), ``scores`` to
    its ``{"swd": ..., "fid": ..., "kid": (mean, std)}`` for the metrics asked."""
    check_args(args)
    if args.path is not None and os.path.isdir(args.path):
        if is_run_folder(args.path) or not list_images(args.path):
            return evaluate_run(args)
        return evaluate_folders(args)
    network = load_inception(args) if set(args.metrics) & set(FEATURE_METRICS) else None
    folder, names, n = real_set(args)
    loaded = load(args.path, args.size) if args.path is not None else None
    if loaded is not None:
        jt.set_global_seed(args.seed)  # the latents and the generator's noise

    real = RealImages(folder, names, n, args)
    if "swd" in args.metrics or args.real_vs_real:
        real.reference()  # read before generating, so the latents do not depend on the metrics
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
        candidates.append(real.floor())
        columns.append(FLOOR_COLUMN)

    scores = {name: {} for name in columns}
    table, levels = {}, []
    if "swd" in args.metrics:
        result = score(real.reference(), candidates, args)
        table = {name: [float(v) for v in result.distances[i]] + [float(result.averages[i])]
                 for i, name in enumerate(columns)}
        levels = result.levels
        for name in columns:
            scores[name]["swd"] = table[name]
        print(f"SWD x 1e3 (Karras et al. 2018), {args.size} px, sets of {n} images, seed "
              f"{args.seed}; lower is better")
        print(format_table(levels, table))
    if network is not None:
        feature_note(n)
        reference = reference_features(network, folder, names, n, args, real.reference)
        for name, images in zip(columns, candidates):
            scores[name].update(feature_scores(
                reference, image_features(network, images, args, "inception"), args))
        print(feature_header(args, n))
        print(format_feature_table(args.metrics, scores))
    return dict(levels=levels, n=n, columns=table, scores=scores)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Multi-scale sliced Wasserstein distance (SWD x 1e3, Karras et al. 2018) "
                    "between a generator's images and its data set, per Laplacian pyramid level "
                    "from --size down to 16 px, and averaged; lower is better. Given a "
                    "training run's folder instead of a checkpoint, scores every "
                    f"checkpoint/NNNNNN.model in it and writes RUN/{RUN_TABLE} and "
                    f"RUN/{RUN_PLOT}. With --metric fid or kid, also (or instead) FID and KID "
                    "with pytorch-fid's Inception-v3; given a folder of images instead of a "
                    "checkpoint, scores its images against DATA's.")
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
                             "pixel repeated to --size. Or a folder of images (generate.py's "
                             "--n_images outputs, say): its images are scored against DATA's, "
                             "both read at their own size (or at --size)")
    parser.add_argument("data", metavar="DATA",
                        help="data root holding DATA/<size>/ with the real images (the layout "
                             "resize.py writes); when the first argument is a folder of images, "
                             "DATA may also be a folder of images itself")
    parser.add_argument("--size", type=int, default=None,
                        help="image side in px, a power of two up to 1024, from 16 with swd "
                             "(from 4 for fid and kid alone), at which generated and real images "
                             "alike are scored; reads "
                             f"DATA/<size>/ and generates at that size (default {DEFAULT_SIZE}; "
                             "for two folders of images, the side their images share, as "
                             "pytorch-fid scores them, and --size is needed when they share none)")
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
    parser.add_argument("--metric", action="append", metavar="NAME",
                        help="what to compute: swd, fid or kid, repeated or comma-separated "
                             "(--metric swd,fid); default swd alone, which needs no weights. fid "
                             "and kid score both sets at --size px with pytorch-fid's "
                             "Inception-v3 (each image resized bilinearly to 299 px) and need its "
                             "weight file (--inception); KID is reported x 1e3 with its standard "
                             "deviation over subsets; a run folder then also gets RUN/fid.csv, "
                             "RUN/kid.csv and their panels in RUN/curves.png")
    parser.add_argument("--inception", metavar="FILE",
                        help="pytorch-fid's weight file pt_inception-2015-12-05-6726825d.pth, "
                             "read without PyTorch (default: where pytorch-fid's own download "
                             "lands, $TORCH_HOME/hub/checkpoints/ or "
                             "~/.cache/torch/hub/checkpoints/); nothing is downloaded")
    parser.add_argument("--fid_batch", "--fid-batch", type=int, default=DEFAULT_FID_BATCH,
                        help="images per Inception forward pass: memory grows with it "
                             f"(default {DEFAULT_FID_BATCH})")
    parser.add_argument("--cache", default=DEFAULT_CACHE, metavar="DIR",
                        help="folder of the cached real-image features for fid and kid, one "
                             "file per data folder and size, used only when its key (the "
                             "folder's file names, sizes and times, --size, --n, --seed, the "
                             "resizes, the weight file's SHA-256) matches exactly, else "
                             f"recomputed (default {DEFAULT_CACHE})")
    parser.add_argument("--no_cache", "--no-cache", action="store_true",
                        help="neither read nor write cached real-image features")
    parser.add_argument("--kid_subsets", "--kid-subsets", type=int, default=fid.KID_SUBSETS,
                        help=f"KID: random subsets averaged (default {fid.KID_SUBSETS}, the KID "
                             "paper's)")
    parser.add_argument("--kid_subset_size", "--kid-subset-size", type=int,
                        default=fid.KID_SUBSET_SIZE,
                        help="KID: images per subset, at most the set's size (default "
                             f"{fid.KID_SUBSET_SIZE})")
    parser.add_argument("--truncation", type=float, default=NO_TRUNCATION, metavar="PSI",
                        help="truncation psi: w = mean + psi (w - mean), the mean style over "
                             f"{MEAN_STYLE_LATENTS} latents; 1 = none (default {NO_TRUNCATION:g}, "
                             "the honest setting for a quality metric)")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(EvaluateError,))
