"""checkpoint.py: atomic saving, the formats it reads, and a one-line message for everything else."""
import os
from math import prod, sqrt

import numpy as np
import pytest

import jittor as jt

from files.checkpoint import (TRAINING_CHECKPOINT_KEYS, CheckpointError, atomic_save, generator_config,
                              generator_state_dict, is_training_checkpoint, load_checkpoint,
                              load_generator)
from model import Discriminator, StyledGenerator

CODE_DIM, N_MLP, WIDTH = 16, 2, 16
STEP = 1  # 8 px


def numpy_state_dict(module):
    return {key: value.numpy() for key, value in module.state_dict().items()}


def generate(generator, seed=0):
    """Images at STEP from fixed latents and noise, as numpy."""
    rng = np.random.default_rng(seed)
    z = jt.array(rng.normal(size=(2, CODE_DIM)).astype(np.float32))
    noise = [jt.array(rng.normal(size=(2, 1, 4 * 2 ** i, 4 * 2 ** i)).astype(np.float32))
             for i in range(STEP + 1)]
    with jt.no_grad():
        return generator(z, noise=noise, step=STEP).numpy()


@pytest.fixture(scope="module")
def tiny():
    jt.set_global_seed(0)
    generator = StyledGenerator(CODE_DIM, N_MLP, WIDTH)
    state = numpy_state_dict(generator)
    for key in state:  # non-zero noise strengths, so the noise inputs count
        if ".noise" in key:
            state[key] = np.full_like(state[key], 0.3)
    generator.load_state_dict(state)
    return generator, state, generate(generator)


def training_checkpoint(g_running_state, generator_state, step=2):
    return {
        "generator": generator_state,
        "discriminator": numpy_state_dict(Discriminator(width=WIDTH)),
        "g_running": g_running_state,
        "g_optimizer": {"defaults": {"lr": 1e-3}},
        "d_optimizer": {"defaults": {"lr": 1e-3}},
        "step": step, "alpha": 1.0, "used_sample": 123, "iteration": 10,
        "args": {"code_dim": CODE_DIM, "n_mlp": N_MLP, "width": WIDTH},
    }


