"""grid.py reproduces torchvision's make_grid / save_image(normalize=True, range=(-1, 1))."""
import numpy as np
import pytest
from PIL import Image

import jittor as jt

from files.grid import make_grid, normalize, save_gif, save_image_grid, to_uint8_image


def constant_tiles(n, size, values=None):
    """n images of side ``size``; image k is filled with values[k] (default k / n)."""
    values = np.arange(n) / n if values is None else np.asarray(values)
    return np.ones((n, 3, size, size), dtype=np.float32) * values.reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("n, nrow, size, padding, height, width", [
    (25, 5, 128, 2, 5 * 130 + 2, 5 * 130 + 2),   # the reference's sample.png, 5 x 5 at 128 px
    (36, 6, 128, 2, 6 * 130 + 2, 6 * 130 + 2),   # a reference mixing grid: 6 x 6 tiles
    (30, 6, 16, 2, 5 * 18 + 2, 6 * 18 + 2),      # 5 full rows of 6
    (7, 3, 8, 0, 3 * 8, 3 * 8),                  # 3 rows, the last holding one image
    (3, 5, 8, 1, 8 + 2, 3 * 9 + 1),              # fewer images than nrow: one row of 3
    (1, 5, 16, 2, 16, 16),                       # a single image comes back unpadded
])
def test_grid_pixel_size_follows_torchvision_layout(n, nrow, size, padding, height, width):
    grid = make_grid(constant_tiles(n, size), nrow=nrow, padding=padding)
    assert grid.shape == (3, height, width)


def test_tiles_fill_rows_left_to_right_with_padding_between():
    size, padding, nrow = 4, 2, 3
    images = constant_tiles(5, size, values=[10, 20, 30, 40, 50])
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=-7)
    assert grid.shape == (3, 2 * (size + padding) + padding, 3 * (size + padding) + padding)
    covered = np.zeros(grid.shape[1:], dtype=bool)
    for k, value in enumerate([10, 20, 30, 40, 50]):
        top = padding + (k // nrow) * (size + padding)
        left = padding + (k % nrow) * (size + padding)
        assert np.all(grid[:, top:top + size, left:left + size] == value)
        covered[top:top + size, left:left + size] = True
    assert np.all(grid[:, ~covered] == -7)  # padding, and the empty sixth slot


def test_normalisation_maps_minus_one_to_black_and_one_to_white_like_save_image():
    values = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
    image = np.tile(np.array(values, dtype=np.float32), (3, 1, 1))  # (3, 1, 7): one row
    pixels = to_uint8_image(image)
    # clamp to [-1, 1], (x + 1) / 2, * 255 + 0.5, truncate: -0.5 -> 64.25 -> 64, 0 -> 128
    assert pixels.dtype == np.uint8
    assert pixels[0, :, 0].tolist() == [0, 0, 64, 128, 191, 255, 255]


def test_padding_stays_black_after_normalising_from_minus_one_one(tmp_path):
    images = np.zeros((2, 3, 4, 4), dtype=np.float32)  # mid grey in [-1, 1]
    pixels = save_image_grid(images, str(tmp_path / "g.png"), nrow=2)
    assert pixels[0, 0].tolist() == [0, 0, 0]          # padding: pad value 0 after normalising
    assert pixels[2, 2].tolist() == [128, 128, 128]    # first pixel of the first tile


def test_saved_png_reads_back_as_the_computed_grid_in_a_new_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.2, 1.2, size=(5, 3, 6, 6)).astype(np.float32)
    path = tmp_path / "new" / "folder" / "grid.png"
    written = save_image_grid(images, str(path), nrow=2)
    read_back = np.asarray(Image.open(path))
    assert read_back.shape == (3 * 8 + 2, 2 * 8 + 2, 3)
    np.testing.assert_array_equal(read_back, written)
    expected_first_tile = (np.clip((np.clip(images[0], -1, 1) + 1) / 2 * 255 + 0.5, 0, 255)
                           .astype(np.uint8).transpose(1, 2, 0))
    np.testing.assert_array_equal(read_back[2:8, 2:8], expected_first_tile)


@pytest.mark.parametrize("n, nrow, padding, pad_value, value_range", [
    (5, 2, 2, 0.0, (-1, 1)),     # the usual call, a last row with one tile
    (1, 3, 2, 0.0, (-1, 1)),     # a single image: unpadded
    (7, 3, 0, 0.3, (-1, 1)),     # no padding, grey padding value
    (4, 4, 3, 1.7, None),        # already normalised; a pad value beyond white clips to 255
    (6, 5, 1, -0.2, (0, 3)),     # another range; a pad value below black clips to 0
])
def test_saved_grid_equals_the_float_grid_pipeline(tmp_path, n, nrow, padding, pad_value,
                                                   value_range):
    """save_image_grid builds bytes a tile at a time; the pixels must be those of normalising
    the whole batch, tiling it as floats (make_grid) and rounding the grid (to_uint8_image)."""
    images = np.random.default_rng(n).uniform(-1.5, 3.5, size=(n, 3, 9, 7)).astype(np.float32)
    normalised = normalize(images, value_range) if value_range is not None else images
    expected = to_uint8_image(make_grid(normalised, nrow, padding, pad_value), value_range=None)
    path = tmp_path / "grid.png"
    written = save_image_grid(images, str(path), nrow, padding, value_range, pad_value)
    np.testing.assert_array_equal(written, expected)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)


def test_jittor_and_numpy_inputs_give_the_same_grid():
    images = np.random.default_rng(1).normal(size=(3, 3, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(make_grid(jt.array(images), nrow=2), make_grid(images, nrow=2))
    np.testing.assert_array_equal(normalize(jt.array(images)), normalize(images))


def test_single_channel_images_are_repeated_to_rgb():
    images = np.random.default_rng(2).uniform(size=(2, 1, 3, 3)).astype(np.float32)
    grid = make_grid(images, nrow=2, padding=1)
    assert grid.shape == (3, 5, 9)
    np.testing.assert_array_equal(grid[0], grid[2])
    np.testing.assert_array_equal(grid[1, 1:4, 1:4], images[0, 0])


def test_gif_holds_every_frame(tmp_path):
    frames = constant_tiles(3, 4, values=[-1.0, 0.0, 1.0])
    path = tmp_path / "anim.gif"
    save_gif(frames, str(path))
    gif = Image.open(path)
    assert gif.n_frames == 3
    grey_levels = []
    for k in range(3):
        gif.seek(k)
        grey_levels.append(np.asarray(gif.convert("RGB"))[0, 0].tolist())
    assert grey_levels == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]
