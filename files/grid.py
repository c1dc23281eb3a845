"""Image grids and image files: the one place that turns generator outputs into pictures.

Reproduces what the reference does with ``torchvision.utils.save_image(images, path, nrow=...,
normalize=True, range=(-1, 1))``, with numpy and PIL only:

1. normalise: clamp to ``value_range`` = (low, high), then (x - low) / max(high - low, 1e-5);
2. ``make_grid``: tiles of H x W with ``padding`` pixels of ``pad_value`` around and between
   them, ``nrow`` tiles per row, filled row by row; a single image is returned as it is;
3. to 8 bits: x * 255 + 0.5, clipped to [0, 255], truncated to uint8 (round to nearest).

Normalisation comes before the padding, so the padding is ``pad_value`` in [0, 1] (0: black)
whatever the images' range. Images are numpy arrays or ``jt.Var`` of shape (N, C, H, W), C = 1
(repeated to RGB, as torchvision does) or 3, or a single (C, H, W) image.
"""
import math
import os
import zlib

import numpy as np
from PIL import Image

from files.atomic import atomic_write

DEFAULT_PADDING = 2              # torchvision's default
DEFAULT_PAD_VALUE = 0.0
DEFAULT_VALUE_RANGE = (-1, 1)    # the generator's output range
MIN_RANGE_WIDTH = 1e-5           # torchvision's guard against a zero-width range
GIF_FRAME_MS = 100
# zlib's run-length strategy for the PNGs written here and by resize.py: 2-4x faster to write
# than Pillow's default (level 6, default strategy), the same pixels; files from -8 %
# (photographic detail, which defeats LZ77's longer matches) to +15 % (smooth images) in size
# (docs/benchmark.md, "Writing image grids").
PNG_OPTIONS = {"compress_type": zlib.Z_RLE}


def as_batch(images):
    """(N, 3, H, W) float32 numpy array from numpy / jt.Var images, as torchvision reads them."""
    if hasattr(images, "numpy") and not isinstance(images, np.ndarray):
        images = images.numpy()  # jt.Var
    if isinstance(images, (list, tuple)):
        images = np.stack([as_batch(image)[0] for image in images])
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 3, H, W) or (N, 1, H, W), got {images.shape}")
    if images.shape[1] == 1:
        images = np.concatenate([images] * 3, axis=1)
    return images


def normalize(images, value_range=DEFAULT_VALUE_RANGE):
    """Map ``value_range`` to [0, 1], clamping outside values (torchvision's normalize=True)."""
    low, high = (float(v) for v in value_range)
    images = np.clip(as_batch(images), np.float32(low), np.float32(high))
    return (images - np.float32(low)) / np.float32(max(high - low, MIN_RANGE_WIDTH))


def grid_shape(n_images, nrow, height, width, padding=DEFAULT_PADDING):
    """(rows, columns, grid height, grid width) in pixels of a grid, as ``make_grid`` lays it out."""
    if n_images == 1:
        return 1, 1, height, width
    columns = min(nrow, n_images)
    rows = int(math.ceil(n_images / columns))
    return rows, columns, rows * (height + padding) + padding, columns * (width + padding) + padding


def tile_corners(n_images, nrow, height, width, padding=DEFAULT_PADDING):
    """(grid height, grid width, [(top, left) of each tile]) in torchvision's layout.

    Tile k sits at row k // columns, column k % columns (columns = min(nrow, n)), its top-left
    pixel at (padding + row * (H + padding), padding + column * (W + padding)); a single image is
    the whole grid, unpadded.
    """
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")
    if n_images == 0:
        raise ValueError("no images to tile")
    _, columns, grid_height, grid_width = grid_shape(n_images, nrow, height, width, padding)
    if n_images == 1:
        return grid_height, grid_width, [(0, 0)]
    return grid_height, grid_width, [(padding + (k // columns) * (height + padding),
                                      padding + (k % columns) * (width + padding))
                                     for k in range(n_images)]


def make_grid(images, nrow, padding=DEFAULT_PADDING, pad_value=DEFAULT_PAD_VALUE):
    """Tile images into one (3, H, W) float array exactly like ``torchvision.utils.make_grid``
    (layout: ``tile_corners``). Values are not normalised here; use ``normalize`` first to match
    save_image.
    """
    images = as_batch(images)
    n, channels, height, width = images.shape
    grid_height, grid_width, corners = tile_corners(n, nrow, height, width, padding)
    if n == 1:
        return images[0].copy()
    grid = np.full((channels, grid_height, grid_width), pad_value, dtype=np.float32)
    for image, (top, left) in zip(images, corners):
        grid[:, top:top + height, left:left + width] = image
    return grid


def unit_to_bytes(image):
    """(C, H, W) float image with 0..1 for black..white -> H x W x C uint8: x * 255 + 0.5,
    clipped to [0, 255], truncated (torchvision's save_image rounding)."""
    scaled = np.multiply(image, np.float32(255), dtype=np.float32)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8).transpose(1, 2, 0)


