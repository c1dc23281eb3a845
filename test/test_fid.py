"""metrics/inception.py and metrics/fid.py against pytorch-fid, without PyTorch and without the
real weights: tools/make_fid_fixtures.py ran pytorch-fid's own InceptionV3 on seeded weights and
fixed images, and its formulas on small feature sets; the results are the committed fixtures."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from files.checkpoint import write_torch_file
from metrics import fid, inception
from tools.make_fid_fixtures import (KEYS_FILE, REFERENCE_FILE, fixture_images, seeded_weights)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHER_NETWORK = os.path.join(ROOT, "test", "fixtures", "torch_other_network_zip.model")


def pytorch_fid_keys():
    with open(KEYS_FILE) as f:
        return [(key, tuple(shape)) for key, shape in json.load(f)]


def seeded_weight_file(folder):
    """pytorch-fid's key names and shapes with the fixture script's seeded values, written by
    the project's own torch writer; returns its path."""
    path = os.path.join(str(folder), inception.WEIGHTS_NAME)
    if not os.path.exists(path):
        write_torch_file(seeded_weights(pytorch_fid_keys()), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return seeded_weight_file(tmp_path_factory.mktemp("inception"))


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE_FILE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_the_architecture_has_pytorch_fids_keys_and_shapes_in_its_order():
    keys = [(k, s) for k, s in pytorch_fid_keys() if not k.endswith("num_batches_tracked")]
    assert keys == [(k, tuple(s)) for k, s in inception.expected_shapes().items()]
    assert len(inception.FIDInceptionV3().convolutions()) == 94


def test_features_match_pytorch_fids_inception(weights, reference):
    model = inception.load_weights(weights)
    for images in fixture_images():
        ours = inception.features(model, images, batch=1)
        theirs = reference[f"features_{images.shape[2]}px"]
        assert ours.shape == theirs.shape == (len(images), inception.FEATURES)
        assert theirs.max() > 1 and theirs.mean() > 0.1    # finite, not vanishing
        difference = np.abs(ours - theirs).max() / np.abs(theirs).max()
        assert difference <= 1e-4, f"{images.shape[2]} px: {difference:.2e}"


def test_resize_is_pytorchs_bilinear_without_align_corners():
    low, high, weight = inception.bilinear_taps(2, 4)   # sources -0.25 (0), 0.25, 0.75, 1.25
    assert low.tolist() == [0, 0, 0, 1] and high.tolist() == [1, 1, 1, 1]
    assert weight.tolist() == [0.0, 0.25, 0.75, 0.25]
    pixels = np.array([0, 255], np.uint8).reshape(1, 1, 1, 2).repeat(3, axis=1).repeat(2, axis=2)
    x = inception.to_inception_input(pixels, size=4)
    assert x[0, 0, 0].tolist() == [-1.0, -0.5, 0.5, 1.0]


def test_frechet_distance_matches_pytorch_fid(reference):
    for first, second in (("a", "b"), ("a", "few"), ("constant", "b")):
        result = fid.fid(reference[f"set_{first}"], reference[f"set_{second}"])
        expected = float(reference[f"fd_{first}_{second}"])
        assert result.offset == 0.0
        assert abs(result.distance - expected) <= 1e-6 * expected, (first, second)
    same = fid.fid(reference["set_a"], reference["set_a"])
    assert abs(same.distance) < 1e-9 and same.offset == 0.0


def test_a_square_root_that_is_not_finite_takes_pytorch_fids_offset(reference, monkeypatch):
    real_trace, calls = fid.trace_sqrt_product, []

    def nan_first(sigma1, sigma2):
        calls.append(1)
        return float("nan") if len(calls) == 1 else real_trace(sigma1, sigma2)

    monkeypatch.setattr(fid, "trace_sqrt_product", nan_first)
    result = fid.fid(reference["set_a"], reference["set_few"])
    expected = float(reference["fd_a_few_offset"])
    assert result.offset == fid.FID_OFFSET and len(calls) == 2
    assert abs(result.distance - expected) <= 1e-6 * expected
    assert abs(result.distance - float(reference["fd_a_few"])) > 1e-4   # the offset shows


def test_kid_matches_the_papers_unbiased_estimator(reference):
    for name, second, subsets, size in (("kid_a_b", "b", 10, 50), ("kid_a_few", "few", 5, 1000)):
        result = fid.kid(reference["set_a"], reference[f"set_{second}"], subsets, size, seed=3)
        mean, std = reference[name]
        assert result.mean == pytest.approx(mean, rel=1e-9)
        assert result.std == pytest.approx(std, rel=1e-9)
        assert result.subsets == subsets and result.subset_size == min(size, 30 if
                                                                        second == "few" else 50)


def refusal(path):
    with pytest.raises(inception.InceptionWeightsError) as error:
        inception.load_weights(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_truncated_foreign_and_code_running_files_are_refused_in_one_line(weights, tmp_path):
    truncated = tmp_path / "truncated.pth"
    with open(weights, "rb") as f:
        truncated.write_bytes(f.read(os.path.getsize(weights) // 2))
    assert "damaged or truncated zip" in refusal(truncated)

    assert "not pytorch-fid's Inception weights" in refusal(OTHER_NETWORK)
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = seeded_weights(pytorch_fid_keys())
    state["Mixed_6b.branch7x7_2.conv.weight"] = state["Mixed_6b.branch7x7_2.conv.weight"][..., :3]
    write_torch_file(state, str(wrong_shape))
    assert ("Mixed_6b.branch7x7_2.conv.weight has shape (128, 128, 1, 3), expected "
            "(128, 128, 1, 7)") in refusal(wrong_shape)

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this ran",))

    unsafe = tmp_path / "unsafe.pth"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"fc.weight": RunsCode()}, protocol=2))
    message = refusal(unsafe)
    assert "refused" in message and ("posix.system" in message or "os.system" in message)
    assert "no such file" in refusal(tmp_path / "absent.pth")


def test_real_feature_cache_is_used_only_under_its_exact_key(tmp_path):
    key = dict(format=fid.CACHE_FORMAT, files="abc", size=32, n=3, seed=0, weights_sha256="f")
    features = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    path = fid.cache_path(str(tmp_path / "cache"), str(tmp_path / "data"), 32)
    assert fid.read_cached_features(path, key) == (None, None)
    fid.write_cached_features(path, key, features)
    cached, why = fid.read_cached_features(path, key)
    np.testing.assert_array_equal(cached, features)
    assert why is None and cached.dtype == np.float32
    cached, why = fid.read_cached_features(path, dict(key, files="abd", n=4))
    assert cached is None and why == "computed for another files, n; recomputing"
    with open(path, "wb") as f:
        f.write(b"not an npz")
    cached, why = fid.read_cached_features(path, key)
    assert cached is None and why.startswith("unreadable") and why.endswith("recomputing")


def test_folder_fingerprint_changes_with_any_file(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"12345")
    first = fid.folder_fingerprint(str(tmp_path), ["a.png", "b.png"])
    (tmp_path / "b.png").write_bytes(b"123456")
    assert fid.folder_fingerprint(str(tmp_path), ["a.png", "b.png"]) != first
    assert fid.folder_fingerprint(str(tmp_path), ["a.png"]) != first
