"""NVIDIA's official StyleGAN v1 pickles: read safely, rendered as NVIDIA's own code renders them.

The fixtures in test/fixtures/official/ were written by NVlabs/stylegan's code itself under
TensorFlow 2 (``tools/make_official_fixtures.py``): two random models (32 px; 128 px, whose
128 px blocks are the fused ones), what the official networks compute for them, and two files to
refuse. The official's numbers are the expectations; none is computed here by this port's maths.
"""
import glob
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jittor as jt

from explorer.commands import NVIDIA_NOTE, generate_command
from explorer.state import State
from files.checkpoint import UnsafeCheckpointError, load_checkpoint
from files.generators import load_generator
from helpers import flat_image_root
from files.nvidia_pickle import (NvidiaPickleError, first_global, is_nvidia_pickle,
                                 read_nvidia_pickle)
from latents.sefa import sefa_directions
from model import StyledGenerator
from nvidia.networks import grouped_minibatch_stddev
from nvidia.official_files import build_discriminator, build_generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "official")
MODELS = ("official32", "official128")
TOLERANCE = 1e-4           # of the largest value, as the issue asks
PWNED = "/tmp/PWNED_official"


def fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module", params=MODELS)
def official(request):
    """(name, generator from the pickle's Gs, info, expected outputs of the official code)."""
    path = fixture(f"{request.param}.pkl")
    generator, info = load_generator(path)
    return request.param, generator, info, np.load(fixture(f"{request.param}_expected.npz"))


def close(actual, expected):
    error = float(np.abs(np.asarray(actual) - expected).max())
    assert error <= TOLERANCE * float(np.abs(expected).max()), error


# --- reading --------------------------------------------------------------------------------------

def test_the_reader_gives_the_three_networks_with_their_variables():
    model = read_nvidia_pickle(fixture("official32.pkl"))
    assert (model.G.function, model.D.function, model.Gs.function) == ("G_style", "D_basic",
                                                                        "G_style")
    mapping, synthesis = model.Gs.components["mapping"], model.Gs.components["synthesis"]
    assert (mapping.function, synthesis.function) == ("G_mapping", "G_synthesis")
    assert set(model.Gs.variables) == {"lod", "dlatent_avg"}
    assert mapping.variables["Dense0/weight"].shape == (32, 32)
    assert synthesis.variables["32x32/Conv0_up/weight"].shape == (3, 3, 16, 8)
    assert sum(name.startswith("noise") for name in synthesis.variables) == 8
    assert model.D.variables["4x4/Conv/weight"].shape == (3, 3, 17, 16)
    assert model.Gs.static_kwargs["resolution"] == 32
    # Gs is not G: the moving average is the one generation uses
    assert not np.array_equal(model.G.variables["dlatent_avg"], model.Gs.variables["dlatent_avg"])


def test_official_files_are_told_apart_by_their_first_global_not_their_name(tmp_path):
    assert is_nvidia_pickle(fixture("official32.pkl"))
    assert is_nvidia_pickle(fixture("official128.pkl"))       # numpy 2's numpy._core names
    assert not is_nvidia_pickle(os.path.join(ROOT, "test", "fixtures", "torch_g_running_zip.model"))
    renamed = tmp_path / "weights.model"
    renamed.write_bytes(open(fixture("official32.pkl"), "rb").read())
    assert is_nvidia_pickle(str(renamed))
    assert first_global(pickle.dumps(np.zeros(2), protocol=4))[1] == "_reconstruct"


def test_the_generator_is_built_from_the_shapes(official):
    name, generator, info, expected = official
    assert info["flavour"] == "nvidia"
    assert info["code_dim"] == int(expected["latent_size"])
    assert 4 * 2 ** info["max_step"] == int(expected["resolution"])
    assert info["truncation"] == (0.7, 8)
    assert generator.arch["fused"][-1] == (name == "official128")


# --- rendering: the official code's numbers -------------------------------------------------------

