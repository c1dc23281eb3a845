"""The PyTorch original's LMDB data sets: read them as they are, and write them.

The layout of rosinality's ``prepare_data.py`` (and ``stylegan2-pytorch``'s, the same keys):
one key per size and image, ``f'{size}-{index:05d}'`` (``8-00000``, ..., ``1024-69999``), whose
value is an encoded image (its JPEGs at quality 100), and a key ``length`` holding the number of
images as decimal text. ``prepare_data.py`` writes everything in one transaction and ``length``
with it, so a database still being written has no ``length`` yet.

Reading opens the environment read-only without a lock (``lock=False``), as the original's
dataset does: nothing is written beside the database, not even ``lock.mdb``, so a database on a
read-only disk or shared by many jobs reads alike; each process (each loader worker, each MPI
rank) opens its own environment, since one opened before a fork must not be used after it.
Writing (``LmdbWriter``) grows the map as the data grows instead of reserving a terabyte up
front, and writes ``length`` last.
"""
import io
import os
import re
import shutil
import uuid

from PIL import Image

from files.atomic import write_error
from files.data_errors import DatasetError, missing_sizes_error
from files.images import SIGNATURE_BYTES, looks_like_image

LENGTH_KEY = b"length"
KEY_PATTERN = re.compile(rb"^([0-9]+)-([0-9]+)$")
LOCK_FILE = "lock.mdb"
INITIAL_MAP_BYTES = 64 * 2 ** 20  # the map doubles from here when a transaction fills it
TRANSACTION_BYTES = 64 * 2 ** 20  # values written per transaction


def image_key(size, index):
    """The key of image ``index`` at ``size``: ``f'{size}-{str(index).zfill(5)}'``."""
    return f"{size}-{index:05d}".encode("ascii")


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DatasetError("reading or writing an LMDB needs the lmdb package: "
                           "pip install -r requirements.txt") from None
    return lmdb


class LmdbSource:
    """An LMDB of the original's layout, read-only. ``sizes`` maps each size that has every one
    of its ``length`` images to True (sizes with only some of their keys map to the count)."""

    kind = "LMDB"
    repair = "make the LMDB again from its images"

    def __init__(self, path):
        self.path = path
        self.notes = []
        with self.environment().begin() as txn:
            length = txn.get(LENGTH_KEY)
            if length is None:
                raise DatasetError(
                    f"{path} has no 'length' key: it is still being written (prepare_data.py "
                    f"stores it when it finishes) or it is not an LMDB of prepare_data.py or "
                    f"resize.py --format lmdb")
            try:
                self.length = int(bytes(length).decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                self.length = -1
            if self.length < 0:
                raise DatasetError(f"{path}: its 'length' key holds {bytes(length)[:40]!r}, not "
                                   f"a number of images")
            self.counts = self._count_keys(txn)

    def environment(self):
        """This process's read-only environment of the database (opened anew after a fork)."""
        return read_environment(self.path)

    def _count_keys(self, txn):
        """{size: number of its image keys with an index below length}, from the keys alone."""
        counts = {}
        for key in txn.cursor().iternext(keys=True, values=False):
            match = KEY_PATTERN.match(bytes(key))
            if match and int(match.group(2)) < self.length:
                size = int(match.group(1))
                counts[size] = counts.get(size, 0) + 1
        return counts

    def complete_sizes(self):
        return sorted(size for size, count in self.counts.items()
                      if count == self.length and self.length > 0)

    def items(self, size):
        return range(self.length)

    def open_image(self, size, index):
        with self.environment().begin() as txn:
            value = txn.get(image_key(size, index))
        if value is None:
            raise OSError(f"no key {image_key(size, index).decode()}")
        with Image.open(io.BytesIO(value)) as img:
            img.load()
            return img

    def read_bytes(self, size, index):
        with self.environment().begin() as txn:
            return txn.get(image_key(size, index))

    def describe(self, size, index):
        return f"{self.path} key {image_key(size, index).decode()}"

    def check(self, sizes):
        """DatasetError unless every size in ``sizes`` has all its keys and each of them holds
        an image (by its first bytes: a full decode of every image would take minutes)."""
        if self.length == 0:
            raise DatasetError(f"{self.path}: its 'length' is 0: no images")
        have = self.complete_sizes()
        missing = sorted(set(sizes) - set(have))
        partial = [size for size in missing if self.counts.get(size)]
        if partial:
            size = partial[0]
            first = next(i for i in range(self.length) if self.read_bytes(size, i) is None)
            raise DatasetError(
                f"{self.path} lacks {self.length - self.counts[size]} of the {self.length} keys "
                f"of size {size}, e.g. {image_key(size, first).decode()}: it is damaged or "
                f"still being written; " + _add_command(self, size, have))
        if missing:
            raise missing_sizes_error(self, have, missing, max(have, default=0))
        with self.environment().begin(buffers=True) as txn:
            for size in sorted(set(sizes)):
                for index in range(self.length):
                    value = txn.get(image_key(size, index))
                    if not looks_like_image(value[:SIGNATURE_BYTES]):
                        raise DatasetError(
                            f"{self.describe(size, index)} is not an image (it begins "
                            f"{bytes(value[:SIGNATURE_BYTES])!r}); {self.repair}")

    def close(self):
        """Close this process's environment of the database (every LmdbSource of it shares
        that one; they reopen it when they next read)."""
        close_environment(self.path)


# The read-only environments open in this process, by the database's data file. LMDB allows one
# environment of a database per process (py-lmdb refuses a second open of the same files), so
# every LmdbSource of it shares one. After a fork the parent's is closed in the child (with
# lock=False that releases nothing of the parent's) and the child opens its own.
_ENVIRONMENTS = {}


def _data_file_key(path):
    data = os.path.join(path, "data.mdb")
    try:
        stat = os.stat(data)
    except OSError:
        return os.path.realpath(data), None
    return os.path.realpath(data), (stat.st_dev, stat.st_ino)


def read_environment(path):
    key = _data_file_key(path)
    pid, environment = _ENVIRONMENTS.get(key, (None, None))
    if pid == os.getpid():
        return environment
    if environment is not None:  # the parent's, inherited through a fork
        environment.close()
        del _ENVIRONMENTS[key]
    lmdb = _lmdb()
    try:
        environment = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                                subdir=True)
    except lmdb.Error as error:
        raise DatasetError(f"cannot open {path} as an LMDB ({type(error).__name__}: {error}): "
                           f"it is damaged, still being created, or open for writing in this "
                           f"process") from None
    _ENVIRONMENTS[key] = (os.getpid(), environment)
    return environment


