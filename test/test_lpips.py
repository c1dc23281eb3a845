"""metrics/lpips.py against the lpips package, without PyTorch and without the real weights:
tools/make_lpips_fixtures.py ran ``lpips.LPIPS(net="vgg")`` on seeded weights and fixed image
pairs; the results are the committed fixtures. Also the weight files' refusals, and the
projector with ``--vgg16`` / ``--lpips_weights``."""
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import jittor as jt

from runtime.cli import UsageError
from files.checkpoint import atomic_save, write_torch_file
from latents.projection import LPIPS_MAX_SIZE, Schedule, area_downsample, project
from metrics import lpips
from helpers import seeded_generator, smooth_targets
from projector import build_parser, main
from tools.make_lpips_fixtures import (GRADIENT_PAIR, KEYS_FILE, REFERENCE_FILE, fixture_pairs,
                                       seeded_weights)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIM, N_MLP, WIDTH = 8, 2, 8
TOLERANCE = 1e-4


def package_keys():
    with open(KEYS_FILE) as f:
        return [(key, tuple(shape)) for key, shape in json.load(f)]


def seeded_files(folder):
    """The fixture script's seeded weights as the two files users give, written by the
    project's own torch writer: ``(vgg16 path, lin path)``. The VGG file also holds a
    classifier key, which is ignored as torchvision's full file's are."""
    weights = seeded_weights(package_keys())
    vgg = {k: v for k, v in weights.items() if k.startswith("features.")}
    vgg["classifier.6.bias"] = np.zeros(1000, np.float32)
    lin = {k: v for k, v in weights.items() if k.startswith("lin")}
    paths = (os.path.join(str(folder), lpips.VGG_WEIGHTS_NAME), os.path.join(str(folder), "vgg.pth"))
    write_torch_file(vgg, paths[0])
    write_torch_file(lin, paths[1])
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return seeded_files(tmp_path_factory.mktemp("lpips"))


@pytest.fixture(scope="module")
def net(files):
    return lpips.load_lpips(*files)


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE_FILE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_the_files_keys_and_shapes_are_torchvisions_and_the_lpips_packages():
    keys = package_keys()
    assert [(k, tuple(s)) for k, s in lpips.vgg_feature_shapes().items()] == keys[:26]
    assert [(k, tuple(s)) for k, s in lpips.lin_shapes().items()] == keys[26:]


def test_the_fixtures_are_small():
    assert os.path.getsize(REFERENCE_FILE) + os.path.getsize(KEYS_FILE) < 64 * 1024


@pytest.mark.slow
def test_distances_and_gradients_match_the_lpips_package(net, reference):
    for name, first, second in fixture_pairs():
        x0 = jt.array(first)
        features0, features1 = net.features(x0), net.features(jt.array(second))
        layers = np.stack([v.numpy() for v in net.layer_distances(features0, features1)])
        theirs = reference[f"layers_{name}"]
        assert layers.shape == theirs.shape == (5, len(first))
        assert theirs.min() > 1e-3                       # every layer contributes
        layer_error = np.abs(layers / theirs - 1).max()
        assert layer_error <= TOLERANCE, name
        distance = net.distance(features0, features1)
        distance_error = np.abs(distance.numpy() / reference[f"dist_{name}"] - 1).max()
        assert distance_error <= TOLERANCE, name
        print(f"{name}: relative difference: distance {distance_error:.1e}, layers "
              f"{layer_error:.1e}")
        if name == GRADIENT_PAIR:
            gradient = jt.grad(distance.sum(), x0).numpy()
            expected = reference[f"grad_{name}"]
            gradient_error = np.abs(gradient - expected).max() / np.abs(expected).max()
            assert gradient_error <= TOLERANCE
            print(f"{name}: gradient: {gradient_error:.1e} of its largest value")


