"""The training images: a Jittor Dataset over ``root/<resolution>/`` (folders written by resize.py).

    dataset = MultiResolutionDataset("data", resolution=8, batch_size=256, shuffle=True)
    for real_image in dataset:          # jt.Var, float32, (batch, 3, 8, 8), values in [-1, 1]
        ...
    dataset.set_resolution(16)          # progressive growing: next phase reads data/16

Each item is what the reference's training transform gives (RandomHorizontalFlip, ToTensor,
Normalize((0.5,)*3, (0.5,)*3)): a float32 (3, H, W) array in [-1, 1].

Batching, shuffling, ``drop_last`` and worker processes are Jittor's own (``jittor.dataset``).
Under MPI (``mpirun -np N python train.py``) Jittor shards every batch: ``batch_size`` is the
batch of all ranks together (at least N, best a multiple of N) and each rank receives its own
``batch_size / N`` images of it, cut from the same shuffled order on every rank (Jittor shuffles
with a fixed seed), so no image goes to two ranks, except that with ``drop_last=False`` Jittor
pads a short last batch to equal shares, repeating an image or two.
``len(dataset)`` is Jittor's: batches per epoch; ``dataset.num_images`` counts the images.
"""
import ctypes
import os
import shlex
import signal
import threading

import numpy as np
from PIL import Image

import jittor_env  # noqa: F401  (prepares Jittor's environment before jittor is imported)
from jittor.dataset import Dataset

from resize import is_power_of_two, list_images, prepare_image

FLIP_PROBABILITY = 0.5  # RandomHorizontalFlip's default
PIXEL_MAX = 255.0  # ToTensor: uint8 -> [0, 1]
NORMALIZE_MEAN = 0.5  # Normalize((0.5,)*3, (0.5,)*3): [0, 1] -> [-1, 1]
NORMALIZE_STD = 0.5


class DatasetError(ValueError):
    """A resolution folder is missing or empty, or an image in it cannot be read."""


