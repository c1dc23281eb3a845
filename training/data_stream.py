"""The training data as a reproducible, resumable stream of batches (``ImageStream``).

The order of the images depends only on the run's seed and the data epoch (``epoch_order``), and
a stream rebuilt from a checkpoint's ``(epoch, position)`` continues with the very next batch.
Under MPI each process trains on its ``rank_share`` of every global batch, as Jittor's Dataset
shards it, and ``random_flip`` draws the flips of the global batch, so N processes see what one
would.
"""
import numpy as np

import jittor as jt

from dataset import MultiResolutionDataset


def derived_seed(*key):
    """A 31-bit seed from integers (run seed, iteration, ...), well mixed by SeedSequence."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0] % 2 ** 31)


EPOCH_ORDER_STREAM = 1  # keeps the data-order seeds apart from the per-iteration seeds


def epoch_order(seed, epoch, n_images):
    """Image order of data epoch ``epoch``: a permutation drawn from (seed, epoch) only."""
    return np.random.default_rng([seed, EPOCH_ORDER_STREAM, epoch]).permutation(n_images)


class IndexSampler:
    """A Jittor sampler yielding a fixed list of indices (Jittor batches and shards it)."""

    def __init__(self, indices):
        self.indices = [int(i) for i in indices]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class ImageStream:
    """Endless batches of one resolution in an order that a resumed run repeats exactly.

    Epoch ``e``'s order is ``epoch_order(seed, e, n)``; ``position`` counts the images of it
    already used, so a stream rebuilt from ``(epoch, position)`` continues with the very next
    batch. Each data-loader rebuild of the reference (a resolution change) starts a new epoch.
    Batches come as numpy arrays (batch, 3, H, W) in [-1, 1], not yet flipped: the caller flips
    them with the iteration's random generator, so worker processes do not change the result.
    """

    def __init__(self, root, resolution, batch_size, seed, epoch=0, position=0, workers=0):
        self.batch_size = batch_size
        self.seed = seed
        self.dataset = MultiResolutionDataset(
            root, resolution=resolution, flip=False, batch_size=batch_size, shuffle=False,
            drop_last=False, num_workers=workers, keep_numpy_array=True, unreadable_as_nan=True)
        self.n_images = self.dataset.num_images
        if position >= self.n_images:
            epoch, position = epoch + 1, 0
        self._start(epoch, position)

    def _start(self, epoch, position):
        self.epoch, self.position = epoch, position
        self.order = epoch_order(self.seed, epoch, self.n_images)
        self.dataset.set_attrs(sampler=IndexSampler(self.order[position:]))  # restarts workers
        self._batches = iter(self.dataset)

    def next(self):
        """``(batch, images)``: this process's batch and the images all processes used.

        An image that cannot be read raises UnreadableImage naming it, and the position stays
        before this batch (the dataset hands such an image on as NaN, from worker processes
        too, and it is read again here for the message)."""
        try:
            batch = next(self._batches)
        except StopIteration:  # end of the epoch, as the reference's loader: start a new one
            self._start(self.epoch + 1, 0)
            batch = next(self._batches)
        images = min(self.batch_size, self.n_images - self.position)
        batch = np.asarray(batch, dtype=np.float32)
        bad = np.flatnonzero(np.isnan(batch.reshape(len(batch), -1)).any(axis=1))
        if bad.size:
            indices = self.order[self.position:self.position + images]
            indices = indices[rank_share(images, self.batch_size)]
            raise self.dataset.unreadable(int(indices[bad[0]]))
        self.position += images
        return batch, images

    def state(self):
        return dict(epoch=self.epoch, position=self.position)

    def close(self):
        self.dataset.terminate()


def rank_share(images, batch_size, rank=None, world_size=None):
    """The slice of a global batch of ``images`` images that MPI process ``rank`` trains on,
    as Jittor's Dataset shards it (``jittor/dataset/dataset.py``): a full batch in equal
    contiguous parts, rank r taking [r b / N, (r + 1) b / N); a short last batch in parts of
    ceil(images / N), the last ones moved back inside it (an image or two is then repeated).
    The whole batch outside MPI."""
    rank = jt.rank if rank is None else rank
    world_size = jt.world_size if world_size is None else world_size
    if images == batch_size:
        share = batch_size // world_size
        return slice(rank * share, (rank + 1) * share)
    share = -(-images // world_size)
    stop = min(rank * share + share, images)
    return slice(stop - share, stop)
