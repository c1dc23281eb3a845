"""Makes the fixtures of test/test_lpips.py with the lpips package itself. Run by hand, never in
CI, from the repository root in a throwaway environment that has PyTorch, torchvision and lpips
(never a dependency of this project)::

    python3 -m venv /tmp/lpenv --system-site-packages
    /tmp/lpenv/bin/pip install torch==2.14.1 torchvision==0.29.1 lpips
    /tmp/lpenv/bin/python -m tools.make_lpips_fixtures

It writes two small files under test/fixtures/ and no weight file:

* ``lpips_keys.json``: the keys and shapes of torchvision's ``vgg16().features`` (what
  ``vgg16-397923af.pth`` holds besides ``classifier.*``) and of the lpips package's
  ``lpips/weights/v0.1/vgg.pth``, read off the package's own files and models;
* ``lpips_reference.npz``: for the image pairs of ``fixture_pairs``, the distances
  ``lpips.LPIPS(net="vgg", version="0.1")`` gives with the weights of ``seeded_weights``
  (``dist_NAME`` (N,), ``layers_NAME`` (5, N): each layer's term), and the gradient of the
  summed distance with respect to the first images of the last pair (``grad_NAME``). The
  package's model is run in float64, so that the references carry its float32 rounding no
  more than they must.

``seeded_weights`` and ``fixture_pairs`` use numpy alone, so the test rebuilds the same
weights and images without PyTorch and writes the weights with
``files.checkpoint.write_torch_file``.
"""
import os
import sys

import numpy as np

from tools.fixtures import FIXTURES, write_keys_and_reference

KEYS_FILE = os.path.join(FIXTURES, "lpips_keys.json")
REFERENCE_FILE = os.path.join(FIXTURES, "lpips_reference.npz")
WEIGHT_SEED = 26
IMAGE_SEED = 8
# (name, pairs, height, width): a batch of several pairs, a larger size, and odd sides that
# the pools crop (36 -> 18 -> 9 -> 4 -> 2, 52 -> 26 -> 13 -> 6 -> 3), not square
PAIRS = (("32px", 3, 32, 32), ("64px", 2, 64, 64), ("36x52px", 1, 36, 52))
GRADIENT_PAIR = "36x52px"


def seeded_weights(keys, seed=WEIGHT_SEED):
    """``{key: array}`` for ``keys`` = [(key, shape), ...] in their order, drawn from
    ``np.random.default_rng(seed)`` in that order: VGG convolutions He-scaled (activations of
    order 1 through the 13 layers), small biases, linear layers positive as trained ones are."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in keys:
        shape = tuple(shape)
        if key.startswith("features.") and key.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            weights[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif key.startswith("features.") and key.endswith(".bias"):
            weights[key] = rng.uniform(-0.05, 0.05, shape).astype(np.float32)
        elif key.startswith("lin"):
            weights[key] = rng.uniform(0.0, 0.3, shape).astype(np.float32)
        else:
            raise ValueError(f"no rule for the key {key}")
    return weights


def fixture_pairs(seed=IMAGE_SEED):
    """[(name, x0, x1)], float32 (N, 3, H, W) in [-1, 1] for each of PAIRS: smooth colour
    waves plus noise, and each second image the first one changed by a shifted wave and more
    noise (near pairs, as a projection sees), except the first pair's, an unrelated image."""
    rng = np.random.default_rng(seed)

    def image(height, width):
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        phase, freq = rng.uniform(0, 2 * np.pi, 3), rng.uniform(1, 6, 3)
        waves = np.stack([np.sin(freq[c] * (y + 2 * x) * np.pi + phase[c]) for c in range(3)])
        return 0.7 * waves + rng.uniform(-0.3, 0.3, (3, height, width))

    pairs = []
    for name, count, height, width in PAIRS:
        first = np.stack([image(height, width) for _ in range(count)])
        second = np.stack([image(height, width) if i == 0 else
                           0.8 * first[i] + 0.2 * image(height, width)
                           for i in range(count)])
        pairs.append((name, np.clip(first, -1, 1).astype(np.float32),
                      np.clip(second, -1, 1).astype(np.float32)))
    return pairs


def package_keys():
    """[(key, shape)]: torchvision's ``vgg16().features`` state dict, then the lpips
    package's own ``weights/v0.1/vgg.pth``."""
    import torch
    import torchvision
    import lpips
    features = torchvision.models.vgg16().features.state_dict()
    keys = [(f"features.{k}", list(v.shape)) for k, v in features.items()]
    lin_file = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
    lins = torch.load(lin_file, map_location="cpu", weights_only=True)
    return keys + [(k, list(v.shape)) for k, v in lins.items()]


def lpips_model(weights):
    """The lpips package's ``LPIPS(net="vgg", version="0.1")`` holding ``weights`` (its VGG
    slices take torchvision's ``features.N`` by index), in float64, eval mode."""
    import torch
    import lpips
    model = lpips.LPIPS(net="vgg", version="0.1", pretrained=False, pnet_rand=True,
                        verbose=False)
    state = model.state_dict()
    slices = {}
    for key in state:
        if key.startswith("net.slice"):
            _, _, index, kind = key.split(".")
            slices[f"features.{index}.{kind}"] = key
    loaded = {slices.get(k, k): torch.from_numpy(v) for k, v in weights.items()}
    # its buffers keep their values; "lins.K" is the same module as "linK", listed twice
    left = {k for k in state if not k.startswith(("scaling_layer.", "lins."))}
    assert set(loaded) == left, "the seeded weights do not cover the package's model"
    model.load_state_dict(loaded, strict=False)
    return model.double().eval()


def main():
    import torch

    torch.set_num_threads(1)
    keys = package_keys()
    weights = seeded_weights(keys)
    model = lpips_model(weights)
    model32 = lpips_model(weights).float()
    reference, worst32 = {}, 0.0
    for name, first, second in fixture_pairs():
        x0 = torch.from_numpy(first.astype(np.float64)).requires_grad_(name == GRADIENT_PAIR)
        x1 = torch.from_numpy(second.astype(np.float64))
        total, layers = model(x0, x1, retPerLayer=True)
        reference[f"dist_{name}"] = total.detach().numpy().reshape(-1)
        reference[f"layers_{name}"] = np.stack([v.detach().numpy().reshape(-1) for v in layers])
        if name == GRADIENT_PAIR:
            total.sum().backward()
            reference[f"grad_{name}"] = x0.grad.numpy().astype(np.float32)
        with torch.no_grad():
            single = model32(torch.from_numpy(first), torch.from_numpy(second)).numpy().reshape(-1)
        difference = np.abs(single - reference[f"dist_{name}"]) / reference[f"dist_{name}"]
        worst32 = max(worst32, float(difference.max()))
        print(f"{name}: LPIPS {np.round(reference[f'dist_{name}'], 6).tolist()}, per layer "
              f"{np.round(reference[f'layers_{name}'][:, 0], 6).tolist()} (first pair)")
    print(f"the package in float32 against float64: {worst32:.2e} relative at most")

    write_keys_and_reference(KEYS_FILE, keys, REFERENCE_FILE, reference)


if __name__ == "__main__":
    sys.exit(main())
