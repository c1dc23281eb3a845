"""files/latents.py (the .npz formats) and latents/synthesis.py (per-layer styles, edits)."""
import os

import numpy as np
import pytest

import jittor as jt

from files.latents import (N_LAYERS, LatentsError, load_directions, load_latents,
                           save_directions, save_latents)
from latents.synthesis import edit, mix, render, synthesize
from networks.style_layers import LAYER_GROUPS, parse_layer_range as parse_layers
from model import StyledGenerator, noise_shapes

CODE_DIM = 8


def noise_maps(n, step, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for shape in noise_shapes(step, n)]


def test_w_round_trip_repeats_the_style_for_every_layer(tmp_path):
    w = np.random.default_rng(0).standard_normal((3, CODE_DIM)).astype(np.float32)
    noise = noise_maps(3, 2)
    path = str(tmp_path / "w.npz")
    save_latents(path, w, noise, ["a", "b", "c"])
    latents = load_latents(path, CODE_DIM)
    assert not latents.w_plus and latents.w.shape == (3, N_LAYERS, CODE_DIM)
    assert latents.w.dtype == np.float32
    for layer in range(N_LAYERS):
        np.testing.assert_array_equal(latents.w[:, layer], w)
    assert [m.shape for m in latents.noise] == [m.shape for m in noise]
    np.testing.assert_array_equal(latents.noise[2], noise[2])
    assert latents.names == ["a", "b", "c"]
    assert sorted(np.load(path).files) == ["names", "noise_0", "noise_1", "noise_2", "w"]
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []  # no temporary left


def test_w_plus_keeps_its_layers_and_a_file_without_noise_has_none(tmp_path):
    w = np.arange(2 * 3 * CODE_DIM, dtype=np.float32).reshape(2, 3, CODE_DIM)
    save_latents(tmp_path / "p.npz", w)
    latents = load_latents(str(tmp_path / "p.npz"), CODE_DIM)
    assert latents.w_plus and latents.noise is None and latents.names == ["0", "1"]
    np.testing.assert_array_equal(latents.w, w)


def bad_latents(tmp_path, **arrays):
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    with pytest.raises(LatentsError) as error:
        load_latents(path, CODE_DIM)
    message = str(error.value)
    assert path in message and "\n" not in message
    return message


def test_bad_latent_files_are_refused_with_one_line(tmp_path):
    names = np.array(["a"])
    w = np.zeros((1, CODE_DIM), np.float32)
    assert "pickle" in bad_latents(tmp_path, w=np.array([{"x": 1}], dtype=object), names=names)
    assert "another model" in bad_latents(tmp_path, w=np.zeros((1, 16), np.float32), names=names)
    assert "NaN" in bad_latents(tmp_path, w=np.full((1, CODE_DIM), np.nan, np.float32),
                                names=names)
    assert "dtype" in bad_latents(tmp_path, w=np.zeros((1, CODE_DIM), np.int64), names=names)
    assert "layers" in bad_latents(tmp_path, w=np.zeros((1, 10, CODE_DIM), np.float32),
                                   names=names)
    assert "noise_0" in bad_latents(tmp_path, w=w, names=names,
                                    noise_0=np.zeros((1, 1, 8, 8), np.float32))
    assert "none missing" in bad_latents(tmp_path, w=w, names=names,
                                         noise_1=np.zeros((1, 1, 8, 8), np.float32))
    assert "'extra'" in bad_latents(tmp_path, w=w, names=names, extra=w)
    assert "names" in bad_latents(tmp_path, w=w, names=np.array(["a", "b"]))
    assert "directions file" in bad_latents(tmp_path, vectors=w, layers=np.array([0, 1]),
                                            values=np.ones(1, np.float32))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(LatentsError, match="not a readable"):
        load_latents(str(tmp_path / "text.npz"), CODE_DIM)
    with pytest.raises(LatentsError, match="no such file"):
        load_latents(str(tmp_path / "missing.npz"), CODE_DIM)


