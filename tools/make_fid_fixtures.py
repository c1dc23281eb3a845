"""Makes the fixtures of test/test_fid.py with pytorch-fid itself. Run by hand, never in CI, from
the repository root in a throwaway environment that has PyTorch, torchvision and pytorch-fid
(never a dependency of this project)::

    python3 -m venv /tmp/fidenv --system-site-packages
    /tmp/fidenv/bin/pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid
    /tmp/fidenv/bin/python -m tools.make_fid_fixtures

It writes two small files under test/fixtures/ and no weight file:

* ``fid_keys.json``: pytorch-fid's ``fid_inception_v3().state_dict()`` keys in their order, with
  their shapes (what the weight file holds);
* ``fid_reference.npz``: the 2048-d features pytorch-fid's own ``InceptionV3()`` gives for the
  images of ``fixture_images`` with the weights of ``seeded_weights``; small feature sets with
  the Fréchet distance of pytorch-fid's ``calculate_frechet_distance`` (once through its
  offset branch too); KID values from a direct transcription of the KID paper's unbiased
  estimator, in PyTorch (pytorch-fid has no KID).

``seeded_weights`` and ``fixture_images`` use numpy alone, so the test rebuilds the same weights
and images without PyTorch and writes the weights with ``files.checkpoint.write_torch_file``.
"""
import os
import sys
import tempfile

import numpy as np

from tools.fixtures import FIXTURES, write_keys_and_reference

KEYS_FILE = os.path.join(FIXTURES, "fid_keys.json")
REFERENCE_FILE = os.path.join(FIXTURES, "fid_reference.npz")
WEIGHT_SEED = 25
IMAGE_SEED = 7
SET_SEED = 11
KID_SEED = 3
# (images, side): a small side that the 299 px resize enlarges, and one it samples down
IMAGE_BATCHES = ((2, 32), (2, 400))
SET_DIMS = 48


def seeded_weights(keys, seed=WEIGHT_SEED):
    """``{key: array}`` for ``keys`` = [(key, shape), ...] in the file's order, drawn from
    ``np.random.default_rng(seed)`` in that order. Convolutions are He-scaled and batch norms
    near the identity, so that activations stay of order 1 through all 94 convolutions."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in keys:
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            weights[key] = np.array(0, np.int64)
        elif key.endswith("conv.weight"):
            fan_in = int(np.prod(shape[1:]))
            weights[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif key.endswith("bn.weight") or key.endswith("bn.running_var"):
            weights[key] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
            weights[key] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
        elif key == "fc.weight":
            weights[key] = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        elif key == "fc.bias":
            weights[key] = np.zeros(shape, np.float32)
        else:
            raise ValueError(f"no rule for the key {key}")
    return weights


def fixture_images(seed=IMAGE_SEED):
    """[(N, 3, S, S) uint8] for each of IMAGE_BATCHES: smooth colour gradients plus noise."""
    rng = np.random.default_rng(seed)
    batches = []
    for count, side in IMAGE_BATCHES:
        grid = np.linspace(0, 1, side)
        images = np.empty((count, 3, side, side), np.uint8)
        for i in range(count):
            phase = rng.uniform(0, 2 * np.pi, 3)
            freq = rng.uniform(1, 6, 3)
            smooth = np.stack([0.5 + 0.5 * np.sin(freq[c] * (grid[:, None] + 2 * grid[None, :])
                                                  * np.pi + phase[c]) for c in range(3)])
            noisy = smooth * 200 + rng.uniform(0, 55, (3, side, side))
            images[i] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        batches.append(images)
    return batches


def feature_sets(seed=SET_SEED, dims=SET_DIMS):
    """Small non-negative feature sets (like pool features) for the distance checks: ``a`` and
    ``b`` of more images than dimensions, ``few`` of fewer, ``constant`` with 3 features that
    never vary (dead ReLUs)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dims, dims)) / np.sqrt(dims)
    a = np.maximum(rng.standard_normal((120, dims)) @ mix + 0.3, 0)
    b = np.maximum(rng.standard_normal((100, dims)) @ (mix * 1.1) + 0.4, 0)
    few = np.maximum(rng.standard_normal((30, dims)) @ mix + 0.35, 0)
    constant = a.copy()
    constant[:, :3] = 0.25
    return {name: value.astype(np.float32) for name, value in
            dict(a=a, b=b, few=few, constant=constant).items()}


