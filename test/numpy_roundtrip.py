"""Run by test_numpy2.py in an environment of its own: numpy arrays through Jittor and back
(every dtype, contiguous and not), numpy scalars as indices, and a seeded narrow generator's
images, written to the .npz file given, for comparison across numpy 1 and 2.

    python test/numpy_roundtrip.py OUT.npz
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt  # noqa: E402
import numpy as np  # noqa: E402

from model import StyledGenerator  # noqa: E402

DTYPES = ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool")


def main(out):
    rng = np.random.default_rng(0)
    seen = []
    for dtype in DTYPES:
        array = (rng.standard_normal((3, 5, 7)) * 50).astype(dtype)
        for part in (array, array[:, 1::2]):
            back = jt.array(part).numpy()
            # 64-bit arrays may come back as 32-bit ones (Jittor's auto_convert_64_to_32)
            assert back.shape == part.shape and np.array_equal(part.astype(back.dtype), back), dtype
            seen.append(f"{dtype}->{back.dtype}")
    rows = jt.array(np.arange(24, dtype=np.float32).reshape(4, 6))
    assert np.array_equal(rows[np.int64(2)].numpy(), np.arange(12, 18, dtype=np.float32))
    assert float(rows[np.int32(1), np.int64(3)].numpy().reshape(())) == 9.0
    jt.set_global_seed(3)
    generator = StyledGenerator(code_dim=16, n_mlp=2, width=16)
    z = jt.array(np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32))
    noise = [jt.array(np.random.default_rng(2 + i).standard_normal(
        (2, 1, 4 * 2 ** i, 4 * 2 ** i)).astype(np.float32)) for i in range(3)]
    with jt.no_grad():
        images = generator(z, noise=noise, step=2, alpha=1).numpy()
    np.savez(out, images=images, dtypes=np.array(seen), numpy=np.array(np.__version__))


if __name__ == "__main__":
    main(sys.argv[1])