def test_directions_round_trip_and_refusals(tmp_path):
    vectors = np.linalg.qr(np.random.default_rng(0).standard_normal((CODE_DIM, CODE_DIM)))[0].T
    path = str(tmp_path / "d.npz")
    save_directions(path, vectors[:3], (0, 3), [3.0, 2.0, 1.0])
    directions = load_directions(path, CODE_DIM)
    assert directions.layers == (0, 3) and directions.vectors.shape == (3, CODE_DIM)
    np.testing.assert_allclose(directions.values, [3, 2, 1])
    with pytest.raises(LatentsError, match="another model"):
        load_directions(path, 16)
    np.savez(path, vectors=2 * vectors, layers=np.array([0, 3]), values=np.ones(CODE_DIM))
    with pytest.raises(LatentsError, match="not a unit vector"):
        load_directions(path, CODE_DIM)
    np.savez(path, vectors=vectors, layers=np.array([2, 9]), values=np.ones(CODE_DIM))
    with pytest.raises(LatentsError, match="outside"):
        load_directions(path, CODE_DIM)
    save_latents(path, np.zeros((1, CODE_DIM)))
    with pytest.raises(LatentsError, match="a latents file"):
        load_directions(path, CODE_DIM)


def test_layer_ranges():
    assert parse_layers("0-3") == (0, 3) and parse_layers("2") == (2, 2)
    assert parse_layers("coarse") == (0, 1) and parse_layers("fine") == (4, 8)
    assert parse_layers("1,3") == (1, 3) and parse_layers("middle") == LAYER_GROUPS["middle"]
    for text in ("3-1", "0-9", "a-b", "1-2-3", "", "medium", "0,9", "1,"):
        with pytest.raises(ValueError):
            parse_layers(text)


def test_edit_moves_only_the_chosen_layers():
    w = np.zeros((2, 5, CODE_DIM), np.float32)
    vector = np.eye(CODE_DIM, dtype=np.float32)[1]
    moved = edit(w, vector, [1.0, -2.0], (1, 2))
    np.testing.assert_array_equal(moved[:, [0, 3, 4]], 0)
    np.testing.assert_array_equal(moved[0, 1:3, 1], 1)
    np.testing.assert_array_equal(moved[1, 1:3, 1], -2)
    assert np.abs(moved).sum() == 6
    jittor_moved = edit(jt.array(w), vector, 3.0, (0, 0)).numpy()
    np.testing.assert_array_equal(jittor_moved[:, 0, 1], 3)


def test_mix_takes_the_layer_range_from_the_source():
    target, source = np.zeros((4, 2)), np.ones((4, 2))
    np.testing.assert_array_equal(mix(target, source, (1, 2))[:, 0], [0, 1, 1, 0])
    assert mix(["t0", "t1", "t2"], ["s0", "s1", "s2"], (0, 0)) == ["s0", "t1", "t2"]


def test_synthesize_with_one_style_everywhere_equals_the_generator_and_layers_matter():
    jt.set_global_seed(0)
    generator = StyledGenerator(CODE_DIM, 2, 8)
    generator.eval()
    step = 2
    z = jt.randn(2, CODE_DIM)
    noise = [jt.array(m) for m in noise_maps(2, step)]
    with jt.no_grad():
        expected = generator(z, noise=noise, step=step).numpy()
        w = generator.style(z).numpy()
    w_layers = np.repeat(w[:, None], step + 1, axis=1)
    got = render(generator, w_layers, [m.numpy() for m in noise], step, batch=1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the generator's own mixing: layers 0-1 from the second code
    with jt.no_grad():
        mixed = generator([z[:1], z[1:]], noise=[m[:1] for m in noise], step=step,
                          mixing_range=(0, 1)).numpy()
        ours = synthesize(generator, jt.array(mix(w_layers[0], w_layers[1], (0, 1))[None]),
                          [m[:1] for m in noise], step).numpy()
    np.testing.assert_allclose(ours, mixed, atol=1e-5)
    assert np.abs(ours - expected[:1]).max() > 1e-2
    with pytest.raises(ValueError, match="layers"):
        synthesize(generator, jt.array(w_layers[:, :2]), noise, step)
