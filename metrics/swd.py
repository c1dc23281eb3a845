"""Multi-scale sliced Wasserstein distance (SWD) between two sets of images, with numpy only.

The GAN quality metric of Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation" (section 5 and appendix D), computed the way the official
implementation (tkarras/progressive_growing_of_gans, ``metrics/sliced_wasserstein.py``) does:

1. **Laplacian pyramid** of every image, from its size down to 16 px. ``pyramid_down`` filters
   with the 5x5 binomial kernel [1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] / 256 and keeps every second
   row and column; ``pyramid_up`` puts the pixels on the even rows and columns of a zero image of
   twice the size and filters with 4 x the kernel. Borders are mirrored without repeating the
   edge pixel (``d c b | a b c d | c b a``: scipy.ndimage's "mirror", OpenCV's default, numpy's
   ``np.pad(mode="reflect")``). Level k is G_k - pyramid_up(G_k+1), with G_0 the image and
   G_k+1 = pyramid_down(G_k); the last (16 px) level is the Gaussian G_k itself.
2. **Descriptors**: 128 neighbourhoods of 7 x 7 pixels x 3 channels per image per level, at
   centres drawn uniformly among those whose whole neighbourhood lies inside the level (no
   padding), independently for every image, level and set.
3. **Normalisation**: each set's descriptors of a level are normalised *on their own* (as the
   official code does, which calls its ``finalize_descriptors`` once for the reals and once for
   the fakes): subtract the per-channel mean and divide by the per-channel standard deviation
   (population, ddof 0), both taken over all of that set's descriptors and their 7 x 7 pixels.
   One consequence: a set differing from the other only by a per-channel gain and offset at a
   level (a global colour cast, a contrast change) scores as if it did not.
4. **SWD** at each level: random directions in the 147-dimensional descriptor space (Gaussian,
   normalised to unit length), both descriptor sets projected on each, the projections sorted,
   the mean absolute difference of the sorted projections averaged over descriptors and
   directions. The official code does this for 4 repeats of 128 directions (512 directions, the
   paper's "512 projections") and averages the repeats; with equal-sized sets that is the mean
   over all 512 directions, which is what ``sliced_wasserstein`` returns.
5. Reported x 1e3 per level (``SWD_SCALE``), with the average of the levels.

**Pixel convention.** Images are (N, 3, H, W) RGB arrays with values 0..255: the uint8 values a
PNG holds, the official code's convention (it feeds uint8 reals, and fakes converted with
round(127.5 x + 127.5) saturated to uint8). ``evaluate.py`` converts both the data set's images
and the generator's [-1, 1] outputs to these uint8 values before calling this module. Any real
dtype is accepted and computed in float32; H = W must be a power of two of at least 16.

**Random numbers.** Everything random (neighbourhood centres, directions) comes from ``seed``
through separate ``np.random.default_rng([seed, level, stream])`` streams, so the result is a
function of the images and the seed, and a level's value does not depend on the other levels. The
two sets must hold the same number of images (so their descriptor sets have equal sizes and the
sorted projections pair up one to one, as in the official code).

One difference from the official code: a channel whose descriptors are all equal (standard
deviation 0) is left at 0 instead of becoming NaN.
"""
import math
from collections import namedtuple

import numpy as np

NEIGHBOURHOOD_SIZE = 7            # descriptors are 7 x 7 pixel neighbourhoods ...
CHANNELS = 3                      # ... of the 3 colour channels: 147 numbers
DESCRIPTORS_PER_IMAGE = 128       # neighbourhoods per image per pyramid level
DIRECTIONS_PER_REPEAT = 128       # random projection directions drawn at once ...
DIRECTION_REPEATS = 4             # ... this many times: 512 directions per level
MIN_LEVEL_SIZE = 16               # the pyramid stops at 16 px
SWD_SCALE = 1e3                   # distances are reported x 1e3, as in the paper
PIXEL_MAX = 255                   # images hold 0..255 (uint8 values)
BINOMIAL_TAPS = np.array([1, 4, 6, 4, 1], dtype=np.float32) / 16   # outer product: the 5x5 / 256
UPSAMPLE_GAIN = 4                 # zero insertion keeps 1 pixel in 4; the filter makes it up
DEFAULT_SEED = 0
IMAGE_BATCH = 256                 # images per pyramid computation (bounds the memory used)
MAX_PROJECTION_FLOATS = 1 << 24   # projections sorted at once (64 MB of float32)

