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
