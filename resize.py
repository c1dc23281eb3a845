"""Write the smaller power-of-two copies of an image folder that progressive training reads.

    python resize.py data/128 --min_size 8

reads every image in ``data/128`` and writes ``data/64``, ``data/32``, ``data/16`` and ``data/8``
beside it, each image resized with LANCZOS straight from the source and saved under its own file
name, as the reference's ``resize.py`` does. Folder names are resolutions: ``dataset.py`` finds
``root/<resolution>/`` by them.

Beyond the reference: any common format and colour mode is accepted (converted to RGB, alpha
composited on white), non-square images are centre-cropped, re-running only writes what is
missing or out of date, and unreadable files are reported and skipped. Needs no Jittor.
"""
import argparse
import multiprocessing
import os
import signal
import sys
from collections import namedtuple

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

import cli
from atomic import atomic_write, make_folder
from grid import PNG_OPTIONS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
BACKGROUND = (255, 255, 255)  # what transparent pixels become
RESAMPLE = Image.LANCZOS
JPEG_QUALITY = 100  # rosinality's prepare_data.py stores its JPEGs at quality 100
JPEG_FULL_CHROMA = 0  # 4:4:4, no colour subsampling: small images lose too much otherwise
SAVE_OPTIONS = {"JPEG": {"quality": JPEG_QUALITY, "subsampling": JPEG_FULL_CHROMA},
                "WEBP": {"lossless": True}, "PNG": PNG_OPTIONS}
SIXTEEN_BIT_TO_EIGHT = 257.0  # 65535 / 255
EXIF_ORIENTATION = 0x0112
EXIT_USAGE = 2

Summary = namedtuple("Summary", "images written skipped unreadable sizes")
Summary.__doc__ = """What one run did: source images found, output files written, output files
already up to date, unreadable source files (skipped), and the output sizes."""


class ResizeError(ValueError):
    """A problem with the command line or the source folder; its text is the whole message."""


def is_power_of_two(n):
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def list_images(folder):
    """Sorted names of the image files in ``folder`` (any letter case; hidden files left out)."""
    names = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
            names.append(entry.name)
    return sorted(names)


