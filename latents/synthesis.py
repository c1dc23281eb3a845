"""Synthesis from one style per layer, and edits of those styles.

The synthesis network (``model.Generator``) takes one style per layer; W+ (Abdal et al. 2019,
"Image2StyleGAN") lets every synthesis layer i (4 * 2**i px) have a style of its own.
``synthesize`` gives it ``w_layers[:, i]`` at layer i; with the same style at every layer it
equals ``StyledGenerator.execute``.
"""
import numpy as np

import jittor as jt

from model import check_noise, check_step


def synthesize(generator, w_layers, noise, step, alpha=1):
    """Images (n, 3, 4 * 2**step, same) from styles ``w_layers`` (n, L, code_dim), L >= step + 1,
    layer i taking ``w_layers[:, i]``; ``noise`` holds step + 1 maps (n or 1, 1, 4*2**i, 4*2**i).
    ``generator`` is a StyledGenerator (its synthesis network is used, not its mapping);
    ``0 <= alpha < 1`` fades in the newest block as in training."""
    check_step(step)
    if len(w_layers.shape) != 3 or w_layers.shape[1] < step + 1:
        raise ValueError(f"w_layers must be (n, layers >= {step + 1}, code_dim) at step {step}, "
                         f"got {tuple(w_layers.shape)}")
    check_noise(noise[:step + 1], step)
    n = w_layers.shape[0]
    # one map per image: the constant input takes its batch from the first map
    noise = [maps if maps.shape[0] == n else maps.broadcast((n,) + tuple(maps.shape[1:]))
             for maps in noise[:step + 1]]
    return generator.generator([w_layers[:, i] for i in range(step + 1)], noise, step, alpha)


def edit(w_layers, vector, strength, layers):
    """``w_layers`` (n, L, code_dim; numpy or jt.Var) moved by ``strength * vector`` on the
    synthesis layers ``layers = (first, last)`` (inclusive) only: a SeFa edit (Shen & Zhou 2021)
    applied where its directions were found. ``strength`` is a number or one per image (n,)."""
    first, last = layers
    n, count, _ = w_layers.shape
    mask = np.zeros((1, count, 1), dtype=np.float32)
    mask[:, first:last + 1] = 1
    strength = np.asarray(strength, dtype=np.float32).reshape(-1, 1, 1)
    offset = strength * mask * np.asarray(vector, dtype=np.float32).reshape(1, 1, -1)
    if isinstance(w_layers, jt.Var):
        return w_layers + jt.array(offset)
    return np.asarray(w_layers, dtype=np.float32) + offset


def mix(target, source, layers):
    """Copy of ``target`` (L, ...) with the entries of layers ``first..last`` taken from
    ``source``: per-layer styles (or noise maps) of one image with a layer range of another's
    (paper section 3.1, style mixing)."""
    first, last = layers
    if isinstance(target, np.ndarray):
        mixed = target.copy()
        mixed[first:last + 1] = source[first:last + 1]
        return mixed
    return [theirs if first <= i <= last else ours
            for i, (ours, theirs) in enumerate(zip(target, source))]


@jt.no_grad()
def render(generator, w_layers, noise, step, batch=16):
    """Images (n, 3, s, s) as numpy from numpy styles ``w_layers`` (n, L, code_dim) and noise
    maps ``noise`` (step + 1 arrays (n, 1, 4*2**i, 4*2**i)), ``batch`` images a pass."""
    parts = []
    for start in range(0, len(w_layers), batch):
        part_noise = [jt.array(maps[start:start + batch]) for maps in noise[:step + 1]]
        parts.append(synthesize(generator, jt.array(w_layers[start:start + batch]), part_noise,
                                step).numpy())
    return np.concatenate(parts, axis=0)
