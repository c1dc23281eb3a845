"""Small helpers several test files share (the training set-up's data folder, /proc lookups)."""
import os

import numpy as np
from PIL import Image


def flat_image_root(root, sizes, n_images, seed=0):
    """root/<size> for each size, each with ``n_images`` flat images of random colours (the
    same colours at every size); returns str(root)."""
    colours = np.random.default_rng(seed).integers(0, 256, (n_images, 3))
    for size in sizes:
        os.makedirs(os.path.join(root, str(size)))
        for i, colour in enumerate(colours):
            Image.new("RGB", (size, size), tuple(int(c) for c in colour)).save(
                os.path.join(root, str(size), f"img{i:02d}.png"))
    return str(root)


def children(pid):
    """Process ids whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def smooth_targets(size, n=3, seed=0):
    """Images a generator does not make exactly: (n, 3, size, size) colour ramps in
    [-0.8, 0.8], float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.stack([np.stack([np.full((size, size), c[0]), xx * c[1], yy * c[2]])
                     for c in rng.uniform(-0.8, 0.8, (n, 3))]).astype(np.float32)


def seeded_generator(code_dim, n_mlp, width, seed=0):
    """A StyledGenerator of that size drawn after ``jt.set_global_seed(seed)``, in eval mode."""
    import jittor as jt
    from model import StyledGenerator
    jt.set_global_seed(seed)
    model = StyledGenerator(code_dim, n_mlp, width)
    model.eval()
    return model
