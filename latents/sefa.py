"""SeFa: edit directions in W without labels or sampling (Shen & Zhou, CVPR 2021, "Closed-Form
Factorization of Latent Semantics in GANs").

A style moves the AdaIN scales and biases of layer i through the affine map ``A_i w + b``; the
unit direction n that moves them most, over the chosen layers, maximises ``|A n|^2``, so the
directions are the eigenvectors of ``A^T A`` where A stacks the chosen layers' affine weights,
largest eigenvalue first. As the authors' code (genforce/sefa) does, each row of A (one AdaIN
scale or bias) is scaled to unit length first, so every channel counts alike whatever its
weight's size. Each layer of this generator has two AdaINs (after its two convolutions), both
driven by the layer's style; both count.
"""
import numpy as np

from model import MAX_STEP


def style_weights(generator, layers):
    """The stacked affine weights (rows, code_dim) of the AdaINs of synthesis layers
    ``layers = (first, last)``, inclusive, as the forward pass scales them."""
    first, last = layers
    if not 0 <= first <= last <= MAX_STEP:
        raise ValueError(f"layers must be 0 <= first <= last <= {MAX_STEP}, got {layers}")
    rows = []
    for block in generator.generator.progression[first:last + 1]:
        for adain in (block.adain1, block.adain2):
            linear = adain.style.linear
            rows.append((linear.weight_orig * linear._scale).numpy().astype(np.float64))
    return np.concatenate(rows, axis=0)


def sefa_directions(generator, layers):
    """``(vectors, values)``: the unit eigenvectors of A^T A (code_dim, code_dim) as rows,
    sorted by eigenvalue, largest first, and the eigenvalues. A: ``style_weights`` with unit
    rows."""
    weights = style_weights(generator, layers)
    weights = weights / np.maximum(np.linalg.norm(weights, axis=1, keepdims=True), 1e-12)
    values, vectors = np.linalg.eigh(weights.T @ weights)   # ascending, columns
    order = np.argsort(values)[::-1]
    vectors = vectors[:, order].T
    # an eigenvector's sign is arbitrary; fix it so a file is the same on every machine
    signs = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)])
    vectors = vectors * signs[:, None]
    return vectors.astype(np.float32), values[order].astype(np.float32)
