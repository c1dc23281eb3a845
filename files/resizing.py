"""Resizing a data set's images to the smaller sizes progressive training reads, shared by
resize.py (every source) and train.py (the sizes a dataset_tool.py zip lacks): each image
decoded once, made square (``files.images.square_rgb``) and resized with LANCZOS straight from
the source, as the reference's resize.py does, in pool workers. Needs no Jittor."""
import contextlib
import io
import multiprocessing
import os
import signal
import sys
import time
from collections import namedtuple

from PIL import Image
from tqdm import tqdm

from files.atomic import atomic_write, make_folder
from files.data_errors import DatasetError
from files.images import RESAMPLE, encode_image, square_rgb

CHUNK_IMAGES = 256  # images read, resized and written per round when the source is not a folder

Summary = namedtuple("Summary", "images written skipped unreadable sizes")
Summary.__doc__ = """What one run did: source images found, output files written, output files
already up to date, unreadable source files (skipped), and the output sizes."""


def output_sizes(source_size, min_size):
    """The sizes written for a source folder: ``min_size`` doubling while below the source."""
    sizes = []
    size = min_size
    while size < source_size:
        sizes.append(size)
        size *= 2
    return sizes


def default_signals():
    """In a pool worker: SIGTERM ends it at once and Ctrl-C is left to the parent. Forked
    workers otherwise inherit cli.run's handlers, and Pool.terminate()'s SIGTERM then raised
    inside a worker that could hold the task queue's lock, so that the other worker and
    resize.py itself waited on that lock forever."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def worker_pool(workers, tasks):
    """A pool of ``workers`` processes (None where one would do: one worker or one task),
    closed when the block ends and its workers left to finish, terminated (SIGTERM, see
    ``default_signals``) when it ends on an error or a signal."""
    pool = (multiprocessing.Pool(workers, initializer=default_signals)
            if workers > 1 and tasks > 1 else None)
    try:
        yield pool
    except BaseException:
        if pool:
            pool.terminate()
            pool.join()
        raise
    if pool:
        pool.close()
        pool.join()


def resize_bytes(task):
    """In a pool worker: decode one source image and encode it at each size it is wanted at.

    ``task`` is ``(data, outputs)``: the source file's bytes (or the reason they could not be
    read, a str) and ``[(size, format), ...]``. Returns ``(encoded, error)``: the bytes of each
    output in order, or None and the reason the source could not be read."""
    data, outputs = task
    if isinstance(data, str):
        return None, data
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decode now, so a truncated file fails here
            square = square_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return None, f"{type(err).__name__}: {err}"
    return [encode_image(square if square.size == (size, size)
                         else square.resize((size, size), RESAMPLE), fmt)
            for size, fmt in outputs], None


def resize_items(items, read, outputs, write, workers, progress):
    """Read, resize and write every item of a zip, an LMDB or a folder going into an LMDB, in
    rounds of CHUNK_IMAGES: this process reads each round's source bytes (``read(item)``), the
    workers decode and encode them, and this process writes them (``write(item, [(size,
    bytes), ...])``), so only this process touches the source and the output.
    ``outputs(item)`` is ``[(size, format), ...]`` still to make (empty: up to date).
    Returns ``(written, skipped, unreadable)``; ``skipped`` counts outputs up to date."""
    written = skipped = unreadable = 0
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(items), desc="resize", unit="img", disable=not progress, file=sys.stderr)
    with worker_pool(workers, len(items)) as pool, bar:
        for start in range(0, len(items), CHUNK_IMAGES):
            chunk = items[start:start + CHUNK_IMAGES]
            tasks, counts = [], []
            for item in chunk:
                wanted, total = outputs(item)
                counts.append(total - len(wanted))
                data = None
                if wanted:
                    try:
                        data = read(item)
                    except OSError as err:
                        data = f"{type(err).__name__}: {err}"
                tasks.append((data, wanted))
            todo = [i for i, (_, wanted) in enumerate(tasks) if wanted]
            chunksize = max(1, len(todo) // (workers * 4))
            results = (pool.map(resize_bytes, [tasks[i] for i in todo], chunksize) if pool
                       else [resize_bytes(tasks[i]) for i in todo])
            done = dict(zip(todo, results))
            for i, item in enumerate(chunk):
                skipped += counts[i]
                if i in done:
                    encoded, error = done[i]
                    if error is not None:
                        unreadable += 1
                        tqdm.write(f"warning: skipping unreadable {item} ({error})",
                                   file=sys.stderr)
                    else:
                        sizes = [size for size, _ in tasks[i][1]]
                        write(item, list(zip(sizes, encoded)))
                        written += len(encoded)
                bar.update()
    return written, skipped, unreadable


def zip_to_folders(source, sizes, workers=None, progress=True):
    """The folders of a ZipSource's smaller ``sizes`` beside it (``data.zip`` -> ``data/8``,
    ...), skipping files newer than the zip; DatasetError when one of them is not a folder."""
    for size in sizes:
        folder = os.path.join(source.folder_root, str(size))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise DatasetError(f"{folder} exists and is not a folder")
    for size in sizes:
        make_folder(os.path.join(source.folder_root, str(size)))
    zip_time = os.stat(source.path).st_mtime_ns
    formats = Image.registered_extensions()

    def outputs(member):
        fmt = formats[os.path.splitext(member)[1].lower()]
        wanted = [(size, fmt) for size in sizes
                  if not is_newer(source.size_file(size, member), zip_time)]
        return wanted, len(sizes)

    def write(member, encoded):
        for size, data in encoded:
            with atomic_write(source.size_file(size, member)) as temporary:
                with open(temporary, "wb") as f:
                    f.write(data)

    counts = resize_items(source.members, source.read_bytes, outputs, write, workers, progress)
    return Summary(len(source.members), *counts, sizes)


def is_newer(path, time_ns):
    try:
        return os.stat(path).st_mtime_ns >= time_ns
    except FileNotFoundError:
        return False


def make_zip_sizes(path, sizes, workers=None, progress=True, wait=False, poll_seconds=1.0):
    """For a dataset_tool.py zip at ``path``: write the folders of the ``sizes`` below the
    zip's own that are missing, incomplete or older than the zip, as ``resize.py ZIP`` would
    (beside it: ``data.zip`` -> ``data/8``, ...); the zip itself is only read. A second call
    finds them up to date and writes nothing. ``wait``: write nothing, only wait until another
    process (MPI rank 0) has written them. Returns the sizes that were missing; [] for a
    source that is not a zip (its own check says what it lacks). DatasetError for a zip that
    cannot be used."""
    from files.zip_data import ZipSource
    if not os.path.isfile(path):   # folders or an LMDB (never opened twice in one process)
        return []
    source = ZipSource(path)
    try:
        missing = [size for size in sorted(set(sizes))
                   if size < source.size and source.missing_files(size)]
        if missing and wait:
            while any(source.missing_files(size) for size in missing):
                time.sleep(poll_seconds)
        elif missing:
            print(f"{path} holds {source.size} px images; writing sizes "
                  f"{', '.join(map(str, missing))} beside it in {source.folder_root}/ (as "
                  f"resize.py {path} --min_size {min(missing)} does)", file=sys.stderr)
            zip_to_folders(source, missing, workers, progress)
        return missing
    finally:
        source.close()
