"""What the fixture makers that run beside PyTorch share: where the fixtures live, and writing
their two files."""
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures")


def write_keys_and_reference(keys_file, keys, reference_file, reference):
    """``keys`` ([(key, shape)]) as compact JSON, ``reference`` ({name: array}) as a compressed
    .npz, each file's size printed."""
    with open(keys_file, "w") as f:
        json.dump([[k, list(shape)] for k, shape in keys], f, separators=(",", ":"))
    np.savez_compressed(reference_file, **reference)
    print(f"wrote {keys_file} ({os.path.getsize(keys_file)} bytes) and {reference_file} "
          f"({os.path.getsize(reference_file)} bytes)")
