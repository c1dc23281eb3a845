"""The patched Jittor with numpy 2 (patches/jittor-1.3.11/0005-numpy2.patch): in an environment
of its own with numpy 2.3, the same arrays back from Jittor and the same seeded images as with
the project's numpy 1.26 (test/numpy_roundtrip.py in both). Jittor compiles its core once for
that environment (about 2 minutes here)."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY2 = "numpy==2.3.5"
ONEDNN = ("onednn-cpu-gomp==2022.2.1", "onednn-devel-cpu-gomp==2022.2.1")


def run(*args, timeout=1200):
    done = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the oneDNN wheels are x86_64 only")
def test_numpy_2_gives_the_arrays_and_images_numpy_1_gives(tmp_path):
    wheel = run("env", f"PYTHON={sys.executable}", "bash", "tools/patched_jittor.sh",
                tmp_path / "wheel").stdout.split()[-1]
    venv = tmp_path / "numpy2"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, NUMPY2,
        "pillow", "tqdm", "lmdb", *ONEDNN)
    run(python, "test/numpy_roundtrip.py", tmp_path / "numpy2.npz")
    run(sys.executable, "test/numpy_roundtrip.py", tmp_path / "numpy1.npz")
    two, one = np.load(tmp_path / "numpy2.npz"), np.load(tmp_path / "numpy1.npz")
    assert str(two["numpy"]).startswith("2.") and str(one["numpy"]).startswith("1.")
    assert list(two["dtypes"]) == list(one["dtypes"])
    assert np.array_equal(two["images"], one["images"])