def test_the_mapping_gives_the_official_dlatents(official):
    _, generator, _, expected = official
    with jt.no_grad():
        w = generator.style(jt.array(expected["z"])).numpy()
    for layer in range(expected["dlatents"].shape[1]):
        close(w, expected["dlatents"][:, layer])


@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_images_match_the_official_gs_with_its_stored_noise(official, psi):
    _, generator, _, expected = official
    step = generator.max_step
    settings = {} if psi == 1 else dict(mean_style=jt.array(generator.dlatent_avg),
                                        style_weight=psi, truncation_cutoff=8)
    with jt.no_grad():
        images = generator(jt.array(expected["z"]), step=step, alpha=1,
                           noise=generator.noise_maps(step, 1, stored=True), **settings).numpy()
    close(images, expected["images_psi1" if psi == 1 else "images_psi07"])


def test_style_mixing_by_layer_matches_the_official_synthesis():
    generator, _ = load_generator(fixture("official32.pkl"))
    expected = np.load(fixture("official32_expected.npz"))
    cutoff, step = int(expected["mixing_cutoff"]), generator.max_step
    with jt.no_grad():
        w = generator.style(jt.array(expected["z"]))
        w_other = generator.style(jt.array(expected["z"][expected["mixed_from"]]))
        styles = [w if layer < cutoff else w_other for layer in range(2 * (step + 1))]
        images = generator.generator(styles, generator.noise_maps(step, 1, stored=True),
                                     step).numpy()
    close(images, expected["images_mixed"])


def test_a_file_saved_mid_growth_renders_as_the_official_recursive_structure():
    generator, _ = load_generator(fixture("official32.pkl"))
    expected = np.load(fixture("official32_expected.npz"))
    step = generator.max_step
    for lod, official in zip(expected["lods"], expected["images_lod"]):
        generator.lod = float(lod)
        with jt.no_grad():
            images = generator(jt.array(expected["z"]), step=step, alpha=1,
                               noise=generator.noise_maps(step, 1, stored=True)).numpy()
        close(images, official)


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_discriminator_scores_match_the_official_d(official, batch):
    name, _, _, expected = official
    path = fixture(f"{name}.pkl")
    discriminator = build_discriminator(read_nvidia_pickle(path).D, path)
    size = int(expected["resolution"])
    images = np.random.RandomState(int(expected["d_seed"]) + batch).uniform(
        -1, 1, (batch, 3, size, size)).astype(np.float32)
    with jt.no_grad():
        scores = discriminator(jt.array(images)).numpy()
    close(scores, expected[f"d_scores_{batch}"])


def test_grouped_minibatch_stddev_takes_groups_in_strided_order():
    x = np.random.RandomState(0).randn(8, 4, 2, 2).astype(np.float32)
    out = grouped_minibatch_stddev(jt.array(x), 4, 1).numpy()
    assert out.shape == (8, 5, 2, 2)
    for m in range(2):   # group m holds images m, m + 2, m + 4, m + 6
        group = x[m::2]
        std = np.sqrt(group.var(axis=0) + 1e-8).mean()
        for image in range(m, 8, 2):
            np.testing.assert_allclose(out[image, 4], std, rtol=1e-5)


def test_truncation_cutoff_on_the_originals_networks_truncates_whole_sizes():
    jt.set_global_seed(0)
    generator = StyledGenerator(code_dim=8, n_mlp=2, width=8)
    generator.eval()
    z, mean = jt.randn(2, 8), jt.randn(1, 8)
    noise = [jt.randn(2, 1, 4 * 2 ** i, 4 * 2 ** i) for i in range(3)]
    with jt.no_grad():
        w = generator.style(z)
        truncated = mean + 0.5 * (w - mean)
        # cutoff 4: the layers 0-3 of sizes 4 and 8 px, not those of 16 px
        expected = generator.generator([truncated, truncated, w], noise, 2).numpy()
        got = generator(z, noise=noise, step=2, mean_style=mean, style_weight=0.5,
                        truncation_cutoff=4).numpy()
        every = generator(z, noise=noise, step=2, mean_style=mean, style_weight=0.5).numpy()
        all_truncated = generator.generator([truncated] * 3, noise, 2).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(every, all_truncated, atol=1e-5)


