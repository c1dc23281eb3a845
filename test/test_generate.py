"""generate.py: the reference's sample and style-mixing grids, and the flags beyond it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jittor as jt

from files.checkpoint import atomic_save, load_generator
from generate import (DEFAULT_SIZE, UsageError, build_parser, interpolation_frames, main,
                      parse_mixing_range, random_noise, style_mixing)
from latents.mean_style import average_style
from model import Discriminator, StyledGenerator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIM, N_MLP, WIDTH = 16, 2, 16
SIZE, STEP, PADDING = 16, 2, 2
FEW_LATENTS = "64"  # --n_mean_latents for tests; the reference's 10 x 1024 is the default


def numpy_state_dict(module):
    return {key: value.numpy() for key, value in module.state_dict().items()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny generator without noise ('quiet': its noise strengths are the initial 0, so equal
    styles give equal images), the same with noise ('noisy'), and a training checkpoint that
    reached 16 px."""
    folder = tmp_path_factory.mktemp("checkpoints")
    jt.set_global_seed(0)
    quiet = numpy_state_dict(StyledGenerator(CODE_DIM, N_MLP, WIDTH))
    noisy = {key: np.full_like(value, 0.3) if ".noise" in key else value
             for key, value in quiet.items()}
    paths = {"quiet": str(folder / "quiet.model"), "noisy": str(folder / "noisy.model"),
             "train": str(folder / "train.model")}
    atomic_save(quiet, paths["quiet"])
    atomic_save(noisy, paths["noisy"])
    atomic_save({"generator": noisy, "discriminator": numpy_state_dict(Discriminator(width=WIDTH)),
                 "g_running": noisy, "g_optimizer": {}, "d_optimizer": {}, "step": STEP,
                 "alpha": 1.0, "used_sample": 0, "iteration": 1,
                 "args": {"code_dim": CODE_DIM, "n_mlp": N_MLP, "width": WIDTH}}, paths["train"])
    return paths


def run(checkpoint, out, *flags):
    args = build_parser().parse_args([checkpoint, "--out", str(out), "--size", str(SIZE),
                                      "--n_mean_latents", FEW_LATENTS, *flags])
    return main(args)


