"""The PyTorch original's checkpoints, read without PyTorch, and the safe unpickler.

Fixtures in test/fixtures were written by real ``torch.save`` (zip and legacy formats) with the
original's key names at narrow shapes; ``make_torch_fixtures.py`` made them and defines their
values (``initial_value``, ``gradient``), which the tests recompute here.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import jittor as jt

from files.checkpoint import (CheckpointError, UnsafeCheckpointError, atomic_save, file_format,
                              load_checkpoint, load_generator, read_file,
                              torch_generator_state_dict, write_torch_file)
from model import Blur, StyledGenerator
from ops import portable
from tools.make_torch_fixtures import BETAS, LR, UNUSED, gradient, initial_value
from training.config import TrainConfig
from training.optimizers import MAPPING_LR_MULT
from training.snapshots import load_snapshot
from training.trainer import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")

KEYS = json.load(open(os.path.join(FIXTURES, "torch_keys.json")))
FORMATS = ("zip", "legacy")
BLUR = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
PORTABLE_TOLERANCE = 1e-5   # of the largest value: other kernels, the same maths (test_portable.py)


def fixture(name, form):
    return os.path.join(FIXTURES, f"torch_{name}_{form}.model")


def expected_state(rows):
    """The fixture's values before the Adam step, from key positions (buffers: Blur kernels)."""
    state = {}
    for position, (key, shape, kind) in enumerate(rows):
        if kind == "buffer":
            state[key] = np.repeat(BLUR[None, None], shape[0], axis=0)
        else:
            state[key] = initial_value(position, shape)
    return state


def expected_moments(rows):
    """name -> (exp_avg, exp_avg_sq) after one Adam step with betas (0, 0.99)."""
    moments = {}
    for position, (key, shape, kind) in enumerate(rows):
        if kind == "parameter" and not key.startswith(UNUSED):
            g = gradient(position, shape)
            moments[key] = (g, np.float32(1 - BETAS[1]) * g * g)
    return moments


def images(generator, step=2):
    rng = np.random.default_rng(5)
    z = jt.array(rng.normal(size=(2, KEYS["code_dim"])).astype(np.float32))
    noise = [jt.array(rng.normal(size=(2, 1, 4 * 2 ** i, 4 * 2 ** i)).astype(np.float32))
             for i in range(step + 1)]
    with jt.no_grad():
        return generator(z, noise=noise, step=step, alpha=0.5).numpy()


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("name", ["pytorch.pth", "weights.pt", "model.bin", "snapshot.model", "noext"])
def test_torch_files_are_recognised_by_content_whatever_their_name(tmp_path, form, name):
    path = str(tmp_path / name)
    shutil.copy(fixture("g_running", form), path)
    assert file_format(path) == f"torch {form}"
    loaded = read_file(path)
    assert list(loaded) == [key for key, _, _ in KEYS["G"]]      # torch's key order is kept


@pytest.mark.parametrize("form", FORMATS)
def test_training_dict_arrays_equal_the_values_torch_saved(form):
    ckpt = read_file(fixture("train", form))
    assert set(ckpt) == {"generator", "discriminator", "g_optimizer", "d_optimizer", "g_running"}
    for key, value in expected_state(KEYS["G"]).items():            # g_running: before the step
        assert ckpt["g_running"][key].dtype == np.float32
        np.testing.assert_array_equal(ckpt["g_running"][key], value, err_msg=key)
    moved = 0
    for rows, saved, lr_of in ((KEYS["G"], ckpt["generator"],
                                lambda k: LR * (MAPPING_LR_MULT if k.startswith("style.") else 1)),
                               (KEYS["D"], ckpt["discriminator"], lambda k: LR)):
        before, moments = expected_state(rows), expected_moments(rows)
        for key, value in before.items():                           # after one Adam step
            if key in moments:
                m, v = (x.astype(np.float64) for x in moments[key])
                value = value - lr_of(key) * m / (np.sqrt(v / (1 - BETAS[1])) + 1e-8)
                moved += 1
            np.testing.assert_allclose(saved[key], value, rtol=0, atol=2e-7, err_msg=key)
    assert moved > 100


