"""Write the smaller power-of-two copies of an image folder that progressive training reads.

    python resize.py data/128 --min_size 8

reads every image in ``data/128`` and writes ``data/64``, ``data/32``, ``data/16`` and ``data/8``
beside it, each image resized with LANCZOS straight from the source and saved under its own file
name, as the reference's ``resize.py`` does. Folder names are resolutions: ``dataset.py`` finds
``root/<resolution>/`` by them.

    python resize.py data/128 --min_size 8 --format lmdb   # data.lmdb: the PyTorch original's
    python resize.py data.zip --min_size 8                  # data/8 ... data/64 for a zip
    python resize.py data.lmdb --min_size 4                 # adds size 4 to an LMDB

``--format lmdb`` writes every size from ``--min_size`` up to the source's into one LMDB of the
PyTorch original's layout (``files/lmdb_data.py``), which its ``train.py`` reads unchanged. A
dataset_tool.py zip gets the folders of its smaller sizes beside it (``files/zip_data.py``),
and an LMDB gets its missing smaller sizes added, made from its largest.

Beyond the reference: any common format and colour mode is accepted (converted to RGB, alpha
composited on white), non-square images are centre-cropped, re-running only writes what is
missing or out of date, and unreadable files are reported and skipped. Needs no Jittor.
"""
import argparse
import os
import sys

from PIL import Image
from tqdm import tqdm

from runtime import cli
from runtime.cli import UsageError
from files.atomic import make_folder
from files.data_errors import DatasetError
from files.datasets import LMDB_DATA_FILE, open_source
from files.images import (IMAGE_EXTENSIONS, RESAMPLE, is_power_of_two, list_images,
                          save_atomically, square_rgb)
from files.resizing import (Summary, output_sizes, resize_items, worker_pool,
                            zip_to_folders)

FORMATS = ("folders", "lmdb")
LMDB_IMAGE_FORMAT = "JPEG"  # what the original's prepare_data.py stores (here without subsampling)
def is_up_to_date(output, source):
    """True when ``output`` exists and is not older than ``source``."""
    try:
        return os.stat(output).st_mtime_ns >= os.stat(source).st_mtime_ns
    except FileNotFoundError:
        return False


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


def check_source(path, min_size, including_source=False):
    """Validate the command line; returns ``(source_size, image_names)`` or raises UsageError.
    ``including_source``: ``--min_size`` may be the source's size (an LMDB holds that too)."""
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a folder")
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    if not name.isdigit() or not is_power_of_two(int(name)):
        raise UsageError(f"the source folder must be named after its image size, a power of two "
                          f"(e.g. data/128), not {name!r}")
    source_size = int(name)
    check_min_size(min_size, source_size, including_source)
    names = list_images(path)
    if not names:
        raise UsageError(f"no images in {path} (looked for {' '.join(IMAGE_EXTENSIONS)})")
    return source_size, names