def read(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def tile(pixels, row, col, size=SIZE, padding=PADDING):
    top, left = padding + row * (size + padding), padding + col * (size + padding)
    return pixels[top:top + size, left:left + size]


def test_defaults_are_the_reference_ones():
    args = build_parser().parse_args(["checkpoint/FFHQ_80000.model"])
    # --size left out: 128 px for the original's checkpoints (an NVIDIA model's own otherwise)
    assert (args.size, DEFAULT_SIZE, args.n_row, args.n_col) == (None, 128, 5, 5)
    assert (args.truncation_cutoff, args.noise, args.z) == (None, "random", None)
    assert (args.out, args.n_mixing, args.truncation) == ("style_mixing", 20, 0.7)
    assert (args.mixing_range, args.n_mean_latents) == ("coarse", 10 * 1024)
    assert (args.seed, args.interpolate, args.n_images) == (None, 0, 0)
    assert parse_mixing_range(args.mixing_range) == (0, 1)


def test_writes_the_sample_grid_and_mixing_grids_at_the_reference_pixel_sizes(checkpoints, tmp_path):
    written = run(checkpoints["quiet"], tmp_path, "--n_row", "2", "--n_col", "3", "--n_mixing", "2")
    assert sorted(os.listdir(tmp_path)) == ["sample.png", "sample_mixing_0.png", "sample_mixing_1.png"]
    assert len(written) == 3
    # sample.png: 2 rows x 3 columns of 16 px tiles with 2 px padding
    assert read(tmp_path / "sample.png").shape == (2 * 18 + 2, 3 * 18 + 2, 3)
    # a mixing grid: 1 + 2 rows (sources, then targets) x 1 + 3 columns
    assert read(tmp_path / "sample_mixing_1.png").shape == (3 * 18 + 2, 4 * 18 + 2, 3)


def test_mixing_grid_has_sources_on_the_first_row_and_targets_in_the_first_column(checkpoints,
                                                                                   tmp_path):
    n_row, n_col = 2, 3
    # Every layer (0-2 at 16 px) from the sources: each mixed image is its column's source.
    run(checkpoints["quiet"], tmp_path, "--n_row", str(n_row), "--n_col", str(n_col),
        "--n_mixing", "1", "--mixing_range", "0,2", "--seed", "1")
    pixels = read(tmp_path / "sample_mixing_0.png")
    assert np.all(tile(pixels, 0, 0) == 0)  # the empty tile is black
    assert np.all(pixels[:PADDING] == 0) and np.all(pixels[:, :PADDING] == 0)
    for col in range(1, n_col + 1):
        for row in range(1, n_row + 1):
            assert np.abs(tile(pixels, row, col) - tile(pixels, 0, col)).max() <= 1
    assert np.abs(tile(pixels, 0, 1) - tile(pixels, 0, 2)).max() > 10  # sources differ

    # No layer from the sources: each mixed image is its row's target.
    generator, _ = load_generator(checkpoints["quiet"])
    jt.set_global_seed(1)
    mean_style = average_style(generator, 64)
    tiles = style_mixing(generator, STEP, mean_style, n_col, n_row, mixing_range=(STEP + 1, 8))
    assert tiles.shape == ((n_row + 1) * (n_col + 1), 3, SIZE, SIZE)
    grid = tiles.reshape(n_row + 1, n_col + 1, 3, SIZE, SIZE)
    np.testing.assert_array_equal(grid[0, 0], -1)
    for row in range(1, n_row + 1):
        for col in range(1, n_col + 1):
            np.testing.assert_allclose(grid[row, col], grid[row, 0], atol=1e-4)
    # The reference's coarse mix (layers 0-1 from the source) differs from both parents.
    tiles = style_mixing(generator, STEP, mean_style, n_col, n_row, mixing_range=(0, 1))
    grid = tiles.reshape(n_row + 1, n_col + 1, 3, SIZE, SIZE)
    assert np.abs(grid[1, 1] - grid[0, 1]).max() > 0.05
    assert np.abs(grid[1, 1] - grid[1, 0]).max() > 0.05


def test_same_seed_gives_the_same_images_and_another_seed_others(checkpoints, tmp_path):
    flags = ("--n_row", "2", "--n_col", "2", "--n_mixing", "1", "--n_images", "1")
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        run(checkpoints["noisy"], tmp_path / name, "--seed", seed, *flags)
    for image in ("sample.png", "sample_mixing_0.png", os.path.join("images", "000000.png")):
        a, b, c = (read(tmp_path / name / image) for name in "abc")
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 10, image


def test_truncation_zero_makes_all_samples_identical(checkpoints, tmp_path):
    run(checkpoints["quiet"], tmp_path / "zero", "--n_mixing", "0", "--n_row", "2", "--n_col", "3",
        "--truncation", "0")
    run(checkpoints["quiet"], tmp_path / "default", "--n_mixing", "0", "--n_row", "2",
        "--n_col", "3")
    for folder, identical in (("zero", True), ("default", False)):
        pixels = read(tmp_path / folder / "sample.png")
        differences = [np.abs(tile(pixels, r, c) - tile(pixels, 0, 0)).max()
                       for r in range(2) for c in range(3) if (r, c) != (0, 0)]
        assert (max(differences) <= 1) == identical, (folder, differences)


def test_interpolation_end_frames_equal_the_end_point_samples(checkpoints):
    generator, _ = load_generator(checkpoints["noisy"])
    jt.set_global_seed(3)
    mean_style = average_style(generator, 64)
    z0, z1 = jt.randn(1, CODE_DIM), jt.randn(1, CODE_DIM)
    noise = random_noise(STEP)
    frames = interpolation_frames(generator, z0, z1, noise, STEP, mean_style, 0.7, n_frames=5,
                                  batch=2)
    assert frames.shape == (5, 3, SIZE, SIZE)
    with jt.no_grad():
        ends = [generator(z, noise=noise, step=STEP, alpha=1, mean_style=mean_style,
                          style_weight=0.7).numpy() for z in (z0, z1)]
    np.testing.assert_allclose(frames[0], ends[0][0], atol=1e-4)
    np.testing.assert_allclose(frames[-1], ends[1][0], atol=1e-4)
    assert np.abs(frames[2] - frames[0]).max() > 0.05 and np.abs(frames[2] - frames[4]).max() > 0.05


def test_interpolate_writes_a_strip_and_a_gif_of_n_frames(checkpoints, tmp_path):
    run(checkpoints["noisy"], tmp_path, "--n_mixing", "0", "--n_row", "1", "--n_col", "1",
        "--interpolate", "4", "--truncation", "1")
    assert read(tmp_path / "interpolation.png").shape == (SIZE + 4, 4 * 18 + 2, 3)
    gif = Image.open(tmp_path / "interpolation.gif")
    assert (gif.n_frames, gif.size) == (4, (SIZE, SIZE))


def test_n_images_writes_single_unpadded_images(checkpoints, tmp_path):
    run(checkpoints["quiet"], tmp_path, "--n_mixing", "0", "--n_row", "1", "--n_col", "1",
        "--n_images", "3")
    names = sorted(os.listdir(tmp_path / "images"))
    assert names == ["000000.png", "000001.png", "000002.png"]
    images = [read(tmp_path / "images" / name) for name in names]
    assert all(image.shape == (SIZE, SIZE, 3) for image in images)
    assert np.abs(images[0] - images[1]).max() > 10


def test_size_is_checked_against_what_a_training_checkpoint_reached(checkpoints, tmp_path):
    written = run(checkpoints["train"], tmp_path, "--n_mixing", "0", "--n_row", "1", "--n_col", "2")
    assert read(written[0]).shape == (SIZE + 4, 2 * 18 + 2, 3)
    with pytest.raises(UsageError, match="training reached 16 px"):
        main(build_parser().parse_args([checkpoints["train"], "--size", "32"]))
    with pytest.raises(UsageError, match="power of two"):
        main(build_parser().parse_args([checkpoints["quiet"], "--size", "100"]))


def test_mixing_range_names_and_bounds():
    assert [parse_mixing_range(name) for name in ("coarse", "middle", "fine", "1,3", "1-3", "2")] \
        == [(0, 1), (2, 3), (4, 8), (1, 3), (1, 3), (2, 2)]
    for bad in ("medium", "3,1", "0,9", "2,"):
        with pytest.raises(UsageError, match="--mixing_range"):
            parse_mixing_range(bad)
    with pytest.raises(UsageError, match="no layer at --size 16"):
        main(build_parser().parse_args(["unused.model", "--size", "16", "--mixing_range", "fine"]))


@pytest.mark.slow
def test_a_bad_checkpoint_fails_with_one_line_on_the_command_line(tmp_path):
    image = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(image)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "generate.py"), str(image)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"generate.py: error: {image}: not a checkpoint: a PNG image; expected a StyleGAN "
        f"checkpoint (a generator state dict or a training checkpoint, from jt.save or the "
        f"PyTorch original's torch.save)"]
    assert not (tmp_path / "style_mixing").exists()