def test_sefa_reads_the_per_layer_style_affines():
    generator, _ = load_generator(fixture("official32.pkl"))
    vectors, values = sefa_directions(generator, (0, 1))
    layer = generator.generator.layers[0].style
    weight = (layer.weight * layer._coefficient).numpy()          # (code_dim, 2 * channels)
    assert vectors.shape[1] == 32 and np.all(np.diff(values) <= 1e-9)
    assert values[0] >= np.linalg.eigvalsh(weight @ weight.T).max() - 1e-6


# --- refusals ---------------------------------------------------------------------------------

def test_a_malicious_pickle_is_refused_with_nothing_run():
    if os.path.exists(PWNED):
        os.remove(PWNED)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|nt.system"):
        load_generator(fixture("malicious.pkl"))
    assert not os.path.exists(PWNED)


def test_a_stylegan2_pickle_is_refused_naming_what_it_is():
    with pytest.raises(NvidiaPickleError, match="StyleGAN2"):
        load_generator(fixture("stylegan2_like.pkl"))


def test_a_truncated_pickle_is_refused(tmp_path):
    data = open(fixture("official32.pkl"), "rb").read()
    truncated = tmp_path / "half.pkl"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(NvidiaPickleError, match="truncated"):
        load_generator(str(truncated))


def test_variables_that_do_not_fit_together_are_refused(tmp_path):
    model = read_nvidia_pickle(fixture("official32.pkl"))
    variables = model.Gs.components["synthesis"].variables
    variables["8x8/Conv1/weight"] = variables["8x8/Conv1/weight"][:, :, :8]
    with pytest.raises(NvidiaPickleError, match="8x8/Conv1|shape"):
        build_generator(model.Gs, "bent.pkl")


# --- the command line ---------------------------------------------------------------------------