@pytest.mark.parametrize("form", FORMATS)
def test_torch_adam_state_holds_the_moments_of_its_parameters_in_order(form):
    """What the mapping relies on: torch numbers the parameters group by group, in state-dict
    order without buffers (the fixture's gradients make each moment tell its parameter)."""
    ckpt = read_file(fixture("train", form))
    optimizer = ckpt["g_optimizer"]
    names = [key for key, _, kind in KEYS["G"] if kind == "parameter"]
    order = ([n for n in names if n.startswith("generator.")]
             + [n for n in names if n.startswith("style.")])
    assert [g["params"] for g in optimizer["param_groups"]] == [
        list(range(len(order) - sum(n.startswith("style.") for n in names))),
        list(range(len(order) - sum(n.startswith("style.") for n in names), len(order)))]
    moments = expected_moments(KEYS["G"])
    for index, name in enumerate(order):
        if name in moments:
            np.testing.assert_array_equal(optimizer["state"][index]["exp_avg"], moments[name][0])
        else:
            assert index not in optimizer["state"]


@pytest.fixture(scope="module")
def reference_images():
    """Images of a generator holding the fixture's g_running, loaded from a jt.save file."""
    generator = StyledGenerator(KEYS["code_dim"], KEYS["n_mlp"], width=KEYS["width"])
    generator.load_state_dict(expected_state(KEYS["G"]))
    generator.eval()
    with pytest.MonkeyPatch.context() as patch:              # drawn on the CPU path
        patch.delenv(portable.ENV_SWITCH, raising=False)
        return images(generator)


@pytest.fixture(params=["cpu", "portable"])
def code_path(request, monkeypatch):
    """Runs a test on the CPU path and on the portable path (ops/portable.py: the plain Jittor
    operators that CUDA runs)."""
    if request.param == "portable":
        monkeypatch.setenv(portable.ENV_SWITCH, "1")
    else:
        monkeypatch.delenv(portable.ENV_SWITCH, raising=False)
    return request.param


@pytest.mark.parametrize("name", ["train", "g_running"])
@pytest.mark.parametrize("form", FORMATS)
def test_generator_from_every_torch_form_draws_what_its_weights_draw(name, form, code_path,
                                                                   reference_images):
    generator, info = load_generator(fixture(name, form))
    assert (info["code_dim"], info["n_mlp"], info["width"]) == (8, 2, 8)
    tolerance = 0 if code_path == "cpu" else PORTABLE_TOLERANCE * np.abs(reference_images).max()
    np.testing.assert_allclose(images(generator), reference_images, rtol=0, atol=tolerance)


def small_config(**overrides):
    values = dict(path="unused", code_dim=8, n_mlp=2, width=8, init_size=8, max_size=16,
                  batch=4, phase=8, seed=1, fade_in_initial=True)
    values.update(overrides)
    return TrainConfig(**values)


