"""swd.py: the Laplacian pyramid, descriptors and sliced Wasserstein distance against direct
computations, and the metric's behaviour on synthetic data sets."""
import numpy as np
import pytest

from metrics import swd

KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
# Fewer descriptors and directions than the metric's defaults, where only orderings are tested.
FAST = dict(per_image=32, directions_per_repeat=32)


def random_discs(rng, n, size=32, n_discs=3):
    """(n, 3, size, size) uint8 images: a random background colour and ``n_discs`` hard-edged
    discs of random colour, centre and radius (3-9 px at 32 px), a data set with sharp edges."""
    yy, xx = np.mgrid[0:size, 0:size]
    scale = size / 32
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    for i in range(n):
        image = np.empty((3, size, size))
        image[:] = rng.uniform(0, 255, (3, 1, 1))
        for _ in range(n_discs):
            cy, cx = rng.uniform(0, size, 2)
            radius = rng.uniform(3, 9) * scale
            image[:, (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = rng.uniform(0, 255, (3, 1))
        images[i] = np.rint(image)
    return images


def mirror(i, n):
    """Index i of a length-n axis with borders mirrored without repeating the edge."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


def convolve_mirrored(image, kernel):
    """Direct 2-D convolution of one (H, W) image with a 5x5 kernel, borders mirrored."""
    height, width = image.shape
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            out[y, x] = sum(kernel[i, j]
                            * image[mirror(y + i - 2, height), mirror(x + j - 2, width)]
                            for i in range(5) for j in range(5))
    return out


def direct_down(image):
    return convolve_mirrored(image, KERNEL)[::2, ::2]


def direct_up(image):
    spread = np.zeros((2 * image.shape[0], 2 * image.shape[1]))
    spread[::2, ::2] = image
    return convolve_mirrored(spread, 4 * KERNEL)


def test_pyramid_down_and_up_match_a_direct_convolution_with_mirrored_borders():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    down, up = swd.pyramid_down(images), swd.pyramid_up(images)
    assert down.shape == (2, 3, 4, 4) and up.shape == (2, 3, 16, 16)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(down[n, c], direct_down(images[n, c]), rtol=1e-5, atol=1e-3)
            np.testing.assert_allclose(up[n, c], direct_up(images[n, c]), rtol=1e-5, atol=1e-3)


def test_laplacian_levels_are_image_minus_upsampled_smaller_and_the_last_is_gaussian():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (1, 3, 16, 16)).astype(np.uint8)
    pyramid = swd.laplacian_pyramid(images, 3)
    assert [level.shape[-1] for level in pyramid] == [16, 8, 4]
    for c in range(3):
        g0 = images[0, c].astype(np.float64)
        g1 = direct_down(g0)
        g2 = direct_down(g1)
        np.testing.assert_allclose(pyramid[0][0, c], g0 - direct_up(g1), atol=2e-3)
        np.testing.assert_allclose(pyramid[1][0, c], g1 - direct_up(g2), atol=2e-3)
        np.testing.assert_allclose(pyramid[2][0, c], g2, atol=2e-3)
    for level in range(3):  # computing one level alone gives the same numbers
        np.testing.assert_array_equal(swd.laplacian_level(images, level, 3), pyramid[level])


def test_pyramid_keeps_constant_images_constant_up_to_the_borders():
    images = np.full((1, 3, 16, 16), 77.0, dtype=np.float32)
    pyramid = swd.laplacian_pyramid(images, 2)
    np.testing.assert_allclose(pyramid[0], 0, atol=1e-4)
    np.testing.assert_allclose(pyramid[1], 77, atol=1e-4)


def test_pyramid_matches_scipy_mirror_convolution_as_the_official_code_uses():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (2, 3, 16, 16)).astype(np.float32)
    kernel = KERNEL[None, None].astype(np.float32)
    down = ndimage.convolve(images, kernel, mode="mirror")[:, :, ::2, ::2]
    spread = np.zeros_like(images)
    spread[:, :, ::2, ::2] = down
    up = ndimage.convolve(spread, kernel * 4, mode="mirror")
    pyramid = swd.laplacian_pyramid(images, 2)
    np.testing.assert_allclose(pyramid[1], down, atol=1e-3)
    np.testing.assert_allclose(pyramid[0], images - up, atol=1e-3)


def test_levels_run_from_the_image_size_down_to_16_px():
    assert swd.level_sizes(16) == [16]
    assert swd.level_sizes(32) == [32, 16]
    assert swd.level_sizes(128) == [128, 64, 32, 16]
    for bad in (8, 24, 0):
        with pytest.raises(ValueError, match="power of two of at least 16"):
            swd.level_sizes(bad)


def test_neighbourhoods_are_7x7_windows_lying_inside_the_level():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (3, 3, 16, 16)).astype(np.float32)
    centres = swd.neighbourhood_centres(np.random.default_rng(4), 3, 16, per_image=500)
    assert centres.shape == (1500, 2)
    assert centres.min() == 3 and centres.max() == 12  # every possible centre, none outside
    patches = swd.extract_neighbourhoods(images, centres, per_image=500)
    assert patches.shape == (1500, 3, 7, 7)
    for k in (0, 499, 500, 1234, 1499):
        y, x = centres[k]
        np.testing.assert_array_equal(patches[k], images[k // 500, :, y - 3:y + 4, x - 3:x + 4])


def test_descriptors_are_normalised_per_channel_over_the_whole_set():
    rng = np.random.default_rng(5)
    descriptors = rng.normal([10, -3, 200], [2, 0.5, 40], (300, 7, 7, 3)).transpose(0, 3, 1, 2)
    normalized = swd.normalize_descriptors(descriptors)
    assert normalized.shape == (300, 147) and normalized.dtype == np.float32
    per_channel = normalized.reshape(300, 3, 49)
    for c in range(3):
        values = descriptors[:, c].ravel()
        expected = (values - values.mean()) / values.std()
        np.testing.assert_allclose(per_channel[:, c].ravel(), expected, rtol=1e-4, atol=1e-5)
    constant = np.ones((10, 3, 7, 7))  # std 0: zeros, not NaN
    np.testing.assert_array_equal(swd.normalize_descriptors(constant), 0)


def test_sliced_wasserstein_matches_projecting_and_sorting_by_hand():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(6, 4)), rng.normal(1, 2, size=(6, 4))
    directions = swd.random_directions(rng, 4, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1, rtol=1e-6)
    gaps = []
    for d in directions.T:
        projected_a = sorted(float(np.dot(row, d)) for row in a)
        projected_b = sorted(float(np.dot(row, d)) for row in b)
        gaps += [abs(p - q) for p, q in zip(projected_a, projected_b)]
    expected = sum(gaps) / len(gaps)
    assert swd.sliced_wasserstein_with_directions(a, b, directions) == pytest.approx(expected,
                                                                                    rel=1e-5)
    # in one dimension: the mean gap between the sorted values
    one_d = swd.sliced_wasserstein_with_directions([[2.0], [0.0], [1.0]], [[3.0], [1.0], [2.0]],
                                                   np.ones((1, 1)))
    assert one_d == pytest.approx(1.0)


def test_sliced_wasserstein_averages_every_repeat_of_random_directions():
    rng = np.random.default_rng(7)
    reference, candidate = rng.normal(size=(50, 5)), rng.normal(0.5, 1, size=(50, 5))
    drawn = np.random.default_rng(8)
    by_hand = np.mean([swd.sliced_wasserstein_with_directions(reference, candidate,
                                                               swd.random_directions(drawn, 5, 3))
                       for _ in range(2)])
    got = swd.sliced_wasserstein(reference, [candidate], np.random.default_rng(8), repeats=2,
                                 directions_per_repeat=3)
    assert got.shape == (1,) and got[0] == pytest.approx(by_hand, rel=1e-6)


def test_two_halves_of_one_data_set_score_far_below_noise_and_a_blurred_copy_in_between():
    rng = np.random.default_rng(9)
    data = random_discs(rng, 400)
    first, second = data[:200], data[200:]
    blurred = np.rint(swd.binomial_filter(second.astype(np.float32))).astype(np.uint8)
    noise = rng.integers(0, 256, second.shape).astype(np.uint8)
    result = swd.multiscale_swd(first, [second, blurred, noise], seed=0, **FAST)
    halves, blur, uniform = result.distances
    assert result.levels == [32, 16]
    assert 10 < halves[0] < 50 and 30 < halves[1] < 70  # the floor of 200 images
    assert uniform[0] > 5 * halves[0] and uniform[1] > 3 * halves[1]
    assert result.averages[2] > 4 * result.averages[0]
    # blurring removes the edges' detail: the 32 px level sees it, the 16 px Gaussian hardly
    assert 1.5 * halves[0] < blur[0] < uniform[0] / 2
    assert result.averages[0] < result.averages[1] < result.averages[2]
    np.testing.assert_allclose(result.averages, result.distances.mean(axis=1))


def test_result_is_deterministic_with_a_seed_and_does_not_depend_on_the_batch():
    rng = np.random.default_rng(10)
    a, b, c = (random_discs(rng, 12, size=16) for _ in range(3))
    levels, average = swd.swd(a, b, seed=3)  # the metric's default settings
    assert len(levels) == 1 and average == levels[0] > 0
    assert swd.swd(a, b, seed=3) == (levels, average)
    assert swd.swd(a, b, seed=3, batch=5) == (levels, average)
    assert swd.swd(a, b, seed=4)[1] != average
    # the reference's descriptors and the directions are shared by all candidates
    both = swd.multiscale_swd(a, [b, c], seed=3)
    assert both.distances[0].tolist() == levels


def test_a_global_gain_and_offset_of_one_set_is_normalised_away():
    rng = np.random.default_rng(11)
    a, b = random_discs(rng, 20), random_discs(rng, 20)
    dimmer = b.astype(np.float32) * 0.5 + 40
    plain = swd.multiscale_swd(a, [b], seed=0, **FAST).distances
    np.testing.assert_allclose(swd.multiscale_swd(a, [dimmer], seed=0, **FAST).distances, plain,
                               rtol=1e-3)


def test_sets_of_different_sizes_or_shapes_are_rejected():
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match="as many images"):
        swd.multiscale_swd(images, [images[:3]])
    with pytest.raises(ValueError, match="at least 16"):
        swd.multiscale_swd(images[:, :, :8, :8], [images[:, :, :8, :8]])
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        swd.multiscale_swd(images[:, :1], [images[:, :1]])
    with pytest.raises(ValueError, match="seed"):
        swd.multiscale_swd(images, [images], seed=-1)


def test_progress_is_updated_once_per_set_and_per_repeat_of_directions_at_each_level():
    class Counter:
        count = 0

        def update(self, n):
            self.count += n

    rng = np.random.default_rng(12)
    a, b, c = (random_discs(rng, 3) for _ in range(3))
    counter = Counter()
    swd.multiscale_swd(a, [b, c], progress=counter, **FAST)
    assert counter.count == swd.progress_steps(32, 2) == 2 * (3 + swd.DIRECTION_REPEATS)