class UnreadableImage(DatasetError):
    """An image cannot be read (damaged, truncated, deleted, a decompression bomb); ``path``
    names it (None when another MPI process met it)."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


# What Pillow raises for a file it cannot read; DecompressionBombError (an image far over
# Image.MAX_IMAGE_PIXELS, a guard against memory exhaustion) is none of the others.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def resolution_folder(root, resolution):
    return os.path.join(root, str(resolution))


def _image_count(folder):
    return len(list_images(folder)) if os.path.isdir(folder) else 0


def largest_image_folder(root):
    """The largest power-of-two size ``s`` such that ``root/<s>`` holds images; None if none."""
    if not os.path.isdir(root):
        return None
    sizes = [int(name) for name in os.listdir(root) if name.isdigit() and is_power_of_two(int(name))]
    sizes = [size for size in sizes if _image_count(resolution_folder(root, size))]
    return max(sizes, default=None)


def resize_command(root, sizes):
    """The shell command that writes ``root/<size>`` for every size in ``sizes`` from the
    largest image folder in ``root``; None when there is no folder larger than all of them."""
    source = largest_image_folder(root)
    if source is None or source <= max(sizes):
        return None
    return (f"python resize.py {shlex.quote(resolution_folder(root, source))} "
            f"--min_size {min(sizes)}")


def check_resolutions(root, sizes):
    """Raise one DatasetError naming every folder ``root/<size>`` (for ``size`` in ``sizes``)
    that is missing or holds no images, with the resize.py command that writes them."""
    problems, missing = [], []
    for size in sorted(set(sizes)):
        folder = resolution_folder(root, size)
        if not os.path.isdir(folder):
            problems.append(f"{folder} (missing)")
        elif not _image_count(folder):
            problems.append(f"{folder} (no images)")
        else:
            continue
        missing.append(size)
    if not missing:
        return
    source = largest_image_folder(root)
    smaller = [size for size in missing if source is not None and size < source]
    larger = [size for size in missing if size not in smaller]
    hints = []
    if smaller:
        hints.append(f"make them with: {resize_command(root, smaller)}")
    if larger and source is not None:
        hints.append(f"{', '.join(resolution_folder(root, s) for s in larger)} cannot be made "
                     f"from {resolution_folder(root, source)}, the largest image folder, since "
                     f"resize.py only shrinks: put images of that size there")
    if larger and source is None:
        example = resolution_folder(root, "<size>")
        hints.append(f"no image folder in {root}: put square images in {example} (or run: "
                     f"python build_emoji.py {shlex.quote(root)}, which writes "
                     f"{resolution_folder(root, 128)}), then run: python resize.py {example} "
                     f"--min_size {min(missing)}")
    raise DatasetError(f"missing or empty resolution folders: {', '.join(problems)}; "
                       + "; ".join(hints))


PR_SET_PDEATHSIG = 1  # Linux prctl: a signal for this process when its parent ends


def only_the_parent_may_terminate():
    """In a data-loading worker: end on SIGTERM only when the parent (the training process)
    sends it, as Jittor's ``Dataset.terminate`` and multiprocessing's exit do; ignore a SIGTERM
    from anyone else, and die with the parent.

    A SIGTERM to the whole process group (``timeout``, SLURM's scancel) reaches the workers too.
    A worker that died of it while holding the loader's shared lock, or after taking a batch
    number and before handing the batch over, left the training process waiting for that batch
    forever, before it could save and exit 143 (seen in test_long_runs). The training process
    stops at its own pace and then ends its workers itself."""
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # threads started now inherit it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch():
        while signal.sigwaitinfo([signal.SIGTERM]).si_pid != parent:
            pass
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])  # in this thread alone
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here: die of it, as Jittor expects

    threading.Thread(target=watch, name="sigterm-from-parent", daemon=True).start()
    try:  # a worker whose parent died (SIGKILL, OOM) would otherwise wait for work forever
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass
    if os.getppid() != parent:  # the parent ended before prctl
        os._exit(1)


class MultiResolutionDataset(Dataset):
    """Images of ``root/<resolution>/*`` as float32 (3, H, W) arrays in [-1, 1].

    Args:
        root: folder holding one sub-folder per resolution, named by it (``data`` for
            ``data/8``, ``data/16``, ...), as resize.py writes them.
        resolution: side of the images to read now (default 8, the reference's first phase).
        flip: mirror each image left-right with probability 0.5 (default True).
        **attrs: Jittor Dataset attributes passed to ``set_attrs``: ``batch_size``,
            ``shuffle``, ``drop_last``, ``num_workers``, ``buffer_size``, ``endless``, ...

    Images are read from disk when asked for, not kept in memory: the Jittor reference loads
    every image at construction, which a 70k-image FFHQ would not fit; the PyTorch original
    reads each one on demand (from LMDB), as here.

    An image that cannot be read raises ``UnreadableImage`` naming it; with the attribute
    ``unreadable_as_nan`` it comes back as an array of NaN instead, so that a Jittor worker
    process (which would print a traceback and send SIGINT to its parent) hands it on and the
    main process says which file it was (``unreadable``), as data_stream.py's ImageStream does.
    """

    unreadable_as_nan = False

    def __init__(self, root, resolution=8, flip=True, **attrs):
        super().__init__()
        self.root = root
        self.flip = flip
        self.resolution = None
        self.files = []
        unknown = sorted(k for k in attrs if not hasattr(self, k))
        if unknown:
            raise TypeError(f"MultiResolutionDataset got unknown options: {', '.join(unknown)}")
        self.set_resolution(resolution)
        if attrs:
            self.set_attrs(**attrs)

    def set_resolution(self, resolution):
        """Read ``root/<resolution>/`` from now on (stops Jittor's workers; the next iteration
        starts fresh ones). Raises DatasetError when that folder is missing or empty."""
        check_resolutions(self.root, [resolution])
        folder = resolution_folder(self.root, resolution)
        self.resolution = resolution
        self.files = [os.path.join(folder, name) for name in list_images(folder)]
        self.set_attrs(total_len=len(self.files))
        return self

    @property
    def num_images(self):
        return len(self.files)

    def read(self, index):
        """Image ``index`` as a float32 (H, W, 3) array, 0..255; UnreadableImage if it cannot be
        read."""
        path = self.files[index]
        try:
            with Image.open(path) as img:
                # resize.py writes RGB squares of the right size, which pass through unchanged;
                # anything else (e.g. the user's own top folder) is made so the same way.
                img = prepare_image(img, self.resolution)
                return np.asarray(img, dtype=np.float32)  # (H, W, 3), 0..255
        except IMAGE_ERRORS as err:
            raise UnreadableImage(path, f"cannot read {path} ({type(err).__name__}: {err}); "
                                        f"remove or replace it") from None

    def unreadable(self, index):
        """The UnreadableImage of image ``index`` (read again, in this process, for its
        message), e.g. after it came back as NaN from a worker."""
        try:
            self.read(index)
        except UnreadableImage as error:
            return error
        path = self.files[index]
        return UnreadableImage(path, f"cannot read {path} (it failed in a data-loading worker "
                                     f"and reads now: it changed meanwhile); check it")

    def __getitem__(self, index):
        try:
            pixels = self.read(index)
        except UnreadableImage:
            if not self.unreadable_as_nan:
                raise
            return np.full((3, self.resolution, self.resolution), np.nan, np.float32)
        if self.flip and np.random.random() < FLIP_PROBABILITY:
            pixels = pixels[:, ::-1]
        pixels = pixels.transpose(2, 0, 1) / PIXEL_MAX
        return np.ascontiguousarray((pixels - NORMALIZE_MEAN) / NORMALIZE_STD, dtype=np.float32)

    def _init_workers(self, index_list):
        """Jittor's worker start, with SIGTERM blocked meanwhile: a worker is born with it
        blocked, so one sent before it runs only_the_parent_may_terminate waits for it there
        (here it stays pending until the mask is restored)."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        try:
            super()._init_workers(index_list)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _worker_main(self, worker_id, buffer, status):
        """Jittor's worker loop (in a forked worker process), ended only by its parent."""
        only_the_parent_may_terminate()
        super()._worker_main(worker_id, buffer, status)
