"""SeFa: edit directions in W without labels (Shen & Zhou, CVPR 2021, "Closed-Form
Factorization of Latent Semantics in GANs").

A style moves the AdaIN scales and biases of layer i through the affine map ``A_i w + b``; the
unit direction n that moves them most, over the chosen layers, maximises ``|A n|^2``, so the
directions are the eigenvectors of ``A^T A`` where A stacks the chosen layers' affine weights,
largest eigenvalue first. As the authors' code (genforce/sefa) does, each row of A (one AdaIN
scale or bias) is scaled to unit length first, so every channel counts alike whatever its
weight's size. Each layer of this generator has two AdaINs (after its two convolutions), both
driven by the layer's style; both count.

One change that moves the styles is invisible in StyleGAN v1's images: scaling an AdaIN's whole
output, ``(gamma, beta) -> (1 + e) (gamma, beta)``. The next AdaIN instance-normalises what the
convolution and LeakyReLU make of it, and both are positively homogeneous (up to the conv bias
and the noise), so the scale cancels. ``A^T A`` counts that change like any other; on the demo's
model, 500 iterations after 32 px has faded in, the authors' top direction over layers 2-3 is
30-70 % such a rescale and moves the images no more than a random direction (docs/latents.md;
trained longer, the rescale leaves the top directions and both methods agree). ``mean_style``
removes it: each AdaIN's block of A is projected off the rescale direction at the mean style
``(gamma, beta)(w_mean)`` before the eigen-decomposition, so the directions rank the style
changes the images can show.
The output layer's last AdaIN feeds toRGB rather than an instance norm; its rescale (a contrast
change) is removed as well, so the directions do not depend on the size drawn.
"""
import numpy as np

import jittor as jt

from latents.mean_style import average_style
from model import MAX_STEP

MEAN_STYLE_SEED = 0      # the mean style's latents: the same directions from the same checkpoint


def _affines(generator, layers):
    """(A, b) of each style affine map of sizes ``layers`` (first, last), in layer order: A
    (2 * channels, code_dim) with its run-time scale, and b such that A w + b is the (gamma,
    beta) that scales and shifts the normalised features. NVIDIA's networks store gamma - 1
    (``x * (style + 1)``): their b gets the 1 back."""
    first, last = layers
    top = getattr(generator, "max_step", MAX_STEP)
    if not 0 <= first <= last <= top:
        raise ValueError(f"layers must be 0 <= first <= last <= {top}, got {layers}")
    synthesis = generator.generator
    if not hasattr(synthesis, "progression"):  # nvidia.networks.Synthesis
        affines = []
        for layer in synthesis.layers[2 * first:2 * last + 2]:
            weight = (layer.style.weight * layer.style._coefficient).numpy().astype(np.float64).T
            bias = layer.style.bias.numpy().astype(np.float64)
            bias[:len(bias) // 2] += 1
            affines.append((weight, bias))
        return affines
    return [((adain.style.linear.weight_orig * adain.style.linear._scale).numpy()
             .astype(np.float64), adain.style.linear.bias.numpy().astype(np.float64))
            for block in synthesis.progression[first:last + 1]
            for adain in (block.adain1, block.adain2)]


def _scaled_weights(generator, layers):
    return [weight for weight, _ in _affines(generator, layers)]


def style_weights(generator, layers):
    """The stacked affine weights (rows, code_dim) of the AdaINs of synthesis layers
    ``layers = (first, last)``, inclusive, as the forward pass scales them."""
    return np.concatenate(_scaled_weights(generator, layers), axis=0)


def unit_row_blocks(generator, layers):
    """``style_weights`` split by AdaIN, each row scaled to unit length (the authors' SeFa)."""
    blocks = _scaled_weights(generator, layers)
    return [block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            for block in blocks]


def seeded_mean_style(generator):
    """The mean style (code_dim,) the default directions are taken at: ``average_style`` of the
    latents drawn after seeding MEAN_STYLE_SEED."""
    jt.set_global_seed(MEAN_STYLE_SEED)
    return average_style(generator).numpy()[0]


def rescale_directions(generator, layers, mean_style):
    """Per AdaIN of ``layers``, the unit vector (2 * channels,) along which a change of its unit-row
    affine output ``D^-1 (A w + b)`` (D: the row lengths) rescales the AdaIN's output at
    ``mean_style``: ``D^-1 (gamma, beta)(mean_style)``, normalised. Stacked in AdaIN order."""
    mean_style = np.asarray(mean_style, dtype=np.float64).reshape(-1)
    directions = []
    for weight, bias in _affines(generator, layers):
        style = weight @ mean_style + bias
        direction = style / np.maximum(np.linalg.norm(weight, axis=1), 1e-12)
        directions.append(direction / max(np.linalg.norm(direction), 1e-12))
    return directions


def sefa_directions(generator, layers, mean_style=None):
    """``(vectors, values)``: the unit eigenvectors of A^T A (code_dim, code_dim) as rows,
    sorted by eigenvalue, largest first, and the eigenvalues. A: ``style_weights`` with unit
    rows (the authors' SeFa); with ``mean_style`` (code_dim,) each AdaIN's block of A projected
    off that AdaIN's rescale direction at the mean style (``rescale_directions``), which the
    next instance norm cancels."""
    blocks = unit_row_blocks(generator, layers)
    if mean_style is not None:
        blocks = [block - np.outer(u, u @ block)
                  for block, u in zip(blocks, rescale_directions(generator, layers, mean_style))]
    weights = np.concatenate(blocks)
    values, vectors = np.linalg.eigh(weights.T @ weights)   # ascending, columns
    order = np.argsort(values)[::-1]
    vectors = vectors[:, order].T
    # an eigenvector's sign is arbitrary; fix it so a file is the same on every machine
    signs = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)])
    vectors = vectors * signs[:, None]
    return vectors.astype(np.float32), values[order].astype(np.float32)
