"""Prints how far this port is from NVIDIA's code on the fixtures of test/fixtures/official/
(max |diff| / max |official|, and the 8-bit images' largest difference), the table of
docs/pretrained.md:

    python -m tools.official_errors
"""
import os

import numpy as np

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt  # noqa: E402

from files.generators import load_generator  # noqa: E402
from files.grid import official_uint8  # noqa: E402
from files.nvidia_pickle import read_nvidia_pickle  # noqa: E402
from nvidia.official_files import build_discriminator  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test",
                        "fixtures", "official")


def relative(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@jt.no_grad()
def errors(name):
    path = os.path.join(FIXTURES, f"{name}.pkl")
    expected = np.load(os.path.join(FIXTURES, f"{name}_expected.npz"))
    generator, _ = load_generator(path)
    step, z = generator.max_step, jt.array(expected["z"])
    noise = generator.noise_maps(step, 1, stored=True)
    rows = {"mapping": relative(generator.style(z).numpy(), expected["dlatents"][:, 0])}
    for label, key, settings in (
            ("psi 1", "psi1", {}),
            ("psi 0.7, cutoff 8", "psi07", dict(mean_style=jt.array(generator.dlatent_avg),
                                                style_weight=0.7, truncation_cutoff=8))):
        images = generator(z, noise=noise, step=step, alpha=1, **settings).numpy()
        rows[label] = relative(images, expected[f"images_{key}"])
        rows[f"{label}, 8-bit"] = int(np.abs(official_uint8(images).astype(int)
                                             - expected[f"uint8_{key}"]).max())
    if "images_mixed" in expected:
        cutoff = int(expected["mixing_cutoff"])
        other = generator.style(jt.array(expected["z"][expected["mixed_from"]]))
        w = generator.style(z)
        styles = [w if layer < cutoff else other for layer in range(2 * (step + 1))]
        rows["mixing"] = relative(generator.generator(styles, noise, step).numpy(),
                                  expected["images_mixed"])
    for lod, official in zip(expected.get("lods", []), expected.get("images_lod", [])):
        generator.lod = float(lod)
        rows[f"lod {lod:g}"] = relative(generator(z, noise=noise, step=step, alpha=1).numpy(),
                                        official)
    generator.lod = 0.0
    discriminator = build_discriminator(read_nvidia_pickle(path).D, path)
    size = int(expected["resolution"])
    rows["D"] = max(relative(discriminator(jt.array(np.random.RandomState(
        int(expected["d_seed"]) + b).uniform(-1, 1, (b, 3, size, size)).astype(np.float32))
        ).numpy(), expected[f"d_scores_{b}"]) for b in (1, 2, 4, 8))
    return rows


if __name__ == "__main__":
    for model in ("official32", "official128"):
        for case, value in errors(model).items():
            print(f"{model}\t{case}\t{value:.2g}" if isinstance(value, float)
                  else f"{model}\t{case}\t{value}")
