"""Writes a file shaped like NVIDIA's ``karras2019stylegan-ffhq-1024x1024.pkl`` (the same
networks, variable names and shapes, random values) for timing the official-model path on
machines without the real file (docs/pretrained.md has the numbers and commands):

    python -m tools.bench_nvidia /tmp/ffhq_like.pkl [--resolution 1024]

The pickle is ``(G, D, Gs)`` of a stand-in class that pickles under the name
``dnnlib.tflib.network.Network`` with the official ``__getstate__`` dict, as NVlabs' training
writes it (protocol 4). It is made without TensorFlow; the pixels it gives mean nothing.
"""
import argparse
import copyreg
import pickle
import sys
import types

import numpy as np


class Network:
    """Pickles as ``dnnlib.tflib.network.Network`` with ``state`` as its state."""

    def __init__(self, state):
        self.state = state

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (Network,), self.state


def register_standin():
    """Make ``dnnlib.tflib.network.Network`` resolve to the stand-in, as pickle checks."""
    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["dnnlib.tflib.network"].Network = Network


def nf(stage, fmap_base=8192, fmap_max=512):
    return min(int(fmap_base / 2.0 ** stage), fmap_max)


def state(name, function, variables, components=None, **kwargs):
    return {"version": 3, "name": name, "static_kwargs": kwargs, "components": components or {},
            "build_module_src": "# not carried", "build_func_name": function,
            "variables": list(variables.items())}


def generator(rng, log2, latent=512):
    mapping = {}
    for i in range(8):
        mapping[f"Dense{i}/weight"] = rng.standard_normal((latent, latent), np.float32) * 100
        mapping[f"Dense{i}/bias"] = np.zeros(latent, np.float32)
    synthesis = {"lod": np.float32(0)}
    for i in range(2 * log2 - 2):
        size = 2 ** (i // 2 + 2)
        synthesis[f"noise{i}"] = rng.standard_normal((1, 1, size, size), np.float32)
    for res in range(2, log2 + 1):
        scopes = ("4x4/Const", "4x4/Conv") if res == 2 else (f"{2**res}x{2**res}/Conv0_up",
                                                              f"{2**res}x{2**res}/Conv1")
        channels_in = nf(res - 1) if res == 2 else nf(res - 2)
        for j, scope in enumerate(scopes):
            c = nf(res - 1)
            if res == 2 and j == 0:
                synthesis[f"{scope}/const"] = np.ones((1, c, 4, 4), np.float32)
            else:
                c_in = channels_in if j == 0 else c
                synthesis[f"{scope}/weight"] = rng.standard_normal((3, 3, c_in, c), np.float32)
            synthesis[f"{scope}/Noise/weight"] = np.zeros(c, np.float32)
            synthesis[f"{scope}/bias"] = np.zeros(c, np.float32)
            synthesis[f"{scope}/StyleMod/weight"] = rng.standard_normal((latent, 2 * c), np.float32)
            synthesis[f"{scope}/StyleMod/bias"] = np.zeros(2 * c, np.float32)
        synthesis[f"ToRGB_lod{log2 - res}/weight"] = rng.standard_normal(
            (1, 1, nf(res - 1), 3), np.float32)
        synthesis[f"ToRGB_lod{log2 - res}/bias"] = np.zeros(3, np.float32)
    kwargs = dict(num_channels=3, resolution=2 ** log2, label_size=0)
    return Network(state("G", "G_style", {"lod": np.float32(0),
                                          "dlatent_avg": np.zeros(latent, np.float32)},
                         {"mapping": Network(state("G_mapping", "G_mapping", mapping, **kwargs)),
                          "synthesis": Network(state("G_synthesis", "G_synthesis", synthesis,
                                                     **kwargs))}, **kwargs))


def discriminator(rng, log2):
    v = {"lod": np.float32(0)}
    for res in range(log2, 1, -1):
        c = nf(res - 1)
        v[f"FromRGB_lod{log2 - res}/weight"] = rng.standard_normal((1, 1, 3, c), np.float32)
        v[f"FromRGB_lod{log2 - res}/bias"] = np.zeros(c, np.float32)
        if res > 2:
            r = f"{2**res}x{2**res}"
            v[f"{r}/Conv0/weight"] = rng.standard_normal((3, 3, c, c), np.float32)
            v[f"{r}/Conv0/bias"] = np.zeros(c, np.float32)
            v[f"{r}/Conv1_down/weight"] = rng.standard_normal((3, 3, c, nf(res - 2)), np.float32)
            v[f"{r}/Conv1_down/bias"] = np.zeros(nf(res - 2), np.float32)
    v["4x4/Conv/weight"] = rng.standard_normal((3, 3, nf(1) + 1, nf(1)), np.float32)
    v["4x4/Conv/bias"] = np.zeros(nf(1), np.float32)
    v["4x4/Dense0/weight"] = rng.standard_normal((nf(1) * 16, nf(0)), np.float32)
    v["4x4/Dense0/bias"] = np.zeros(nf(0), np.float32)
    v["4x4/Dense1/weight"] = rng.standard_normal((nf(0), 1), np.float32)
    v["4x4/Dense1/bias"] = np.zeros(1, np.float32)
    return Network(state("D", "D_basic", v, num_channels=3, resolution=2 ** log2, label_size=0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--resolution", type=int, default=1024)
    args = parser.parse_args()
    log2 = int(np.log2(args.resolution))
    rng = np.random.default_rng(0)
    register_standin()
    networks = (generator(rng, log2), discriminator(rng, log2), generator(rng, log2))
    with open(args.out, "wb") as f:
        pickle.dump(networks, f, protocol=4)


if __name__ == "__main__":
    main()