def to_rgb(img):
    """``img`` as an RGB image: grayscale, palette, CMYK and 16-bit converted, alpha on white."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode.startswith("I"):  # 16/32-bit grayscale: PIL's convert would clip at 255
        pixels = np.asarray(img, dtype=np.float64)
        if pixels.max() > 255:
            pixels = pixels / SIXTEEN_BIT_TO_EIGHT
        img = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def center_crop_square(img):
    """The largest centred square of ``img`` (``img`` itself when already square)."""
    width, height = img.size
    if width == height:
        return img
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def upright(img):
    """``img`` turned as its EXIF orientation tag says (photos from cameras); most images have
    no such tag and come back unchanged."""
    if img.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return ImageOps.exif_transpose(img)
    return img


def square_rgb(img):
    """``img`` upright, RGB and centre-cropped to a square."""
    return center_crop_square(to_rgb(upright(img)))


def prepare_image(img, size):
    """``img`` as an RGB square of side ``size``: the exact pixels when already so, else
    converted, centre-cropped and resized with LANCZOS (what ``resize.py`` writes)."""
    square = square_rgb(img)
    if square.size != (size, size):
        square = square.resize((size, size), RESAMPLE)
    return square


def output_sizes(source_size, min_size):
    """The sizes written for a source folder: ``min_size`` doubling while below the source."""
    sizes = []
    size = min_size
    while size < source_size:
        sizes.append(size)
        size *= 2
    return sizes


def is_up_to_date(output, source):
    """True when ``output`` exists and is not older than ``source``."""
    try:
        return os.stat(output).st_mtime_ns >= os.stat(source).st_mtime_ns
    except FileNotFoundError:
        return False


def save_atomically(img, path):
    """Save ``img`` to ``path`` through a hidden temporary file, so a run that is stopped never
    leaves a truncated image under a real name (it would look up to date on the next run)."""
    fmt = Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    with atomic_write(path) as temporary:  # WriteError (one line) on a full disk, ...
        with open(temporary, "wb") as f:
            img.save(f, format=fmt, **SAVE_OPTIONS.get(fmt, {}))


def resize_one(task):
    """Write the missing or stale outputs of one source image.

    ``task`` is ``(source_path, [(size, output_path), ...])``. Returns
    ``(written, skipped, error)``; ``error`` is None or the reason the source could not be read.
    """
    source, outputs = task
    todo = [(size, out) for size, out in outputs if not is_up_to_date(out, source)]
    if not todo:
        return 0, len(outputs), None
    try:
        with Image.open(source) as img:
            img.load()  # decode now, so a truncated file fails here
            square = square_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return 0, 0, f"{type(err).__name__}: {err}"
    for size, out in todo:
        save_atomically(square.resize((size, size), RESAMPLE), out)
    return len(todo), len(outputs) - len(todo), None


def check_source(path, min_size):
    """Validate the command line; returns ``(source_size, image_names)`` or raises ResizeError."""
    if not os.path.exists(path):
        raise ResizeError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise ResizeError(f"{path} is not a folder")
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    if not name.isdigit() or not is_power_of_two(int(name)):
        raise ResizeError(f"the source folder must be named after its image size, a power of two "
                          f"(e.g. data/128), not {name!r}")
    source_size = int(name)
    if not is_power_of_two(min_size):
        raise ResizeError(f"--min_size must be a power of two, not {min_size}")
    if min_size >= source_size:
        raise ResizeError(f"--min_size ({min_size}) must be smaller than the source size "
                          f"({source_size})")
    names = list_images(path)
    if not names:
        raise ResizeError(f"no images in {path} (looked for {' '.join(IMAGE_EXTENSIONS)})")
    return source_size, names


def resize_folder(path, min_size=8, workers=None, progress=True):
    """Write ``<parent>/<size>/`` for every size from ``min_size`` up to half the source folder's
    size; returns a Summary. Files in ``path`` are only read. Raises ResizeError on bad input."""
    source_size, names = check_source(path, min_size)
    sizes = output_sizes(source_size, min_size)
    parent = os.path.dirname(os.path.normpath(os.path.abspath(path)))
    for size in sizes:
        out_dir = os.path.join(parent, str(size))
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise ResizeError(f"{out_dir} exists and is not a folder")
        make_folder(out_dir)
    tasks = [(os.path.join(path, name),
              [(size, os.path.join(parent, str(size), name)) for size in sizes])
             for name in names]

    workers = workers or os.cpu_count() or 1
    written = skipped = unreadable = 0
    bar = tqdm(total=len(tasks), desc="resize", unit="img", disable=not progress, file=sys.stderr)
    pool = (multiprocessing.Pool(workers, initializer=default_signals)
            if workers > 1 and len(tasks) > 1 else None)
    finished = False
    try:
        chunksize = max(1, min(64, len(tasks) // (workers * 8)))
        results = pool.imap(resize_one, tasks, chunksize) if pool else map(resize_one, tasks)
        for (source, _), (n_written, n_skipped, error) in zip(tasks, results):
            written += n_written
            skipped += n_skipped
            if error is not None:
                unreadable += 1
                tqdm.write(f"warning: skipping unreadable {source} ({error})", file=sys.stderr)
            bar.update()
        finished = True
    finally:
        bar.close()
        if pool:
            if finished:
                pool.close()      # every task done: let the workers end on their own
            else:
                pool.terminate()  # an error or a signal: SIGTERM them (default_signals)
            pool.join()
    return Summary(len(names), written, skipped, unreadable, sizes)


def default_signals():
    """In a pool worker: SIGTERM ends it at once and Ctrl-C is left to the parent. Forked
    workers otherwise inherit cli.run's handlers, and Pool.terminate()'s SIGTERM then raised
    inside a worker that held the task queue's lock, so the other worker waited on that lock
    forever and so did resize.py (seen once in make demo, 2026-11-29)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(args):
    """Run resize_folder for parsed command-line ``args`` and print the closing summary line."""
    summary = resize_folder(args.path, args.min_size, args.workers, progress=not args.quiet)
    parent = os.path.dirname(os.path.normpath(args.path))
    folders = ", ".join(os.path.join(parent, str(s)) for s in summary.sizes)
    print(f"resize.py: {summary.images} images -> {folders}: {summary.written} written, "
          f"{summary.skipped} skipped (up to date), {summary.unreadable} unreadable")
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Write LANCZOS-resized copies of an image folder at every power-of-two size "
                    "from --min_size up to half the folder's size, in folders named by size "
                    "beside it (data/128 -> data/64, data/32, ...).")
    parser.add_argument("path", help="source folder, named after its image size, e.g. data/128 "
                                     "(only read, never modified)")
    parser.add_argument("--min_size", type=int, default=8,
                        help="smallest size to write, a power of two (default: 8)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.exit(EXIT_USAGE, "resize.py: error: --workers must be at least 1\n")
    return args


if __name__ == "__main__":
    # bad input: exit 2; an output that cannot be written (WriteError): 1; Ctrl-C 130, SIGTERM 143
    cli.run(argparse.ArgumentParser(prog="resize.py"), lambda: main(parse_args()),
            usage=(ResizeError,))