def resize_folder(path, min_size=8, workers=None, progress=True):
    """Write ``<parent>/<size>/`` for every size from ``min_size`` up to half the source folder's
    size; returns a Summary. Files in ``path`` are only read. Raises UsageError on bad input."""
    source_size, names = check_source(path, min_size)
    sizes = output_sizes(source_size, min_size)
    parent = os.path.dirname(os.path.normpath(os.path.abspath(path)))
    for size in sizes:
        out_dir = os.path.join(parent, str(size))
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise UsageError(f"{out_dir} exists and is not a folder")
        make_folder(out_dir)
    tasks = [(os.path.join(path, name),
              [(size, os.path.join(parent, str(size), name)) for size in sizes])
             for name in names]

    workers = workers or os.cpu_count() or 1
    written = skipped = unreadable = 0
    bar = tqdm(total=len(tasks), desc="resize", unit="img", disable=not progress, file=sys.stderr)
    with worker_pool(workers, len(tasks)) as pool, bar:
        chunksize = max(1, min(64, len(tasks) // (workers * 8)))
        results = pool.imap(resize_one, tasks, chunksize) if pool else map(resize_one, tasks)
        for (source, _), (n_written, n_skipped, error) in zip(tasks, results):
            written += n_written
            skipped += n_skipped
            if error is not None:
                unreadable += 1
                tqdm.write(f"warning: skipping unreadable {source} ({error})", file=sys.stderr)
            bar.update()
    return Summary(len(names), written, skipped, unreadable, sizes)


def default_lmdb_path(path):
    """Where ``--format lmdb`` writes by default: ``data.lmdb`` for ``data/128`` or
    ``data.zip``."""
    if os.path.isfile(path):
        return os.path.splitext(path)[0] + ".lmdb"
    parent = os.path.dirname(os.path.normpath(path)) or os.getcwd()
    return os.path.normpath(parent) + ".lmdb"


def check_min_size(min_size, source_size, including_source=False):
    if not is_power_of_two(min_size):
        raise UsageError(f"--min_size must be a power of two, not {min_size}")
    if min_size > source_size or (min_size == source_size and not including_source):
        raise UsageError(f"--min_size ({min_size}) must be smaller than the source size "
                          f"({source_size})")


def open_writer(out, create):
    from files.lmdb_data import LmdbWriter
    try:
        return LmdbWriter(out, create)
    except DatasetError as error:
        raise UsageError(str(error)) from None


def new_lmdb(out):
    """An LmdbWriter for a new database at ``out``; UsageError when something is there."""
    if os.path.lexists(out):
        raise UsageError(f"{out} exists; give another --out, or add sizes to an LMDB with: "
                         f"python resize.py {out} --min_size N")
    return open_writer(out, create=True)


def folder_to_lmdb(path, min_size, out, workers, progress):
    """Every size from ``min_size`` up to the folder's into a new LMDB at ``out``."""
    source_size, names = check_source(path, min_size, including_source=True)
    sizes = output_sizes(source_size, min_size) + [source_size]
    return items_to_lmdb([os.path.join(path, name) for name in names], read_file, sizes, out,
                         workers, progress)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def items_to_lmdb(items, read, sizes, out, workers, progress):
    """Write ``items`` (read by ``read``) at every size in ``sizes`` into a new LMDB ``out``,
    numbered in order from 0 (an unreadable item takes no number), ``length`` last."""
    from files.lmdb_data import image_key
    writer = new_lmdb(out)
    count = [0]

    def write(item, encoded):
        for size, data in encoded:
            writer.put(image_key(size, count[0]), data)
        count[0] += 1

    finished = False
    try:
        written, skipped, unreadable = resize_items(
            items, read, lambda item: ([(size, LMDB_IMAGE_FORMAT) for size in sizes], len(sizes)),
            write, workers, progress)
        writer.finish(length=count[0])
        finished = True
    finally:
        if not finished:
            writer.abandon()
    return Summary(len(items), written, skipped, unreadable, sizes)


def open_archive(path):
    """The ZipSource or LmdbSource at ``path``, its images checked (an LMDB's at its largest
    complete size); UsageError (one line) when it cannot be used."""
    try:
        source = open_source(path)
        top = source.size if hasattr(source, "size") else max(source.complete_sizes(), default=0)
        if top:
            source.check([top])
        return source
    except DatasetError as error:
        raise UsageError(str(error)) from None


def lmdb_add_sizes(source, min_size, workers, progress):
    """Add to the LMDB ``source`` every size from ``min_size`` below its largest complete size
    that it lacks (or lacks keys of), made from that largest size; the keys already there are
    kept."""
    from files.lmdb_data import image_key
    have = source.complete_sizes()
    if not have:
        raise UsageError(f"{source.path} has no size with all of its {source.length} images: "
                          f"it is still being written or damaged")
    largest = max(have)
    check_min_size(min_size, largest)
    sizes = [size for size in output_sizes(largest, min_size) if size not in have]
    length = source.length
    source.close()  # one environment in this process: the writer's
    writer = open_writer(source.path, create=False)
    finished = False
    try:
        def outputs(index):
            wanted = [(size, LMDB_IMAGE_FORMAT) for size in sizes
                      if writer.get(image_key(size, index)) is None]
            return wanted, len(sizes)

        def read(index):
            data = writer.get(image_key(largest, index))
            if data is None:
                raise OSError(f"no key {image_key(largest, index).decode()}")
            return data

        def write(index, encoded):
            for size, data in encoded:
                writer.put(image_key(size, index), data)

        counts = resize_items(range(length), read, outputs, write, workers, progress)
        writer.finish()
        finished = True
    finally:
        if not finished:
            writer.abandon()  # what was committed stays: a re-run adds the rest
    return Summary(length, *counts, sizes)


def resize_path(path, min_size=8, workers=None, progress=True, fmt=None, out=None):
    """Dispatch on the source and ``fmt`` (None: folders, or an LMDB in place for an LMDB
    source); returns a Summary. Raises UsageError on bad input, before writing anything."""
    if fmt not in (None,) + FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt}")
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist")
    is_lmdb = os.path.isfile(os.path.join(path, LMDB_DATA_FILE))
    if os.path.isdir(path) and not is_lmdb:
        if out is not None and fmt != "lmdb":
            raise UsageError("--out is for --format lmdb")
        if fmt == "lmdb":
            return folder_to_lmdb(path, min_size, out or default_lmdb_path(path), workers,
                                  progress)
        return resize_folder(path, min_size, workers, progress)
    source = open_archive(path)
    if is_lmdb:
        if fmt == "folders" or out is not None:
            raise UsageError(f"{path} is an LMDB: resize.py adds its missing sizes to it in "
                             f"place (no --format folders, no --out)")
        return lmdb_add_sizes(source, min_size, workers, progress)
    if fmt == "lmdb":
        check_min_size(min_size, source.size, including_source=True)
        sizes = output_sizes(source.size, min_size) + [source.size]
        return items_to_lmdb(source.members, source.read_bytes, sizes,
                             out or default_lmdb_path(path), workers, progress)
    if out is not None:
        raise UsageError("--out is for --format lmdb")
    check_min_size(min_size, source.size)
    try:
        return zip_to_folders(source, output_sizes(source.size, min_size), workers, progress)
    except DatasetError as error:   # a size's folder that is a file: the command line's fault
        raise UsageError(str(error)) from None


def output_description(args, sizes):
    """Where a run wrote, for its closing line."""
    path = os.path.normpath(args.path)
    if os.path.isfile(os.path.join(path, LMDB_DATA_FILE)):
        return f"{path} (sizes {', '.join(map(str, sizes)) or 'none missing'})"
    if args.format == "lmdb":
        out = args.out or default_lmdb_path(args.path)
        return f"{out} (sizes {', '.join(map(str, sizes))})"
    parent = os.path.splitext(path)[0] if os.path.isfile(path) else os.path.dirname(path)
    return ", ".join(os.path.join(parent, str(s)) for s in sizes)


def main(args):
    """Run resize_path for parsed command-line ``args`` and print the closing summary line."""
    summary = resize_path(args.path, args.min_size, args.workers, progress=not args.quiet,
                          fmt=args.format, out=args.out)
    folders = output_description(args, summary.sizes)
    print(f"resize.py: {summary.images} images -> {folders}: {summary.written} written, "
          f"{summary.skipped} skipped (up to date), {summary.unreadable} unreadable")
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Write LANCZOS-resized copies of an image folder at every power-of-two size "
                    "from --min_size up to half the folder's size, in folders named by size "
                    "beside it (data/128 -> data/64, data/32, ...).")
    parser.add_argument("path", help="source folder, named after its image size, e.g. data/128 "
                                     "(only read, never modified); or a dataset_tool.py zip "
                                     "(writes its smaller sizes in folders beside it: data.zip "
                                     "-> data/8, ...); or an LMDB of the PyTorch original's "
                                     "prepare_data.py (adds the sizes it lacks below its "
                                     "largest, in place)")
    parser.add_argument("--min_size", type=int, default=8,
                        help="smallest size to write, a power of two (default: 8)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="folders: one folder per size (the default for a folder or a zip); "
                             "lmdb: one LMDB of the PyTorch original's layout holding every "
                             "size from --min_size up to the source's (keys '8-00000', ..., "
                             "'length'; JPEG at quality 100), which the original's train.py "
                             "reads unchanged (the default, in place, for an LMDB)")
    parser.add_argument("--out", default=None,
                        help="the LMDB --format lmdb writes; it must not exist (default: "
                             "data.lmdb beside data/ for data/128, beside data.zip for a zip)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


if __name__ == "__main__":
    # bad input (a hostile or unfinished zip or LMDB too): exit 2; an output that cannot be
    # written (WriteError): 1; Ctrl-C 130, SIGTERM 143
    cli.run(argparse.ArgumentParser(prog="resize.py"), lambda: main(parse_args()),
            failures=(DatasetError,))
