"""The numbers of docs/latents.md: projection round trip (W, W+), held-out images against the
mean w, time per image, and SeFa directions against random ones.

    python -m tools.latents_numbers GENERATOR TRAIN_STATE HELDOUT_FOLDER --size 32
"""
import argparse
import os
import time

import numpy as np

import jittor_env  # noqa: F401  (prepares Jittor's environment before it is imported)
import jittor as jt

from files.checkpoint import load_generator
from files.images import list_images
from files.grid import to_uint8_image
from latents.projection import Schedule, load_discriminator, project, psnr
from latents.sefa import sefa_directions
from latents.synthesis import edit, render
from model import noise_shapes, step_for_size
from PIL import Image


def as_saved(images):
    """Images as a PNG would hold them (8 bits), back in [-1, 1]."""
    return np.stack([to_uint8_image(image).transpose(2, 0, 1) for image in images]
                    ).astype(np.float32) / 127.5 - 1


def fit(generator, discriminator, targets, step, w_plus, steps):
    started = time.perf_counter()
    result = project(generator, targets, step, discriminator, w_plus, Schedule(steps=steps))
    seconds = time.perf_counter() - started
    return result, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("generator")
    parser.add_argument("train_state")
    parser.add_argument("heldout")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    step = step_for_size(args.size)
    generator, info = load_generator(args.generator)
    discriminator, missing = load_discriminator(args.train_state, info["width"])
    assert missing is None, missing
    jt.set_global_seed(1)
    rng = np.random.default_rng(1)

    with jt.no_grad():
        w = generator.style(jt.randn(args.n, generator.code_dim)).numpy()
    noise = [rng.standard_normal(s).astype(np.float32) for s in noise_shapes(step, args.n)]
    known = as_saved(render(generator, np.repeat(w[:, None], step + 1, 1), noise, step))
    names = list_images(args.heldout)[:args.n]
    heldout = np.stack([np.asarray(Image.open(os.path.join(args.heldout, name)).convert("RGB"),
                                   dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1
                        for name in names])
    print("| targets | space | PSNR mean w (dB) | PSNR projected (dB) | final loss | s per image |")
    print("|---|---|---:|---:|---:|---:|")
    for label, targets in (("generated from known w", known), ("held-out emoji", heldout)):
        for w_plus in (False, True):
            result, seconds = fit(generator, discriminator, targets, step, w_plus, args.steps)
            print(f"| {label} | {'W+' if w_plus else 'W'} | "
                  f"{psnr(result.start_images, targets).mean():.2f} | "
                  f"{psnr(result.images, targets).mean():.2f} | {result.distance.mean():.4f} | "
                  f"{seconds / len(targets):.1f} |", flush=True)

    print()
    print("| layers | top direction | random unit directions (mean of 16) | ratio |")
    print("|---|---:|---:|---:|")
    w_layers = np.repeat(w[:, None], step + 1, axis=1)
    base = render(generator, w_layers, noise, step)
    random_vectors = rng.standard_normal((16, generator.code_dim))
    random_vectors /= np.linalg.norm(random_vectors, axis=1, keepdims=True)
    for layers in ((0, 1), (0, step), (2, step)):
        vectors, _ = sefa_directions(generator, layers)

        def change(vector):  # mean |pixel change| in [0, 255] per unit step (steps of 1 and -1)
            moved = [render(generator, edit(w_layers, vector, s, layers), noise, step)
                     for s in (1.0, -1.0)]
            return np.mean([np.abs(m - base).mean() for m in moved]) * 127.5

        top = change(vectors[0])
        random = np.mean([change(v) for v in random_vectors])
        print(f"| {layers[0]}-{layers[1]} | {top:.2f} | {random:.2f} | {top / random:.2f} |")


if __name__ == "__main__":
    main()