def kid_reference(real, fake, subsets, subset_size, seed):
    """The KID paper's unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over subsets, in
    PyTorch (float64) with explicit off-diagonal masks; subsets drawn as metrics/fid.py draws
    them (real first, then fake, each without replacement)."""
    import torch
    rng = np.random.default_rng(seed)
    m = min(len(real), len(fake), subset_size)
    values = []
    for _ in range(subsets):
        x = torch.from_numpy(real[rng.choice(len(real), m, replace=False)].astype(np.float64))
        y = torch.from_numpy(fake[rng.choice(len(fake), m, replace=False)].astype(np.float64))
        d = x.shape[1]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = ~torch.eye(m, dtype=torch.bool)
        values.append(float(kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1))
                            - 2 * kxy.sum() / (m * m)))
    return np.mean(values), np.std(values)


def pytorch_fid_keys():
    """[(key, shape)] of pytorch-fid's FID Inception, read off the model it builds."""
    import torch
    import pytorch_fid.inception as pfi
    seen = {}
    original = torch.nn.Module.load_state_dict

    def record(module, state_dict, *args, **kwargs):
        seen.update((k, list(v.shape)) for k, v in module.state_dict().items())
        return None

    pfi.load_state_dict_from_url = lambda *a, **k: {}
    torch.nn.Module.load_state_dict = record
    try:
        pfi.fid_inception_v3()
    finally:
        torch.nn.Module.load_state_dict = original
    return list(seen.items())


def main():
    import torch
    import pytorch_fid.inception as pfi
    from pytorch_fid import fid_score

    torch.set_num_threads(1)
    keys = pytorch_fid_keys()
    weights = seeded_weights(keys)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.pth")
        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, path)
        pfi.load_state_dict_from_url = lambda *a, **k: torch.load(path)
        model = pfi.InceptionV3([3]).eval()          # loads strictly: every key, every shape
    reference = {}
    with torch.no_grad():
        for images in fixture_images():
            x = torch.from_numpy(images.astype(np.float32) / 255)   # what ToTensor gives
            out = model(x)[0].squeeze(3).squeeze(2).numpy()
            reference[f"features_{images.shape[2]}px"] = out.astype(np.float32)
            print(f"{images.shape[2]} px: features mean {out.mean():.4f}, max {out.max():.4f}")

    sets = feature_sets()
    reference.update({f"set_{k}": v for k, v in sets.items()})
    statistics = {k: (np.mean(v.astype(np.float64), axis=0), np.cov(v.astype(np.float64),
                                                                    rowvar=False))
                  for k, v in sets.items()}
    for first, second in (("a", "b"), ("a", "few"), ("constant", "b")):
        value = fid_score.calculate_frechet_distance(*statistics[first], *statistics[second])
        reference[f"fd_{first}_{second}"] = np.float64(value)
        print(f"Fréchet distance {first}-{second}: {value!r}")
    # pytorch-fid's offset branch, taken when scipy's sqrtm gives non-finite values: made to
    # happen by answering the first sqrtm call with NaNs
    real_sqrtm, calls = fid_score.linalg.sqrtm, []

    def failing_first(matrix, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return np.full_like(matrix, np.nan), 0.0
        return real_sqrtm(matrix)

    fid_score.linalg.sqrtm = failing_first
    try:
        value = fid_score.calculate_frechet_distance(*statistics["a"], *statistics["few"])
    finally:
        fid_score.linalg.sqrtm = real_sqrtm
    reference["fd_a_few_offset"] = np.float64(value)
    print(f"Fréchet distance a-few with the offset: {value!r}")
    for name, real, fake, subsets, size in (("kid_a_b", "a", "b", 10, 50),
                                            ("kid_a_few", "a", "few", 5, 1000)):
        mean, std = kid_reference(sets[real], sets[fake], subsets, size, KID_SEED)
        reference[name] = np.array([mean, std])
        print(f"KID {real}-{fake} ({subsets} subsets of {min(size, len(sets[fake]))}): "
              f"{mean!r} +- {std!r}")

    write_keys_and_reference(KEYS_FILE, keys, REFERENCE_FILE, reference)


if __name__ == "__main__":
    sys.exit(main())