# ------------------------------------------------------------------------------------------------
# --w (projector.py's latents) and --direction (directions.py's files)
# ------------------------------------------------------------------------------------------------

def write_latents(path, n=3, layers=None, seed=0):
    """A latents file for the tests' generator: W (layers None) or W+, with noise to 16 px."""
    from files.latents import save_latents
    from model import noise_shapes
    rng = np.random.default_rng(seed)
    shape = (n, CODE_DIM) if layers is None else (n, layers, CODE_DIM)
    noise = [rng.standard_normal(s).astype(np.float32) for s in noise_shapes(STEP, n)]
    save_latents(path, rng.standard_normal(shape).astype(np.float32), noise,
                 [f"img{i}" for i in range(n)])


def test_w_file_writes_projections_their_mixing_and_interpolation(checkpoints, tmp_path):
    from files.latents import load_latents
    from latents.synthesis import mix, render
    latents_path = str(tmp_path / "latents.npz")
    write_latents(latents_path, n=3, layers=STEP + 1)
    out = tmp_path / "out"
    written = run(checkpoints["noisy"], out, "--w", latents_path, "--interpolate", "4",
                  "--mixing_range", "0,0")
    assert sorted(os.listdir(out)) == ["projected.png", "projected_interpolation",
                                       "projected_interpolation.gif",
                                       "projected_interpolation.png", "projected_mixing.png"]
    assert len(os.listdir(out / "projected_interpolation")) == 2 * 3 + 1  # shared ends once
    assert len(written) == 4 + 7
    generator, _ = load_generator(checkpoints["noisy"])
    latents = load_latents(latents_path, CODE_DIM)
    noise = latents.noise
    projected = render(generator, latents.w, noise, STEP)
    to_bytes = lambda images: np.clip(np.asarray(images) * 127.5 + 128, 0, 255).astype(int)
    strip = read(out / "projected.png")
    assert np.abs(tile(strip, 0, 2) - to_bytes(projected[2].transpose(1, 2, 0))).max() <= 1
    # mixing grid: row 1 + t, column 1 + s takes layer 0 (and its noise) from s, the rest from t
    grid = read(out / "projected_mixing.png")
    t, s = 2, 0
    expected = render(generator, mix(latents.w[t], latents.w[s], (0, 0))[None],
                      [maps[[s if i == 0 else t]] for i, maps in enumerate(noise)], STEP)
    assert np.abs(tile(grid, 1 + t, 1 + s) - to_bytes(expected[0].transpose(1, 2, 0))).max() <= 1
    assert np.abs(tile(grid, 1 + t, 0) - tile(strip, 0, t)).max() <= 1
    frames = sorted(os.listdir(out / "projected_interpolation"))
    first = read(out / "projected_interpolation" / frames[0])
    assert np.abs(first - tile(strip, 0, 0)).max() <= 1


