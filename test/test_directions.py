"""latents/sefa.py and directions.py: SeFa directions from a generator's style weights."""
import numpy as np
import pytest

from runtime.cli import UsageError
from directions import build_parser, main
from files.checkpoint import atomic_save
from files.latents import load_directions
from helpers import seeded_generator
from latents.sefa import (rescale_directions, seeded_mean_style, sefa_directions,
                          style_weights)
from latents.synthesis import edit, render

CODE_DIM, N_MLP, WIDTH = 8, 2, 8


@pytest.fixture(scope="module")
def generator():
    return seeded_generator(CODE_DIM, N_MLP, WIDTH)


def test_directions_are_orthonormal_eigenvectors_sorted_by_eigenvalue(generator):
    vectors, values = sefa_directions(generator, (0, 3))
    assert vectors.shape == (CODE_DIM, CODE_DIM) and values.shape == (CODE_DIM,)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(CODE_DIM), atol=1e-5)
    assert np.all(np.diff(values) <= 0) and values[-1] >= -1e-5
    weights = style_weights(generator, (0, 3))
    assert weights.shape == (4 * 2 * 2 * WIDTH, CODE_DIM)  # 4 layers, 2 AdaINs, scale + bias
    unit_rows = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    gram = unit_rows.T @ unit_rows
    np.testing.assert_allclose(gram @ vectors[0], values[0] * vectors[0], rtol=1e-4, atol=1e-4)
    # other layers, other directions
    assert abs(float(vectors[0] @ sefa_directions(generator, (2, 3))[0][0])) < 0.999


def test_the_top_direction_moves_the_styles_more_than_random_unit_directions(generator):
    """What the authors' SeFa maximises: |A n| over unit n (the images: docs/latents.md)."""
    vectors, _ = sefa_directions(generator, (0, 2))
    weights = style_weights(generator, (0, 2))
    unit_rows = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    random_vectors = rng.standard_normal((32, CODE_DIM))
    random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
    top_change = np.linalg.norm(unit_rows @ vectors[0])
    assert top_change > np.linalg.norm(unit_rows @ random_vectors.T, axis=0).max()


def plant_a_rescale(generator, layer, mean_style, gain=1.0, seed=0):
    """Give both AdaINs of ``layer`` style weights whose first column rescales their output at
    ``mean_style``: A e0 = gain * (A mean_style + b), other columns small and random. Returns e0."""
    import jittor as jt
    rng = np.random.default_rng(seed)
    block = generator.generator.progression[layer]
    for adain in (block.adain1, block.adain2):
        linear = adain.style.linear
        bias = linear.bias.numpy().astype(np.float64)
        weight = 0.1 * rng.standard_normal(tuple(linear.weight_orig.shape))
        weight[:, 0] = 0
        rest = weight @ mean_style + bias
        # A w_mean + b = c w0 + rest must equal c / gain
        weight[:, 0] = gain * rest / (1 - gain * mean_style[0])
        linear.weight_orig = jt.array((weight / linear._scale).astype(np.float32))
    direction = np.zeros(CODE_DIM, dtype=np.float32)
    direction[0] = 1
    return direction


def test_the_default_skips_a_rescale_the_next_instance_norm_cancels():
    """A planted change of layer 1's styles that rescales both AdaINs' outputs tops the authors'
    SeFa yet leaves the images alone (instance norm undoes it); with the mean style it does not
    top the list, and the top direction moves the images."""
    generator = seeded_generator(CODE_DIM, N_MLP, WIDTH, seed=3)
    mean_style = seeded_mean_style(generator).astype(np.float64)
    planted = plant_a_rescale(generator, 1, mean_style)
    layers, step = (1, 1), 2
    w_layers = np.repeat(mean_style[None, None].astype(np.float32), step + 1, axis=1)
    noise = [np.random.default_rng(i).standard_normal((1, 1, 4 * 2 ** i, 4 * 2 ** i))
             .astype(np.float32) for i in range(step + 1)]
    base = render(generator, w_layers, noise, step)

    def change(vector, strength):
        return np.abs(render(generator, edit(w_layers, vector, strength, layers), noise, step)
                      - base).mean()

    # the rescale: (1 + 0.5) and (1 - 0.5) times the AdaINs' outputs, the images unchanged
    assert max(change(planted, 0.5), change(planted, -0.5)) < 1e-3
    plain = sefa_directions(generator, layers)[0]
    assert abs(plain[0] @ planted) > 0.9
    without_rescale = sefa_directions(generator, layers, mean_style)[0]
    assert abs(without_rescale[0] @ planted) < 0.5
    moved = min(change(without_rescale[0], 0.5), change(without_rescale[0], -0.5))
    assert moved > 0.02
    assert max(change(plain[0], 0.5), change(plain[0], -0.5)) < 0.5 * moved
    np.testing.assert_allclose(without_rescale @ without_rescale.T, np.eye(CODE_DIM), atol=1e-5)
    # each AdaIN's rescale direction is the normalised mean style over the row lengths
    weights = style_weights(generator, layers)
    rescales = rescale_directions(generator, layers, mean_style)
    assert len(rescales) == 2
    first = weights[:2 * WIDTH]
    expected = (first @ mean_style + generator.generator.progression[1].adain1.style.linear.bias
                .numpy()) / np.linalg.norm(first, axis=1)
    np.testing.assert_allclose(rescales[0], expected / np.linalg.norm(expected), rtol=1e-5)


def test_directions_py_writes_a_file_generate_reads(tmp_path, generator, capsys):
    checkpoint = str(tmp_path / "g.model")
    atomic_save({k: v.numpy() for k, v in generator.state_dict().items()}, checkpoint)
    out = str(tmp_path / "d.npz")
    main(build_parser().parse_args([checkpoint, "--layers", "1-2", "--top", "3", "--out", out]))
    directions = load_directions(out, CODE_DIM)
    assert directions.layers == (1, 2) and len(directions.vectors) == 3
    expected = sefa_directions(generator, (1, 2), seeded_mean_style(generator))[0][:3]
    np.testing.assert_allclose(directions.vectors, expected, atol=1e-5)
    assert np.abs(expected - sefa_directions(generator, (1, 2))[0][:3]).max() > 1e-3
    assert "wrote 3 directions" in capsys.readouterr().out
    main(build_parser().parse_args([checkpoint, "--layers", "1-2", "--plain", "--out", out]))
    np.testing.assert_allclose(load_directions(out, CODE_DIM).vectors,
                               sefa_directions(generator, (1, 2))[0], atol=1e-6)
    for flags in (["--layers", "3-1"], ["--layers", "x"], ["--top", "0"]):
        with pytest.raises(UsageError):
            main(build_parser().parse_args([checkpoint, "--out", out, *flags]))


def test_layers_above_a_training_checkpoints_size_are_refused(tmp_path, generator):
    state = {k: v.numpy() for k, v in generator.state_dict().items()}
    checkpoint = str(tmp_path / "train.model")
    atomic_save({"generator": state, "discriminator": {}, "g_running": state, "g_optimizer": {},
                 "d_optimizer": {}, "step": 1, "alpha": 1.0, "used_sample": 0, "iteration": 1,
                 "args": {"code_dim": CODE_DIM, "n_mlp": N_MLP, "width": WIDTH}}, checkpoint)
    with pytest.raises(UsageError, match="untrained"):
        main(build_parser().parse_args([checkpoint, "--layers", "0-3",
                                        "--out", str(tmp_path / "d.npz")]))
    assert not (tmp_path / "d.npz").exists()