def test_atomic_save_round_trips_vars_as_numpy_and_creates_the_folder(tmp_path):
    path = tmp_path / "new" / "ckpt.model"
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    atomic_save({"a": jt.array(value), "nested": [{"b": jt.array(value * 2)}], "step": 3}, str(path))
    loaded = load_checkpoint(str(path))
    assert isinstance(loaded["a"], np.ndarray)
    np.testing.assert_array_equal(loaded["a"], value)
    np.testing.assert_array_equal(loaded["nested"][0]["b"], value * 2)
    assert loaded["step"] == 3
    assert os.listdir(path.parent) == ["ckpt.model"]  # no temporary file left behind


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.model")
    atomic_save({"version": 1}, path)

    def crash_mid_write(obj, target):
        with open(target, "wb") as f:
            f.write(b"\x80\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(jt, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"version": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["ckpt.model"]


def test_a_pt_name_still_holds_and_reads_the_jittor_format(tmp_path):
    path = str(tmp_path / "weights.pt")
    atomic_save({"x": np.ones(2, dtype=np.float32)}, path)
    np.testing.assert_array_equal(load_checkpoint(path)["x"], np.ones(2))


def test_architecture_is_read_from_the_state_dict(tiny):
    _, state, _ = tiny
    assert generator_config(state) == dict(code_dim=CODE_DIM, n_mlp=N_MLP, width=WIDTH)
    wider = numpy_state_dict(StyledGenerator(code_dim=8, n_mlp=3, width=32))
    assert generator_config(wider) == dict(code_dim=8, n_mlp=3, width=32)


def test_reference_jittor_state_dict_with_derived_weights_loads(tiny, tmp_path):
    generator, state, images = tiny
    reference = dict(state)
    for key, value in state.items():  # the reference's EqualLR hook leaves weight = orig * c
        if key.endswith(".weight_orig"):
            reference[key[:-len("_orig")]] = value * sqrt(2 / prod(value.shape[1:]))
    path = str(tmp_path / "FFHQ_80000.model")
    jt.save(reference, path)  # exactly how the reference writes it
    loaded, info = load_generator(path)
    assert info["kind"] == "generator state dict" and info["max_step"] == 8
    assert (info["code_dim"], info["n_mlp"], info["width"]) == (CODE_DIM, N_MLP, WIDTH)
    np.testing.assert_allclose(generate(loaded), images, rtol=0, atol=1e-5)


def test_pytorch_original_state_dict_with_blur_buffers_loads(tiny, tmp_path):
    _, state, images = tiny
    original = dict(state)
    kernel = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
    for block in range(1, 5):  # blur after the upsampling conv: conv1.2 below 128 px
        channels = state[f"generator.progression.{block}.conv1.1.conv.bias"].shape[0]
        buffer = np.tile(kernel, (channels, 1, 1, 1))
        original[f"generator.progression.{block}.conv1.2.weight"] = buffer
        original[f"generator.progression.{block}.conv1.2.weight_flip"] = buffer[:, :, ::-1, ::-1]
    path = str(tmp_path / "original.model")
    jt.save(original, path)
    loaded, _ = load_generator(path)
    np.testing.assert_allclose(generate(loaded), images, rtol=0, atol=1e-5)


def test_training_checkpoint_loads_its_g_running(tiny, tmp_path):
    _, state, images = tiny
    other = numpy_state_dict(StyledGenerator(CODE_DIM, N_MLP, WIDTH))  # the trained, non-EMA G
    checkpoint = training_checkpoint(state, other, step=2)
    assert is_training_checkpoint(checkpoint) and set(TRAINING_CHECKPOINT_KEYS) <= set(checkpoint)
    path = str(tmp_path / "train.model")
    atomic_save(checkpoint, path)
    loaded, info = load_generator(path)
    assert info["kind"] == "training checkpoint" and info["max_step"] == 2
    np.testing.assert_allclose(generate(loaded), images, rtol=0, atol=1e-5)


def test_reference_training_snapshot_loads_its_g_running(tiny, tmp_path):
    _, state, images = tiny
    snapshot = {key: value for key, value in training_checkpoint(state, state).items()
                if key in ("generator", "discriminator", "g_running")}
    assert not is_training_checkpoint(snapshot)
    assert generator_state_dict(snapshot) is snapshot["g_running"]
    path = str(tmp_path / "train_step-3.model")
    jt.save(snapshot, path)
    loaded, info = load_generator(path)
    assert info["max_step"] == 8
    np.testing.assert_allclose(generate(loaded), images, rtol=0, atol=1e-5)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def bad_checkpoints(tmp_path, state):
    """(path, words its error message must hold) for each kind of wrong file."""
    cases = [(str(tmp_path / "missing.model"), "no such file")]
    png = tmp_path / "image.model"
    from PIL import Image
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    cases.append((str(png), "a PNG image"))
    cases.append((write_bytes(tmp_path / "notes.model", b"hello, not weights\n"), "a text file"))
    cases.append((write_bytes(tmp_path / "notes.pt", b"hello, not weights\n"), "a text file"))
    good = str(tmp_path / "good.model")
    jt.save(state, good)
    with open(good, "rb") as f:
        data = f.read()
    cases.append((write_bytes(tmp_path / "cut.model", data[:len(data) // 2]), "truncated or damaged"))
    cases.append((write_bytes(tmp_path / "flipped.model", data[:100] + b"X" + data[101:]),
                  "damaged Jittor checkpoint"))
    jt.save([1, 2, 3], str(tmp_path / "list.model"))
    cases.append((str(tmp_path / "list.model"), "a pickled list"))
    jt.save(numpy_state_dict(Discriminator(width=WIDTH)), str(tmp_path / "d.model"))
    cases.append((str(tmp_path / "d.model"), "a discriminator state dict"))
    no_ema = training_checkpoint(state, state)
    del no_ema["g_running"]
    jt.save(no_ema, str(tmp_path / "no_ema.model"))
    cases.append((str(tmp_path / "no_ema.model"), "without g_running"))
    other_width = dict(state)  # constant input of width 32, every other layer of width 16
    other_width["generator.progression.0.conv1.input"] = np.zeros((1, 2 * WIDTH, 4, 4), np.float32)
    jt.save(other_width, str(tmp_path / "width.model"))
    cases.append((str(tmp_path / "width.model"), "does not fit the architecture read from it "
                                                 f"(code_dim={CODE_DIM}, n_mlp={N_MLP}, width=32)"))
    jt.save({"weights": 1}, str(tmp_path / "dict.model"))
    cases.append((str(tmp_path / "dict.model"), "a dict with 1 key (weights)"))
    return cases


def test_each_bad_checkpoint_fails_with_a_one_line_message_saying_what_it_is(tiny, tmp_path):
    _, state, _ = tiny
    for path, words in bad_checkpoints(tmp_path, state):
        with pytest.raises(CheckpointError) as caught:
            load_generator(path)
        message = str(caught.value)
        assert words in message, (path, message)
        assert message.startswith(path) and "\n" not in message
        assert "expected" in message