def moments_by_name(optimizer, network):
    names = {id(p): n for n, p in network.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        for p, m, v in zip(group["params"], group["m"], group["values"]):
            out[names[id(p)]] = (m.numpy(), v.numpy())
    return out


@pytest.mark.parametrize("form", FORMATS)
def test_train_ckpt_puts_each_torch_adam_moment_on_its_parameter(tmp_path, form, capsys):
    ckpt = load_checkpoint(fixture("train", form))
    trainer = Trainer(small_config(out=str(tmp_path)))
    load_snapshot(trainer, ckpt, "ckpt")
    assert "Adam moments of" in capsys.readouterr().err
    for optimizer, network, rows in ((trainer.g_optimizer, trainer.generator, KEYS["G"]),
                                     (trainer.d_optimizer, trainer.discriminator, KEYS["D"])):
        assert optimizer.n_step == 1
        expected = expected_moments(rows)
        loaded = moments_by_name(optimizer, network)
        assert set(loaded) == {k for k, _, kind in rows if kind == "parameter"}
        for name, (m, v) in loaded.items():
            want = expected.get(name, (np.zeros_like(m), np.zeros_like(v)))
            np.testing.assert_array_equal(m, want[0], err_msg=name)
            np.testing.assert_allclose(v, want[1], rtol=1e-6, err_msg=name)
    # the groups keep this run's learning rates, the mapping network at lr / 100
    assert trainer.g_optimizer.param_groups[1]["lr"] == pytest.approx(
        trainer.g_optimizer.param_groups[0].get("lr", trainer.g_optimizer.lr) * MAPPING_LR_MULT)


def test_train_ckpt_takes_each_parameters_torch_step_count(tmp_path, capsys):
    """torch counts Adam steps per parameter, and so does optimizers.Adam: each count lands on
    its parameter; a parameter without a torch state is not yet stepped."""
    ckpt = load_checkpoint(fixture("train", "zip"))
    names = [key for key, _, kind in KEYS["G"] if kind == "parameter"]
    order = ([n for n in names if n.startswith("generator.")]
             + [n for n in names if n.startswith("style.")])
    state = ckpt["g_optimizer"]["state"]
    first, last = min(state), max(state)
    state[first]["step"], state[last]["step"] = 5, 9
    trainer = Trainer(small_config(out=str(tmp_path)))
    load_snapshot(trainer, ckpt, "ckpt")
    assert "its g_optimizer: Adam moments of" in capsys.readouterr().err
    counts = {}
    parameter_names = {id(p): n for n, p in trainer.generator.named_parameters()}
    for group in trainer.g_optimizer.param_groups:
        counts.update(zip([parameter_names[id(p)] for p in group["params"]], group["steps"]))
    expected = {name: (5 if i == first else 9 if i == last else 1 if i in state else 0)
                for i, name in enumerate(order)}
    assert counts == expected
    assert 0 in counts.values() and trainer.g_optimizer.n_step == 9


def test_train_ckpt_with_an_adam_state_that_does_not_map_says_so_and_starts_fresh(tmp_path, capsys):
    ckpt = load_checkpoint(fixture("train", "zip"))
    del ckpt["g_optimizer"]["param_groups"][0]["params"][-1]      # one parameter short
    trainer = Trainer(small_config(out=str(tmp_path)))
    load_snapshot(trainer, ckpt, "ckpt")
    err = capsys.readouterr().err
    assert "ckpt: its g_optimizer cannot be mapped: group 0 holds" in err
    assert "continuing with fresh Adam moments" in err
    assert "its d_optimizer: Adam moments of" in err                # the other one still loads
    for m, v in moments_by_name(trainer.g_optimizer, trainer.generator).values():
        assert not m.any() and not v.any()
    assert trainer.g_optimizer.n_step == 0


def test_write_torch_file_reads_back_and_carries_the_originals_blur_buffers(tmp_path):
    generator = StyledGenerator(8, 2, width=8)
    state = {k: v.numpy() for k, v in generator.state_dict().items()}
    blur = {name: None for name, m in generator.named_modules() if isinstance(m, Blur)}
    channels = {name: state[name.rsplit(".", 2)[0] + ".conv2.conv.weight_orig"].shape[0]
                for name in blur}
    path = str(tmp_path / "for_pytorch.model")
    write_torch_file({"g_running": torch_generator_state_dict(state, channels)}, path)
    assert file_format(path) == "torch zip"
    loaded = read_file(path)["g_running"]
    assert set(loaded) == {key for key, _, _ in KEYS["G"]}      # exactly the original's keys
    for key, shape, kind in KEYS["G"]:
        assert loaded[key].shape == tuple(shape), key
        if kind == "buffer":
            np.testing.assert_array_equal(loaded[key], np.repeat(BLUR[None, None], shape[0], 0))
        else:
            np.testing.assert_array_equal(loaded[key], state[key])


# --- refusals: one line each ----------------------------------------------------------------------

@pytest.mark.parametrize("form", FORMATS)
def test_another_networks_state_dict_is_refused_naming_a_missing_key(form):
    with pytest.raises(CheckpointError) as caught:
        load_generator(fixture("other_network", form))
    message = str(caught.value)
    assert "\n" not in message
    assert "a state dict of another network (no key generator.progression.0.conv1.input" in message


@pytest.mark.parametrize("form", FORMATS)
def test_a_torch_file_holding_only_a_discriminator_is_refused(form):
    with pytest.raises(CheckpointError, match="a discriminator state dict; expected a generator"):
        load_generator(fixture("discriminator", form))


@pytest.mark.parametrize("form", FORMATS)
def test_a_truncated_torch_file_is_refused_in_one_line(tmp_path, form):
    data = open(fixture("g_running", form), "rb").read()
    path = str(tmp_path / "truncated.model")
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointError) as caught:
        load_generator(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(path)
    assert ("truncated" in message) or ("damaged" in message)


class RunsCommand:
    """Unpickling this runs a shell command: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_files(folder):
    """The same command-running payload as a plain pickle, a jt.save file and a torch zip."""
    marker = os.path.join(folder, "command_ran")
    payload = {"g_running": RunsCommand(marker)}
    plain = os.path.join(folder, "plain.model")
    with open(plain, "wb") as f:
        pickle.dump(payload, f)
    jittor = os.path.join(folder, "jittor.model")
    jt.save(payload, jittor)
    torch_zip = os.path.join(folder, "torch.pth")
    with zipfile.ZipFile(torch_zip, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
    return marker, [plain, jittor, torch_zip]


def test_a_pickle_that_would_run_a_command_is_refused_in_every_format(tmp_path):
    marker, paths = hostile_files(str(tmp_path))
    for path in paths:
        with pytest.raises(UnsafeCheckpointError) as caught:
            load_checkpoint(path)
        assert str(caught.value).startswith(f"{path}: refused: the file asks to build ")
        assert "system" in str(caught.value) and "\n" not in str(caught.value)
    assert not os.path.exists(marker)
    # the same payload unpickled without the guard does run the command: the test can fail
    with open(paths[0], "rb") as f:
        pickle.load(f)
    assert os.path.exists(marker)


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["generate.py", "{path}", "--size", "8"],
    ["evaluate.py", "{path}", "{data}", "--size", "16"],
    ["train.py", "{data}", "--ckpt", "{path}", "--width", "8", "--code_dim", "8", "--n_mlp", "2",
     "--init_size", "8", "--max_size", "8", "--out", "{out}"],
])
def test_scripts_refuse_a_hostile_checkpoint_without_running_it(tmp_path, command):
    marker, paths = hostile_files(str(tmp_path))
    data = tmp_path / "data"
    for size in (8, 16):
        (data / str(size)).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (size, size), (i * 50, 0, 0)).save(data / str(size) / f"{i}.png")
    args = [a.format(path=paths[2], data=data, out=tmp_path / "out") for a in command]
    result = subprocess.run([sys.executable, os.path.join(ROOT, args[0]), *args[1:]],
                            capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(lines) == 1 and "posix.system" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(marker)


def test_project_and_reference_jittor_files_still_load(tmp_path):
    """jt.save of numpy arrays (this project) and of jt.Var values (the Jittor reference)."""
    generator = StyledGenerator(8, 2, width=8)
    numpy_file, var_file = str(tmp_path / "numpy.model"), str(tmp_path / "var.model")
    atomic_save(generator.state_dict(), numpy_file)
    jt.save(generator.state_dict(), var_file)                    # jt.Var values, as the reference
    for path in (numpy_file, var_file):
        loaded = load_checkpoint(path)
        for key, value in generator.state_dict().items():
            np.testing.assert_array_equal(loaded[key], value.numpy())


def test_export_torch_writes_the_generator_of_any_checkpoint_for_the_original(tmp_path, capsys):
    import export_torch
    out = str(tmp_path / "for_pytorch.model")
    info = export_torch.main(export_torch.build_parser().parse_args(
        [fixture("train", "legacy"), out]))
    assert info["width"] == 8
    assert "note: the PyTorch original's generate.py builds StyledGenerator(512)" in \
        capsys.readouterr().err
    assert file_format(out) == "torch zip"
    written = read_file(out)
    assert list(written) == ["g_running"]
    expected = expected_state(KEYS["G"])                  # g_running of the fixture, exactly
    assert set(written["g_running"]) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(written["g_running"][key], value, err_msg=key)


@pytest.mark.slow
def test_export_torch_to_an_unwritable_path_fails_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "export_torch.py"),
                             fixture("g_running", "zip"), str(blocker / "out.model")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"export_torch.py: error: cannot write {blocker}")
    assert "Traceback" not in result.stderr