# Random streams under one seed: np.random.default_rng([seed, level, stream]).
DIRECTION_STREAM = 0
FIRST_SET_STREAM = 1              # set i (0: the reference) draws its centres from stream 1 + i

SWDResult = namedtuple("SWDResult", ["levels", "distances", "averages"])
SWDResult.__doc__ = """SWD x 1e3 of candidate sets against one reference set.

levels: the pyramid levels' sizes in px, largest first, e.g. [32, 16].
distances: float64 array (candidates, levels), SWD x 1e3 per candidate and level.
averages: float64 array (candidates,), the mean over the levels.
"""


# ----------------------------------------------------------------------------------------------
# Images and the Laplacian pyramid
# ----------------------------------------------------------------------------------------------

def level_sizes(size):
    """Sizes of the pyramid levels for images of side ``size``: size, size / 2, ..., 16."""
    if not isinstance(size, (int, np.integer)) or size < MIN_LEVEL_SIZE or size & (size - 1):
        raise ValueError(f"image size must be a power of two of at least {MIN_LEVEL_SIZE} px "
                         f"(the smallest pyramid level), got {size}")
    sizes = []
    while size >= MIN_LEVEL_SIZE:
        sizes.append(int(size))
        size //= 2
    return sizes


def check_images(images, name="images"):
    """``images`` as an (N, 3, S, S) numpy array of numbers, S a power of two >= 16 (ValueError
    otherwise); not converted, so uint8 sets stay small (the pyramid works in float32 batches)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != CHANNELS or images.shape[2] != images.shape[3]:
        raise ValueError(f"{name} must be square RGB images of shape (N, 3, S, S), got shape "
                         f"{images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name}: no images")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"{name} must hold numbers 0..{PIXEL_MAX}, got dtype {images.dtype}")
    level_sizes(images.shape[2])
    return images


def binomial_filter(images, gain=1.0):
    """Filter (N, C, H, W) images with the 5x5 binomial kernel x ``gain``, borders mirrored
    (``d c b | a b c d | c b a``). The kernel is separable: rows, then columns."""
    taps = BINOMIAL_TAPS * np.float32(math.sqrt(gain))
    height, width = images.shape[2], images.shape[3]
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="reflect")
    rows = sum(taps[k] * padded[:, :, k:k + height] for k in range(len(taps)))
    padded = np.pad(rows, ((0, 0), (0, 0), (0, 0), (2, 2)), mode="reflect")
    return sum(taps[k] * padded[:, :, :, k:k + width] for k in range(len(taps)))


def pyramid_down(images):
    """Blur with the binomial kernel, keep even rows and columns: (N, C, H, W) -> H/2 x W/2."""
    return binomial_filter(images)[:, :, ::2, ::2]


def pyramid_up(images):
    """Zero-insertion to twice the size, then the binomial kernel x 4: (N, C, H, W) -> 2H x 2W."""
    n, channels, height, width = images.shape
    spread = np.zeros((n, channels, 2 * height, 2 * width), dtype=images.dtype)
    spread[:, :, ::2, ::2] = images
    return binomial_filter(spread, gain=UPSAMPLE_GAIN)


def laplacian_pyramid(images, n_levels):
    """The ``n_levels`` levels of the Laplacian pyramid of (N, C, H, W) images, largest first:
    G_k - pyramid_up(G_k+1) for all but the last, which is the Gaussian level itself."""
    gaussians = [np.asarray(images, dtype=np.float32)]
    for _ in range(n_levels - 1):
        gaussians.append(pyramid_down(gaussians[-1]))
    laplacians = [gaussians[k] - pyramid_up(gaussians[k + 1]) for k in range(n_levels - 1)]
    return laplacians + gaussians[-1:]


def laplacian_level(images, level, n_levels):
    """Level ``level`` (0: the largest) of the ``n_levels``-level Laplacian pyramid, computing
    only the Gaussian levels it needs."""
    gaussian = np.asarray(images, dtype=np.float32)
    for _ in range(level):
        gaussian = pyramid_down(gaussian)
    if level == n_levels - 1:
        return gaussian
    return gaussian - pyramid_up(pyramid_down(gaussian))


# ----------------------------------------------------------------------------------------------
# Descriptors
# ----------------------------------------------------------------------------------------------

def neighbourhood_centres(rng, n_images, size, per_image=DESCRIPTORS_PER_IMAGE):
    """(n_images * per_image, 2) centres (row, column) of neighbourhoods that lie wholly inside
    an image of side ``size``: each coordinate uniform on 3 .. size - 4. Row k belongs to image
    k // per_image."""
    half = NEIGHBOURHOOD_SIZE // 2
    return rng.integers(half, size - half, size=(n_images * per_image, 2))


