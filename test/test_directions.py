"""latents/sefa.py and directions.py: SeFa directions from a generator's style weights."""
import numpy as np
import pytest

from cli import UsageError
from directions import build_parser, main
from files.checkpoint import atomic_save
from files.latents import load_directions
from helpers import seeded_generator
from latents.sefa import sefa_directions, style_weights

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
    """What SeFa maximises: |A n| over unit n (images follow on a trained model: docs/latents.md)."""
    vectors, _ = sefa_directions(generator, (0, 2))
    weights = style_weights(generator, (0, 2))
    unit_rows = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    random_vectors = rng.standard_normal((32, CODE_DIM))
    random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
    top_change = np.linalg.norm(unit_rows @ vectors[0])
    assert top_change > np.linalg.norm(unit_rows @ random_vectors.T, axis=0).max()


def test_directions_py_writes_a_file_generate_reads(tmp_path, generator, capsys):
    checkpoint = str(tmp_path / "g.model")
    atomic_save({k: v.numpy() for k, v in generator.state_dict().items()}, checkpoint)
    out = str(tmp_path / "d.npz")
    main(build_parser().parse_args([checkpoint, "--layers", "1-2", "--top", "3", "--out", out]))
    directions = load_directions(out, CODE_DIM)
    assert directions.layers == (1, 2) and len(directions.vectors) == 3
    np.testing.assert_allclose(directions.vectors, sefa_directions(generator, (1, 2))[0][:3])
    assert "wrote 3 directions of layers 1-2" in capsys.readouterr().out
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