def to_uint8_image(grid, value_range=DEFAULT_VALUE_RANGE):
    """H x W x 3 uint8 array of a (3, H, W) image, as ``save_image(normalize=True, range=...)``.

    With ``value_range=None`` the image is taken as already normalised to [0, 1] (what
    ``save_image_grid`` passes, having normalised before padding).
    """
    grid = np.asarray(grid.numpy() if hasattr(grid, "numpy") and not isinstance(grid, np.ndarray)
                      else grid, dtype=np.float32)
    if grid.ndim != 3:
        raise ValueError(f"expected one (C, H, W) image, got shape {grid.shape}")
    if value_range is not None:
        grid = normalize(grid, value_range)[0]
    return unit_to_bytes(grid)


def save_image_grid(images, path, nrow, padding=DEFAULT_PADDING, value_range=DEFAULT_VALUE_RANGE,
                    pad_value=DEFAULT_PAD_VALUE):
    """Write ``images`` as one grid image (PNG by the name), like the reference's save_image call.

    Returns the H x W x 3 uint8 array written: the pixels of
    ``to_uint8_image(make_grid(normalize(images, value_range), ...), value_range=None)``,
    computed a tile at a time straight into bytes (a 6 x 6 grid of 1024 px images is 450 MB
    for each float32 pass over the whole grid). PNGs are compressed with zlib's RLE strategy (``PNG_OPTIONS``).
    Creates the parent folder. The file is written atomically (``atomic.atomic_write``); an
    OSError is raised as a one-line ``WriteError``.
    """
    images = as_batch(images)
    n, channels, height, width = images.shape
    grid_height, grid_width, corners = tile_corners(n, nrow, height, width, padding)
    pixels = np.empty((grid_height, grid_width, channels), dtype=np.uint8)
    pixels[...] = unit_to_bytes(np.full((channels, 1, 1), pad_value, dtype=np.float32))
    for image, (top, left) in zip(images, corners):
        if value_range is not None:
            image = normalize(image, value_range)[0]
        pixels[top:top + height, left:left + width] = unit_to_bytes(image)
    suffix = os.path.splitext(path)[1]
    with atomic_write(path, suffix=suffix) as temporary:
        Image.fromarray(pixels).save(temporary, **(PNG_OPTIONS if suffix.lower() == ".png" else {}))
    return pixels


def official_uint8(images):
    """(N, H, W, 3) uint8 of (N, 3, H, W) images in [-1, 1], as NVIDIA's
    ``tflib.convert_images_to_uint8``: x * 127.5 + 128 in float32, saturated to [0, 255] and
    truncated."""
    images = np.asarray(images, dtype=np.float32) * np.float32(127.5) + np.float32(128)
    return np.clip(images, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def save_png(pixels, path):
    """Write one H x W x 3 uint8 image as a PNG, atomically (``PNG_OPTIONS``)."""
    with atomic_write(path, suffix=".png") as temporary:
        Image.fromarray(pixels).save(temporary, **PNG_OPTIONS)


def save_gif(frames, path, value_range=DEFAULT_VALUE_RANGE, frame_ms=GIF_FRAME_MS):
    """Write images (N, 3, H, W) as an animated GIF that loops forever; returns the uint8 frames."""
    frames = normalize(frames, value_range) if value_range is not None else as_batch(frames)
    pixels = [to_uint8_image(frame, value_range=None) for frame in frames]
    first, *rest = [Image.fromarray(p) for p in pixels]
    with atomic_write(path, suffix=".gif") as temporary:
        first.save(temporary, format="GIF", save_all=True, append_images=rest, duration=frame_ms,
                   loop=0)
    return pixels
