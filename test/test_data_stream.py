"""The training data stream (training.data_stream): an image order drawn from (seed, epoch) only,
each MPI process's share of a global batch, a stream that resumes with the very next batch, and
the seeds derived from the run's seed."""
import os
import re

import numpy as np
import pytest

from helpers import flat_image_root
from training.data_stream import ImageStream, derived_seed, epoch_order, rank_share

N_IMAGES = 10                 # with batch 4: batches of 4, 4 and a short one of 2 per epoch
BATCH = 4
SIZE = 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """root/8 with 10 flat images of random colours (colour i in imgNN.png, NN = i)."""
    return flat_image_root(tmp_path_factory.mktemp("stream_data"), (SIZE,), N_IMAGES)


def colours():
    """The colours flat_image_root paints, in [-1, 1] as the stream hands them out."""
    return np.random.default_rng(0).integers(0, 256, (N_IMAGES, 3)) / 127.5 - 1


def image_numbers(batch):
    """Which image (its NN) each image of a batch of flat colours is."""
    table = colours()
    means = batch.mean(axis=(2, 3))
    return [int(np.argmin(np.abs(table - m).sum(axis=1))) for m in means]


def test_epoch_order_is_a_permutation_drawn_from_seed_and_epoch_only():
    first = epoch_order(7, 3, 50)
    assert sorted(first) == list(range(50))
    np.random.seed(123)                               # the global generator plays no part
    np.random.random(5)
    np.testing.assert_array_equal(epoch_order(7, 3, 50), first)
    assert not np.array_equal(epoch_order(7, 4, 50), first)      # another epoch
    assert not np.array_equal(epoch_order(8, 3, 50), first)      # another run
    assert len({tuple(epoch_order(7, e, 50)) for e in range(20)}) == 20


def test_rank_share_cuts_a_batch_as_jittor_dataset_does():
    assert [rank_share(8, 8, r, 2) for r in range(2)] == [slice(0, 4), slice(4, 8)]
    assert [rank_share(12, 12, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 8),
                                                              slice(8, 12)]
    # a short last batch: parts of ceil(images / N), the last moved back inside it
    assert [rank_share(4, 6, r, 2) for r in range(2)] == [slice(0, 2), slice(2, 4)]
    assert [rank_share(3, 8, r, 2) for r in range(2)] == [slice(0, 2), slice(1, 3)]
    assert rank_share(5, 8) == slice(0, 5)  # one process: the whole batch


@pytest.mark.parametrize("images, batch, world", [(8, 8, 2), (12, 12, 4), (7, 8, 2), (5, 12, 4),
                                                  (1, 4, 2)])
def test_rank_shares_are_equal_and_cover_the_batch(images, batch, world):
    shares = [range(images)[rank_share(images, batch, r, world)] for r in range(world)]
    assert len({len(s) for s in shares}) == 1                    # every rank the same count
    assert set().union(*map(set, shares)) == set(range(images))  # no image left out
    if images == batch:                                          # a full batch: disjoint parts
        assert sum(len(s) for s in shares) == images


def test_stream_hands_out_the_epoch_order_and_a_rebuilt_one_continues_with_the_next_batch(
        data_root):
    stream = ImageStream(data_root, SIZE, BATCH, seed=4)
    numbers = [int(re.search(r"img(\d+)", os.fspath(item)).group(1))
               for item in stream.dataset.items]
    try:
        seen, states = [], []
        for _ in range(6):            # two epochs: 4 + 4 + 2 images each
            states.append(stream.state())
            batch, images = stream.next()
            assert batch.shape == (images, 3, SIZE, SIZE) and batch.dtype == np.float32
            seen.append(image_numbers(batch))
    finally:
        stream.close()
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]
    # an epoch's end is left as it is until the next batch starts the next epoch
    assert states[3] == dict(epoch=0, position=10) and states[5] == dict(epoch=1, position=8)
    for epoch in (0, 1):
        order = [numbers[i] for i in epoch_order(4, epoch, N_IMAGES)]
        assert sum(seen[3 * epoch:3 * epoch + 3], []) == order
    for state, expected in zip(states, seen):
        rebuilt = ImageStream(data_root, SIZE, BATCH, seed=4, **state)
        try:
            assert image_numbers(rebuilt.next()[0]) == expected
        finally:
            rebuilt.close()
    # a position at the end of an epoch is the start of the next one
    ended = ImageStream(data_root, SIZE, BATCH, seed=4, epoch=0, position=N_IMAGES)
    try:
        assert ended.state() == dict(epoch=1, position=0)
        assert image_numbers(ended.next()[0]) == seen[3]
    finally:
        ended.close()


def test_derived_seed_is_a_31_bit_function_of_the_whole_key():
    seeds = [derived_seed(run, iteration) for run in range(20) for iteration in range(50)]
    assert all(isinstance(s, int) and 0 <= s < 2 ** 31 for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert derived_seed(3, 9) == derived_seed(np.int64(3), 9.0) == derived_seed(3, 9)
    assert derived_seed(3, 9) != derived_seed(9, 3)
