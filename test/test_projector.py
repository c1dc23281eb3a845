"""latents/projection.py and projector.py: fitting w / w+ and noise to images."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jittor as jt

from runtime.cli import UsageError
from files.checkpoint import atomic_save
from files.latents import load_latents
from latents.projection import (Schedule, noise_penalty, normalized_noise, project, psnr,
                                pixel_distance)
from model import Discriminator, StyledGenerator
from helpers import smooth_targets
from projector import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIM, N_MLP, WIDTH = 8, 2, 8


@pytest.fixture(scope="module")
def networks():
    jt.set_global_seed(0)
    generator = StyledGenerator(CODE_DIM, N_MLP, WIDTH)
    discriminator = Discriminator(from_rgb_activate=True, width=WIDTH)
    generator.eval()
    discriminator.eval()
    return generator, discriminator


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, networks):
    folder = tmp_path_factory.mktemp("projector")
    generator, discriminator = networks
    g_state = {k: v.numpy() for k, v in generator.state_dict().items()}
    paths = {"state": str(folder / "g.model"), "train": str(folder / "train.model")}
    atomic_save(g_state, paths["state"])
    atomic_save({"generator": g_state, "g_running": g_state, "g_optimizer": {},
                 "discriminator": {k: v.numpy() for k, v in discriminator.state_dict().items()},
                 "d_optimizer": {}, "step": 1, "alpha": 1.0, "used_sample": 0, "iteration": 1,
                 "args": {"code_dim": CODE_DIM, "n_mlp": N_MLP, "width": WIDTH}}, paths["train"])
    for i, colour in enumerate([(250, 30, 30), (20, 200, 90)]):
        Image.new("RGB", (24, 16), colour).save(folder / f"img{i}.png")
    paths["images"] = [str(folder / f"img{i}.png") for i in range(2)]
    return paths


def test_schedule_is_nvlabs():
    schedule = Schedule()
    assert (schedule.steps, schedule.initial_lr, schedule.noise_regularization) == (1000, 0.1, 1e5)
    assert schedule.learning_rate(0) == 0
    assert schedule.learning_rate(0.025) == pytest.approx(0.05)     # half way up the ramp
    assert schedule.learning_rate(0.5) == pytest.approx(0.1)
    assert schedule.learning_rate(0.875) == pytest.approx(0.05)     # half way down the cosine
    assert schedule.w_noise_scale(0, 2.0) == pytest.approx(0.1)
    assert schedule.w_noise_scale(0.375, 2.0) == pytest.approx(0.025)
    assert schedule.w_noise_scale(0.75, 2.0) == 0 and schedule.w_noise_scale(0.9, 2.0) == 0


def test_noise_terms_are_per_image():
    rng = np.random.default_rng(0)
    maps = [jt.array(rng.standard_normal((2, 1, s, s)).astype(np.float32)) for s in (4, 8, 16)]
    both = noise_penalty(maps).numpy()
    alone = noise_penalty([m[1:] for m in maps]).numpy()
    np.testing.assert_allclose(both[1:], alone, rtol=1e-5)
    smooth = [jt.ones((1, 1, 16, 16))]  # fully correlated: (1^2 + 1^2) at 16 and 8 px
    assert float(noise_penalty(smooth).numpy()[0]) == pytest.approx(4)
    normal = normalized_noise(maps[2] * 3 + 1).numpy()
    np.testing.assert_allclose(normal.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose((normal ** 2).mean(axis=(1, 2, 3)), 1, rtol=1e-4)
    a, b = jt.zeros((1, 3, 16, 16)), jt.ones((1, 3, 16, 16))
    assert float(pixel_distance(a, b).numpy()[0]) == pytest.approx(1, rel=1e-4)  # 1 at every scale
    assert psnr(np.zeros((1, 3, 2, 2)), np.full((1, 3, 2, 2), 0.2))[0] == pytest.approx(20)


@pytest.mark.slow
def test_projection_beats_the_mean_w_and_w_plus_fits_at_least_as_well(networks):
    generator, discriminator = networks
    targets = smooth_targets(16)
    schedule = Schedule(steps=100)
    for features in (None, discriminator):
        in_w = project(generator, targets, 2, features, w_plus=False, schedule=schedule)
        in_w_plus = project(generator, targets, 2, features, w_plus=True, schedule=schedule)
        assert in_w.w.shape == (3, CODE_DIM) and in_w_plus.w.shape == (3, 3, CODE_DIM)
        assert in_w_plus.distance.mean() <= in_w.distance.mean()
        start = psnr(in_w.start_images, targets)
        assert np.all(psnr(in_w.images, targets) > start + 1)     # dB over the mean w
        assert psnr(in_w.images, targets).mean() > start.mean() + 3
        assert psnr(in_w_plus.images, targets).mean() > start.mean() + 3


def test_a_short_projection_improves_on_its_start(networks):
    generator, _ = networks
    targets = smooth_targets(8, n=2)
    result = project(generator, targets, 1, w_plus=True, schedule=Schedule(steps=30),
                     frames=4)
    assert psnr(result.images, targets).mean() > psnr(result.start_images, targets).mean() + 1
    assert len(result.frames) == 4 and result.frames[0].shape == (2, 3, 8, 8)
    assert [m.shape for m in result.noise] == [(2, 1, 4, 4), (2, 1, 8, 8)]


@pytest.mark.slow
def test_projector_py_writes_latents_pictures_and_gifs(checkpoints, tmp_path, capsys):
    out = str(tmp_path / "out")
    written = main(build_parser().parse_args(
        [checkpoints["train"], *checkpoints["images"], "--out", out, "--steps", "20",
         "--batch", "1", "--gif", "--frames", "3"]))
    assert sorted(os.listdir(out)) == ["img0.gif", "img0.png", "img1.gif", "img1.png",
                                       "latents.npz"]
    assert written[0] == os.path.join(out, "latents.npz")
    latents = load_latents(written[0], CODE_DIM)
    assert latents.names == ["img0", "img1"] and not latents.w_plus
    assert [m.shape for m in latents.noise] == [(2, 1, 4, 4), (2, 1, 8, 8)]  # size 8: reached
    picture = np.asarray(Image.open(os.path.join(out, "img0.png")))
    assert picture.shape == (12, 22, 3)  # target and reconstruction, 8 px, padding 2
    assert tuple(picture[5, 5]) == pytest.approx((250, 30, 30), abs=1)  # the target, cropped
    with Image.open(os.path.join(out, "img1.gif")) as gif:
        assert gif.n_frames == 3 and gif.size == (16, 8)
    printed = capsys.readouterr()
    assert "pixels + discriminator features" in printed.out and "PSNR" in printed.out
    assert "loss=" in printed.err  # the progress bar


def test_a_generator_alone_needs_size_and_falls_back_to_pixels(checkpoints, tmp_path, capsys):
    args = [checkpoints["state"], checkpoints["images"][0], "--out", str(tmp_path / "o"),
            "--steps", "2", "--w_plus"]
    with pytest.raises(UsageError, match="give --size"):
        main(build_parser().parse_args(args))
    main(build_parser().parse_args(args + ["--size", "8"]))
    err = capsys.readouterr().err
    assert "holds no discriminator (a generator state dict); the loss is pixels only" in err
    assert load_latents(str(tmp_path / "o" / "latents.npz"), CODE_DIM).w.shape == (1, 2, CODE_DIM)


def test_bad_inputs_are_usage_errors_before_anything_is_written(checkpoints, tmp_path):
    out = tmp_path / "o"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "img0.png")
    cases = [([str(bad)], "cannot be read as an image"),
             ([str(tmp_path / "none.png")], "no such image"),
             ([checkpoints["images"][0], str(tmp_path / "a" / "img0.png")], "same name"),
             ([checkpoints["images"][0], "--size", "12"], "--size"),
             ([checkpoints["images"][0], "--size", "16"], "16"),
             ([checkpoints["images"][0], "--steps", "0"], "--steps")]
    for flags, message in cases:
        with pytest.raises(UsageError, match=message):
            main(build_parser().parse_args([checkpoints["train"], *flags, "--out", str(out)]))
    assert not out.exists()


@pytest.mark.slow
def test_command_line_errors_are_one_line_with_exit_2(checkpoints, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    result = subprocess.run([sys.executable, "projector.py", checkpoints["train"], str(bad),
                             "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [f"projector.py: error: {bad}: cannot be read as an image "
                     f"(cannot identify image file '{bad}')"]