@pytest.mark.slow
def test_an_image_is_at_distance_0_from_itself_and_gradients_flow(net):
    _, first, second = fixture_pairs()[0]
    x = jt.array(first)
    assert np.all(net(x, jt.array(first)).numpy() == 0)
    distance = net(x, jt.array(second))
    gradient = jt.grad(distance.sum(), x).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).min(axis=(1, 2, 3)).max() > 0
    assert np.all(np.abs(gradient).max(axis=(1, 2, 3)) > 1e-4)      # every image's
    # a pixel with every feature 0 (all ReLUs off) has a finite gradient too
    zeros = jt.zeros((1, 4, 2, 2))
    assert np.all(np.isfinite(jt.grad(lpips.unit_length(zeros).sum(), zeros).numpy()))
    with pytest.raises(ValueError, match="at least 16"):
        net(jt.zeros((1, 3, 8, 8)), jt.zeros((1, 3, 8, 8)))


def test_large_images_are_averaged_down_to_256_px_by_blocks():
    images = np.random.default_rng(0).standard_normal((1, 3, 512, 512)).astype(np.float32)
    small = area_downsample(jt.array(images), LPIPS_MAX_SIZE).numpy()
    expected = images.reshape(1, 3, 256, 2, 256, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(small, expected, rtol=1e-5, atol=1e-6)
    same = np.zeros((1, 3, 32, 32), np.float32)
    assert area_downsample(jt.array(same), LPIPS_MAX_SIZE).shape == (1, 3, 32, 32)


def refusal(vgg16, lin):
    with pytest.raises(lpips.LpipsWeightsError) as error:
        lpips.load_lpips(str(vgg16), str(lin))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_weight_files_are_refused_in_one_line_naming_them(files, tmp_path):
    vgg16, lin = files
    weights = seeded_weights(package_keys())
    missing = tmp_path / "missing_key.pth"
    write_torch_file({k: v for k, v in weights.items()
                      if k.startswith("features.") and k != "features.28.bias"}, str(missing))
    message = refusal(missing, lin)
    assert message.startswith(f"{missing}: not torchvision's VGG16 weights")
    assert "missing 1 of its 26 tensors (e.g. features.28.bias)" in message

    wrong_shape = tmp_path / "wrong_shape.pth"
    write_torch_file({k: (v[:, :128] if k == "lin3.model.1.weight" else v)
                      for k, v in weights.items() if k.startswith("lin")}, str(wrong_shape))
    message = refusal(vgg16, wrong_shape)
    assert message.startswith(f"{wrong_shape}: not the lpips package's VGG linear layers")
    assert "lin3.model.1.weight has shape (1, 128, 1, 1), expected (1, 512, 1, 1)" in message

    assert refusal(lin, lin) == (f"{lin}: not torchvision's VGG16 weights (vgg16-397923af.pth): "
                                 f"missing 26 of its 26 tensors (e.g. features.0.weight); 0 keys "
                                 f"match, first key lin0.model.1.weight")
    assert refusal(vgg16, vgg16).startswith(f"{vgg16}: not the lpips package's VGG linear layers")

    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    unsafe = tmp_path / "unsafe.pth"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("archive/data.pkl",
                         pickle.dumps({"lin0.model.1.weight": RunsCode()}, protocol=2))
    message = refusal(vgg16, unsafe)
    assert message.startswith(str(unsafe)) and "refused" in message
    assert "posix.system" in message or "os.system" in message
    assert not marker.exists()

    assert refusal(tmp_path, lin).startswith(f"{tmp_path}: is a directory, not a file")
    absent = tmp_path / lpips.VGG_WEIGHTS_NAME
    assert refusal(absent, lin) == (f"{absent}: no such file; download torchvision's "
                                    f"{lpips.VGG_WEIGHTS_URL}")
    assert "lpips/weights/v0.1/vgg.pth" in refusal(vgg16, tmp_path / "absent.pth")
    truncated = tmp_path / "truncated.pth"
    with open(lin, "rb") as f:
        truncated.write_bytes(f.read(os.path.getsize(lin) // 2))
    assert "damaged or truncated zip" in refusal(vgg16, truncated)


# ------------------------------------------------------------------------------------------------
# The projector with LPIPS
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generator():
    return seeded_generator(CODE_DIM, N_MLP, WIDTH)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, generator):
    """A training checkpoint that reached 16 px (LPIPS' smallest size), and two images."""
    folder = tmp_path_factory.mktemp("projector_lpips")
    state = {k: v.numpy() for k, v in generator.state_dict().items()}
    path = str(folder / "train.model")
    atomic_save({"generator": state, "g_running": state, "g_optimizer": {}, "discriminator": {},
                 "d_optimizer": {}, "step": 2, "alpha": 1.0, "used_sample": 0, "iteration": 1,
                 "args": {"code_dim": CODE_DIM, "n_mlp": N_MLP, "width": WIDTH}}, path)
    images = []
    for i, target in enumerate(smooth_targets(16, n=2)):
        images.append(str(folder / f"ramp{i}.png"))
        Image.fromarray(np.rint((target.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)).save(
            images[-1])
    return path, images


@pytest.mark.slow
def test_projection_lowers_lpips(generator, net):
    targets = smooth_targets(16, n=2)
    result = project(generator, targets, 2, w_plus=True, schedule=Schedule(steps=20),
                     lpips=net)
    start = net(jt.array(result.start_images), jt.array(targets)).numpy()
    final = net(jt.array(result.images), jt.array(targets)).numpy()
    np.testing.assert_allclose(result.distance, final, rtol=1e-4)
    assert np.all(final < 0.8 * start), (start, final)


@pytest.mark.slow
def test_projector_py_projects_with_lpips(checkpoint, files, tmp_path, capsys):
    path, images = checkpoint
    out = str(tmp_path / "out")
    written = main(build_parser().parse_args(
        [path, *images, "--out", out, "--steps", "5", "--vgg16", files[0],
         "--lpips_weights", files[1]]))
    assert sorted(os.listdir(out)) == ["latents.npz", "ramp0.png", "ramp1.png"]
    assert written[0] == os.path.join(out, "latents.npz")
    printed = capsys.readouterr()
    assert "at 16 px into W, 5 steps, loss: LPIPS (VGG16)" in printed.out
    assert printed.out.count("PSNR") == 2 and "loss=" in printed.err


def test_lpips_flags_are_checked_before_any_work(checkpoint, files, tmp_path):
    path, images = checkpoint
    out = tmp_path / "o"
    vgg16, lin = files
    cases = [(["--vgg16", vgg16], "--vgg16 needs --lpips_weights too"),
             (["--lpips_weights", lin], "--lpips_weights needs --vgg16 too"),
             (["--vgg16", vgg16, "--lpips_weights", lin, "--pixels_only"], "--pixels_only"),
             (["--vgg16", vgg16, "--lpips_weights", lin, "--discriminator", path],
              "--discriminator"),
             (["--vgg16", vgg16, "--lpips_weights", lin, "--size", "8"], "at least 16 px"),
             (["--vgg16", lin, "--lpips_weights", lin], "not torchvision's VGG16 weights"),
             (["--vgg16", vgg16, "--lpips_weights", str(tmp_path / "no.pth")], "no such file")]
    for flags, message in cases:
        with pytest.raises(UsageError, match=message):
            main(build_parser().parse_args([path, images[0], *flags, "--out", str(out)]))
    assert not out.exists()


@pytest.mark.slow
def test_one_lpips_flag_alone_exits_2_with_one_line(checkpoint, files, tmp_path):
    path, images = checkpoint
    result = subprocess.run([sys.executable, "projector.py", path, images[0], "--vgg16",
                             files[0], "--out", str(tmp_path / "o")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"projector.py: error: --vgg16 needs --lpips_weights too: LPIPS takes VGG16's weights "
        f"({lpips.VGG_WEIGHTS_NAME}) and its linear layers ({lpips.LIN_WEIGHTS_NAME})"]