def script(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("psi", ["1", "0.7"])
def test_generate_z_with_stored_noise_writes_the_official_8bit_images(tmp_path, name, psi):
    expected = np.load(fixture(f"{name}_expected.npz"))
    np.save(tmp_path / "z.npy", expected["z"])
    result = script("generate.py", fixture(f"{name}.pkl"), "--z", str(tmp_path / "z.npy"),
                    "--noise", "stored", "--truncation", psi, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    files = sorted(glob.glob(str(tmp_path / "out" / "images" / "*.png")))
    names = [os.path.basename(f) for f in files]
    assert names == [f"{k:06d}.png" for k in range(len(expected["z"]))]
    pixels = np.stack([np.asarray(Image.open(f)) for f in files]).astype(int)
    official = expected["uint8_psi1" if psi == "1" else "uint8_psi07"].astype(int)
    assert np.abs(pixels - official).max() <= 1


@pytest.mark.slow
def test_generate_refuses_bad_files_in_one_line(tmp_path):
    for name, words in (("malicious.pkl", "refused"), ("stylegan2_like.pkl", "StyleGAN2")):
        result = script("generate.py", fixture(name), "--out", str(tmp_path / "x"))
        assert result.returncode == 1 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.exists(PWNED)
    np.save(tmp_path / "bad.npy", np.zeros((2, 5), np.float32))
    result = script("generate.py", fixture("official32.pkl"), "--z", str(tmp_path / "bad.npy"),
                    "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "(N, 32)" in result.stderr
    original = os.path.join(ROOT, "test", "fixtures", "torch_g_running_zip.model")
    result = script("generate.py", original, "--noise", "stored", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "--noise stored" in result.stderr
    result = script("export_torch.py", fixture("official32.pkl"), str(tmp_path / "t.model"))
    assert result.returncode == 1 and "NVIDIA model" in result.stderr


@pytest.mark.slow
def test_conversion_writes_a_generator_file_that_renders_the_same(tmp_path):
    out = tmp_path / "official32.model"
    result = script("-m", "tools.convert_nvidia", fixture("official32.pkl"), str(out))
    assert result.returncode == 0, result.stderr
    generator, info = load_generator(str(out))
    expected = np.load(fixture("official32_expected.npz"))
    with jt.no_grad():
        images = generator(jt.array(expected["z"]), step=generator.max_step, alpha=1,
                           noise=generator.noise_maps(generator.max_step, 1, stored=True)).numpy()
    close(images, expected["images_psi1"])
    assert info["flavour"] == "nvidia"


@pytest.mark.slow
def test_train_continues_an_official_model_and_its_checkpoints_load(tmp_path):
    data = flat_image_root(tmp_path / "data", (32,), 8)
    out = tmp_path / "run"
    common = ["train.py", data, "--batch", "4", "--seed", "1", "--out", str(out),
              "--sample_every", "2", "--save_every", "2"]
    result = script(*common, "--ckpt", fixture("official32.pkl"), "--iter", "2")
    assert result.returncode == 0, result.stderr
    state = load_checkpoint(str(out / "checkpoint" / "train_state.model"))
    assert state["iteration"] == 2 and state["args"]["max_size"] == 32
    assert state["args"]["nvidia"]["generator"]["channels"] == [16, 16, 16, 8]
    model = read_nvidia_pickle(fixture("official32.pkl"))
    start = model.Gs.components["mapping"].variables["Dense0/weight"]
    after = state["g_running"]["style.layers.0.weight"]
    assert 0 < np.abs(after - start).max() < 0.05 * np.abs(start).max()   # EMA moved a little
    generator, info = load_generator(str(out / "checkpoint" / "000002.model"))
    assert info["flavour"] == "nvidia"
    np.testing.assert_array_equal(generator.dlatent_avg[0], model.Gs.variables["dlatent_avg"])
    result = script(*common, "--resume", "--iter", "3")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(str(out / "checkpoint" / "train_state.model"))["iteration"] == 3


def test_the_explorer_says_its_command_is_not_exact_for_nvidia_models():
    original = generate_command(State(seed=5, size=32), "g.model")
    nvidia = generate_command(State(seed=5, size=32), "g.pkl", nvidia=True)
    assert original["exact"] and not nvidia["exact"]
    assert NVIDIA_NOTE in nvidia["note"]
    assert nvidia["command"].startswith("python3 generate.py g.pkl")


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_other_pickle_protocols_read_the_same(tmp_path, protocol, monkeypatch):
    """The official file re-pickled at other protocols (GLOBAL instead of STACK_GLOBAL at 2,
    numpy's in-band buffers at 5) gives the same networks."""
    from tools import bench_nvidia
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    bench_nvidia.register_standin()

    class Trusting(pickle.Unpickler):   # our own fixture: its Network becomes the stand-in
        def find_class(self, module, name):
            if (module, name) == ("dnnlib.tflib.network", "Network"):
                return StandIn
            return super().find_class(module, name)

    class StandIn(bench_nvidia.Network):
        def __init__(self):
            pass

        def __setstate__(self, state):
            self.state = state

    with open(fixture("official32.pkl"), "rb") as f:
        networks = Trusting(f).load()
    copies = tuple(bench_nvidia.Network(n.state) for n in networks)
    for copy in copies:
        copy.state["components"] = {k: bench_nvidia.Network(v.state)
                                    for k, v in copy.state["components"].items()}
    path = tmp_path / f"protocol{protocol}.pkl"
    path.write_bytes(pickle.dumps(copies, protocol=protocol))
    assert is_nvidia_pickle(str(path))
    again = read_nvidia_pickle(str(path))
    original = read_nvidia_pickle(fixture("official32.pkl"))
    for part in ("mapping", "synthesis"):
        ours, theirs = again.Gs.components[part].variables, original.Gs.components[part].variables
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