def close_environment(path):
    pid, environment = _ENVIRONMENTS.pop(_data_file_key(path), (None, None))
    if environment is not None:
        environment.close()


def _add_command(source, size, have):
    larger = [s for s in have if s > size]
    if not larger:
        return source.repair
    return f"add them with: python resize.py {source.path} --min_size {size}"


class LmdbWriter:
    """Puts images into an LMDB in transactions of about TRANSACTION_BYTES, doubling the map
    whenever one does not fit. ``create``: a new database at ``path`` (written in a hidden
    folder beside it and renamed to ``path`` by ``finish``, so a reader never sees half of it);
    else images are added to the existing database at ``path``."""

    def __init__(self, path, create):
        lmdb = _lmdb()
        self.path = path
        self.create = create
        self.target = path
        if create:
            folder, name = os.path.split(os.path.abspath(path))
            self.target = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
        self.pending, self.pending_bytes = [], 0
        self.map_size = INITIAL_MAP_BYTES
        # a writer needs lock.mdb; one it made itself it removes again (readers need none)
        self.own_lock = not os.path.exists(os.path.join(self.target, LOCK_FILE))
        try:
            if not create:  # start from the data already there
                self.map_size = max(self.map_size, 2 * os.path.getsize(
                    os.path.join(path, "data.mdb")))
            self.env = lmdb.open(self.target, map_size=self.map_size, subdir=True,
                                 readahead=False, meminit=False)
        except (lmdb.Error, OSError) as error:
            self.abandon()
            raise write_error(path, error if isinstance(error, OSError) else OSError(str(error)))

    def get(self, key):
        """The value of ``key`` (bytes) or None; never while puts are pending."""
        with self.env.begin() as txn:
            return txn.get(key)

    def put(self, key, value):
        self.pending.append((key, value))
        self.pending_bytes += len(value)
        if self.pending_bytes >= TRANSACTION_BYTES:
            self.flush()

    def flush(self):
        lmdb = _lmdb()
        while self.pending:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                self.pending, self.pending_bytes = [], 0
            except lmdb.MapFullError:  # the transaction was aborted: grow the map, try again
                self.map_size *= 2
                self.env.set_mapsize(self.map_size)
            except lmdb.Error as error:
                raise write_error(self.path, OSError(str(error))) from None

    def finish(self, length=None):
        """Write what is pending (and ``length`` with it, last), close, and for a new database
        move it to its name; ``lock.mdb`` is left out (readers need none)."""
        if length is not None:
            self.put(LENGTH_KEY, str(length).encode("ascii"))
        self.flush()
        self.env.sync(True)
        self.env.close()
        self.remove_own_lock()
        if not self.create:
            return
        try:
            if os.path.exists(self.path):
                raise FileExistsError(17, "it appeared while this was written")
            os.rename(self.target, self.path)
        except OSError as error:
            self.abandon()
            raise write_error(self.path, error) from None

    def remove_own_lock(self):
        lock = os.path.join(self.target, LOCK_FILE)
        if self.own_lock and os.path.exists(lock):
            os.remove(lock)

    def abandon(self):
        """Drop a new database that was not finished (an error, Ctrl-C); an existing one keeps
        what was committed."""
        env = getattr(self, "env", None)
        if env is not None:
            env.close()  # closing twice is allowed
            self.remove_own_lock()
        if self.create and os.path.isdir(self.target):
            shutil.rmtree(self.target, ignore_errors=True)