def extract_neighbourhoods(images, centres, per_image=DESCRIPTORS_PER_IMAGE):
    """The 7 x 7 x C neighbourhoods of (N, C, S, S) ``images`` at ``centres`` (N * per_image of
    them, from ``neighbourhood_centres``), as an (N * per_image, C, 7, 7) array."""
    half = NEIGHBOURHOOD_SIZE // 2
    offsets = np.arange(-half, half + 1)
    image = (np.arange(len(centres)) // per_image)[:, None, None, None]
    channel = np.arange(images.shape[1])[None, :, None, None]
    rows = (centres[:, 0, None] + offsets)[:, None, :, None]
    columns = (centres[:, 1, None] + offsets)[:, None, None, :]
    return images[image, channel, rows, columns]


def normalize_descriptors(descriptors):
    """(M, C, 7, 7) descriptors of one set -> (M, C * 49) float32, each channel minus its mean and
    divided by its standard deviation (ddof 0) over all M descriptors and their pixels. A channel
    with standard deviation 0 is left at 0 (the official code would give NaN)."""
    descriptors = np.asarray(descriptors, dtype=np.float32)
    mean = descriptors.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = descriptors.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std[std == 0] = 1
    normalized = (descriptors - mean.astype(np.float32)) / std.astype(np.float32)
    return normalized.reshape(len(descriptors), -1)


def level_descriptors(images, level, n_levels, rng, per_image=DESCRIPTORS_PER_IMAGE,
                      batch=IMAGE_BATCH):
    """Normalised descriptors (N * per_image, 147) of pyramid level ``level`` of ``images``,
    their centres drawn from ``rng``; the pyramid is computed ``batch`` images at a time."""
    size = images.shape[2] >> level
    centres = neighbourhood_centres(rng, len(images), size, per_image)
    parts = []
    for start in range(0, len(images), batch):
        pixels = np.asarray(images[start:start + batch], dtype=np.float32)
        part_centres = centres[start * per_image:(start + len(pixels)) * per_image]
        parts.append(extract_neighbourhoods(laplacian_level(pixels, level, n_levels),
                                            part_centres, per_image))
    return normalize_descriptors(np.concatenate(parts))


# ----------------------------------------------------------------------------------------------
# Sliced Wasserstein distance
# ----------------------------------------------------------------------------------------------

def random_directions(rng, dimension, count):
    """(dimension, count) float32 matrix of random unit vectors (normalised Gaussian columns)."""
    directions = rng.standard_normal((dimension, count))
    directions /= np.sqrt(np.sum(np.square(directions), axis=0, keepdims=True))
    return directions.astype(np.float32)


def sorted_projections(descriptors, directions):
    """(directions, M): the projections of the (M, D) descriptors on each (D,) column of
    ``directions``, each row sorted ascending."""
    projections = np.matmul(directions.T, descriptors.T)
    projections.sort(axis=1)
    return projections


def sum_abs_sorted_differences(reference, candidates, directions):
    """For each candidate, the sum over directions and ranks of |sorted projection of the
    reference - sorted projection of the candidate| (float64), done in chunks of directions."""
    sums = np.zeros(len(candidates))
    chunk = max(1, MAX_PROJECTION_FLOATS // max(1, len(reference)))
    for start in range(0, directions.shape[1], chunk):
        part = directions[:, start:start + chunk]
        reference_sorted = sorted_projections(reference, part)
        for i, candidate in enumerate(candidates):
            difference = np.abs(reference_sorted - sorted_projections(candidate, part))
            sums[i] += difference.sum(dtype=np.float64)
    return sums


def sliced_wasserstein_with_directions(a, b, directions):
    """Mean over the columns of ``directions`` (unit vectors) and over ranks of the absolute
    difference between the sorted projections of descriptor sets ``a`` and ``b`` (M, D)."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"descriptor sets must be (M, D) arrays of one shape, got {a.shape} "
                         f"and {b.shape}")
    total = sum_abs_sorted_differences(a, [b], np.asarray(directions, dtype=np.float32))[0]
    return total / (a.shape[0] * directions.shape[1])


def sliced_wasserstein(reference, candidates, rng, repeats=DIRECTION_REPEATS,
                       directions_per_repeat=DIRECTIONS_PER_REPEAT, progress=None):
    """SWD (not scaled) of each (M, D) candidate descriptor set to the (M, D) reference set, over
    ``repeats`` x ``directions_per_repeat`` random directions drawn from ``rng`` (the same
    directions for every candidate). Returns a float64 array (candidates,). ``progress``:
    optional tqdm-like object, ``update(1)`` after each repeat."""
    reference = np.asarray(reference, dtype=np.float32)
    for candidate in candidates:
        if candidate.shape != reference.shape:
            raise ValueError(f"descriptor sets must have one shape, got {reference.shape} and "
                             f"{candidate.shape}")
    sums = np.zeros(len(candidates))
    for _ in range(repeats):
        directions = random_directions(rng, reference.shape[1], directions_per_repeat)
        sums += sum_abs_sorted_differences(reference, candidates, directions)
        if progress is not None:
            progress.update(1)
    return sums / (reference.shape[0] * repeats * directions_per_repeat)


# ----------------------------------------------------------------------------------------------
# The metric
# ----------------------------------------------------------------------------------------------

def progress_steps(size, n_candidates, repeats=DIRECTION_REPEATS):
    """How many ``progress.update(1)`` calls ``multiscale_swd`` makes for images of side ``size``
    and this many candidate sets: per level, one per set (descriptors) and one per repeat of
    directions."""
    return len(level_sizes(size)) * (n_candidates + 1 + repeats)


def multiscale_swd(reference, candidates, seed=DEFAULT_SEED, per_image=DESCRIPTORS_PER_IMAGE,
                   repeats=DIRECTION_REPEATS, directions_per_repeat=DIRECTIONS_PER_REPEAT,
                   batch=IMAGE_BATCH, progress=None):
    """SWD x 1e3 of each candidate image set to the reference set, per pyramid level.

    Args:
        reference: (N, 3, S, S) images, values 0..255 (see the module docstring).
        candidates: list of image sets of the same shape as ``reference``.
        seed: non-negative integer; the same images and seed give the same result. The
            reference's descriptors, and the directions, are shared by all candidates.
        per_image: neighbourhoods per image per level (128).
        repeats, directions_per_repeat: 4 x 128 random directions per level.
        batch: images per pyramid computation (memory only; the result does not depend on it).
        progress: optional tqdm-like object; ``update(1)`` is called ``progress_steps`` times.

    Returns an ``SWDResult``.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    reference = check_images(reference, "reference")
    candidates = [check_images(c, f"candidate {i}") for i, c in enumerate(candidates)]
    for i, candidate in enumerate(candidates):
        if candidate.shape != reference.shape:
            raise ValueError(f"candidate {i} has shape {candidate.shape}, the reference "
                             f"{reference.shape}: the sets must hold as many images of one size")
    sizes = level_sizes(reference.shape[2])
    distances = np.zeros((len(candidates), len(sizes)))
    for level in range(len(sizes)):
        descriptors = []
        for index, images in enumerate([reference] + candidates):
            rng = np.random.default_rng([seed, level, FIRST_SET_STREAM + index])
            descriptors.append(level_descriptors(images, level, len(sizes), rng, per_image, batch))
            if progress is not None:
                progress.update(1)
        rng = np.random.default_rng([seed, level, DIRECTION_STREAM])
        distances[:, level] = SWD_SCALE * sliced_wasserstein(
            descriptors[0], descriptors[1:], rng, repeats, directions_per_repeat, progress)
        del descriptors
    return SWDResult(sizes, distances, distances.mean(axis=1))


def swd(a, b, seed=DEFAULT_SEED, **options):
    """SWD x 1e3 between two image sets: (list of per-level values, largest level first, their
    average). ``options`` are those of ``multiscale_swd``."""
    result = multiscale_swd(a, [b], seed=seed, **options)
    return [float(d) for d in result.distances[0]], float(result.averages[0])