def test_direction_grid_has_one_row_per_image_and_strength_zero_is_the_image(checkpoints,
                                                                            tmp_path):
    from files.latents import save_directions
    latents_path, directions_path = str(tmp_path / "l.npz"), str(tmp_path / "d.npz")
    write_latents(latents_path, n=2)
    vectors = np.eye(CODE_DIM, dtype=np.float32)[:2]
    save_directions(directions_path, vectors, (1, 1), [2.0, 1.0])
    out = tmp_path / "out"
    run(checkpoints["quiet"], out, "--w", latents_path, "--direction", f"{directions_path}:1",
        "--strength=-4:4:3")
    grid = read(out / "direction_1.png")
    assert grid.shape == (2 * 18 + 2, 3 * 18 + 2, 3)
    strip = read(out / "projected.png")
    for row in range(2):
        assert np.abs(tile(grid, row, 1) - tile(strip, 0, row)).max() <= 1
        assert np.abs(tile(grid, row, 0) - tile(grid, row, 2)).mean() > 1
    # from random samples: --n_row rows, beside the usual outputs
    run(checkpoints["quiet"], tmp_path / "seeds", "--direction", f"{directions_path}:0",
        "--n_mixing", "0", "--n_row", "3", "--seed", "0")
    assert read(tmp_path / "seeds" / "direction_0.png").shape == (3 * 18 + 2, 7 * 18 + 2, 3)
    assert (tmp_path / "seeds" / "sample.png").exists()


def test_bad_latent_and_direction_inputs_are_usage_errors(checkpoints, tmp_path):
    from files.latents import save_directions
    latents_path, directions_path = str(tmp_path / "l.npz"), str(tmp_path / "d.npz")
    write_latents(latents_path, n=2, layers=STEP)  # w+ for 8 px: too few layers for 16 px
    save_directions(directions_path, np.eye(CODE_DIM)[:2], (0, 1), [2.0, 1.0])
    other_model = str(tmp_path / "other.npz")
    np.savez(other_model, w=np.zeros((1, 4), np.float32), names=np.array(["a"]))
    cases = [(["--w", latents_path], "needs 3"),
             (["--w", other_model], "another model"),
             (["--w", str(tmp_path / "none.npz")], "no such file"),
             (["--direction", f"{directions_path}:2"], "holds directions 0-1, not 2"),
             (["--direction", directions_path], "FILE:K"),
             (["--direction", f"{latents_path}:0"], "a latents file"),
             (["--direction", f"{directions_path}:0", "--strength", "1:2"], "A:B:N")]
    for flags, message in cases:
        with pytest.raises(UsageError, match=message):
            run(checkpoints["quiet"], tmp_path / "out", *flags)
    assert not (tmp_path / "out").exists()


def test_a_negative_strength_range_may_follow_the_flag_as_the_issue_writes_it():
    from generate import joined_strength
    assert joined_strength(["m", "--strength", "-3:3:7", "--seed", "1"]) == [
        "m", "--strength=-3:3:7", "--seed", "1"]
    args = build_parser().parse_args(joined_strength(["m", "--strength", "-1:2:4"]))
    assert args.strength == "-1:2:4"
