"""The training images: a Jittor Dataset over ``root/<resolution>/`` (folders written by resize.py),
an LMDB of the PyTorch original (``data.lmdb``) or a dataset_tool.py zip (``data.zip``); the
sources themselves are in ``files/datasets.py``.

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
import signal
import sys
import threading

import numpy as np

import jittor as jt
from jittor.dataset import Dataset

from files.data_errors import IMAGE_ERRORS, DatasetError, UnreadableImage  # noqa: F401 (shared)
from files.datasets import (largest_image_folder, open_source, resize_command,  # noqa: F401
                            resolution_folder)
from files.images import prepare_image

FLIP_PROBABILITY = 0.5  # RandomHorizontalFlip's default
PIXEL_MAX = 255.0  # ToTensor: uint8 -> [0, 1]
NORMALIZE_MEAN = 0.5  # Normalize((0.5,)*3, (0.5,)*3): [0, 1] -> [-1, 1]
NORMALIZE_STD = 0.5


def random_flip(batch, rng=np.random, share=None, total=None):
    """Mirror each image left-right with probability 0.5 (RandomHorizontalFlip).

    Under MPI ``batch`` is this process's ``share`` (a slice) of a global batch of ``total``
    images: the decisions are drawn for the global batch and sliced, as one process flips it."""
    flip = rng.random_sample(len(batch) if total is None else total) < FLIP_PROBABILITY
    if share is not None:
        flip = flip[share]
    batch = batch.copy()
    batch[flip] = batch[flip][..., ::-1]
    return batch


def check_resolutions(root, sizes):
    """Raise one DatasetError naming every size in ``sizes`` that ``root`` lacks, with the
    resize.py command that makes them: for folders, every ``root/<size>`` that is missing or
    holds no images; for an LMDB, every size without all its keys; for a zip, every size other
    than its own without its folder beside it. Also refuses (DatasetError) an LMDB or zip that is
    hostile, unfinished or holds something other than images, and prints its notes (labels
    that training ignores) on stderr, from MPI rank 0 only."""
    source = open_source(root)
    source.check(sizes)
    if jt.rank == 0:
        for note in source.notes:
            print(f"{os.path.basename(sys.argv[0]) or 'dataset.py'}: note: {note}",
                  file=sys.stderr, flush=True)


PR_SET_PDEATHSIG = 1  # Linux prctl: a signal for this process when its parent ends


def only_the_parent_may_terminate():
    """In a data-loading worker: end on SIGTERM only when the parent (the training process)
    sends it, as Jittor's ``Dataset.terminate`` and multiprocessing's exit do; ignore a SIGTERM
    from anyone else, and die with the parent.

    A SIGTERM to the whole process group (``timeout``, SLURM's scancel) reaches the workers too.
    A worker that died of it while holding the loader's shared lock, or after taking a batch
    number and before handing the batch over, left the training process waiting for that batch
    forever, before it could save and exit 143. The training process
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
            ``data/8``, ``data/16``, ...), as resize.py writes them; or an LMDB of the PyTorch
            original's prepare_data.py (or resize.py --format lmdb); or a dataset_tool.py zip
            (``files/datasets.py``).
        resolution: side of the images to read now (default 8, the reference's first phase).
        flip: mirror each image left-right with probability 0.5 (default True).
        **attrs: Jittor Dataset attributes passed to ``set_attrs``: ``batch_size``,
            ``shuffle``, ``drop_last``, ``num_workers``, ``buffer_size``, ``endless``, ...

    Images are read from disk when asked for, not kept in memory: the Jittor reference loads
    every image at construction, which a 70k-image FFHQ would not fit; the PyTorch original
    reads each one on demand (from LMDB), as here. An LMDB or zip is opened anew in each worker
    process, read-only.

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
        self.items = []
        unknown = sorted(k for k in attrs if not hasattr(self, k))
        if unknown:
            raise TypeError(f"MultiResolutionDataset got unknown options: {', '.join(unknown)}")
        self.source = open_source(root)
        self.set_resolution(resolution)
        if attrs:
            self.set_attrs(**attrs)

    def set_resolution(self, resolution):
        """Read size ``resolution`` from now on (stops Jittor's workers; the next iteration
        starts fresh ones). Raises DatasetError when the source lacks it."""
        self.source.check([resolution])
        self.resolution = resolution
        self.items = self.source.items(resolution)
        self.set_attrs(total_len=len(self.items))
        return self

    @property
    def num_images(self):
        return len(self.items)

    def read(self, index):
        """Image ``index`` as a float32 (H, W, 3) array, 0..255; UnreadableImage if it cannot be
        read."""
        item = self.items[index]
        try:
            img = self.source.open_image(self.resolution, item)
            # resize.py and the LMDB and zip writers store RGB squares of the right size, which
            # pass through unchanged; anything else (e.g. the user's own top folder, a
            # grayscale zip) is made so the same way.
            return np.asarray(prepare_image(img, self.resolution), dtype=np.float32)
        except IMAGE_ERRORS as err:
            name = self.source.describe(self.resolution, item)
            raise UnreadableImage(name, f"cannot read {name} ({type(err).__name__}: {err}); "
                                        f"{self.source.repair}") from None

    def unreadable(self, index):
        """The UnreadableImage of image ``index`` (read again, in this process, for its
        message), e.g. after it came back as NaN from a worker."""
        try:
            self.read(index)
        except UnreadableImage as error:
            return error
        name = self.source.describe(self.resolution, self.items[index])
        return UnreadableImage(name, f"cannot read {name} (it failed in a data-loading worker "
                                     f"and reads now: it changed meanwhile); check it")

    def __getitem__(self, index):
        try:
            pixels = self.read(index)
        except UnreadableImage:
            if not self.unreadable_as_nan:
                raise
            return np.full((3, self.resolution, self.resolution), np.nan, np.float32)
        pixels = pixels.transpose(2, 0, 1) / PIXEL_MAX
        if self.flip:
            pixels = random_flip(pixels[None])[0]
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
