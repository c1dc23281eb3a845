"""Jittor's CUDA build, compiled on this machine without a GPU (tools/cuda_rehearsal.py) with
this project's patches (patches/jittor-1.3.11, built by tools/patched_jittor.sh): with nvcc 13.0
of /usr/local/cuda-13.0, with CUDA 13.0 from NVIDIA's pip wheels, and on CUDA 12.9's headers;
Jittor as released fails, naming the patch. The slow tests install about 4 GB of NVIDIA's wheels
once (under ~/.cache/stylegan/cuda_wheels) and compile Jittor's core once per toolkit."""
import glob
import hashlib
import os
import re
import subprocess
import sys
import zipfile

import pytest

from runtime import jittor_setup
from tools import cuda_rehearsal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBES = jittor_setup


def run(*args, timeout=1800, **kwargs):
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def test_each_known_failure_names_its_patch_and_every_patch_says_why():
    patches = sorted(glob.glob(os.path.join(ROOT, "patches", "jittor-1.3.11", "*.patch")))
    assert len(patches) == 6
    for path in patches:
        with open(path) as f:
            text = f.read()
        why, diff = text.split("\ndiff --git ", 1)
        assert len(why.strip().splitlines()) >= 3, path    # a title and the reason
        assert "Upstream:" in why, path
    logs = {"0001": "helper_cuda.h:263:18: error: 'struct cudaDeviceProp' has no member named "
                    "\u2018computeMode\u2019",
            "0002": "cub/util_cpp_dialect.cuh:88:8: error: #error CUB requires at least C++17.",
            "0003": "OSError: libcudnn_ops_infer.so: cannot open shared object file",
            "0004": "[f compile_extern.py] CUDA found but cusparse is not loaded:",
            "0006": "code=35( cudaErrorInsufficientDriver ) cudaStreamCreateWithFlags"}
    for number, log in logs.items():
        line = cuda_rehearsal.diagnose("\x1b[38;5;1m" + log + "\x1b[m")
        named = re.search(r"patches/jittor-1\.3\.11/(\d{4})-[\w-]+\.patch", line)
        assert named and named.group(1) == number, line
        assert "make install" in line
    assert cuda_rehearsal.diagnose("x.cc:1: error: something else\n").startswith(
        "the CUDA build failed: x.cc:1: error: something else")


def test_bad_command_lines_exit_2():
    assert run(sys.executable, "-m", "tools.cuda_rehearsal", "cu11").returncode == 2
    done = run(sys.executable, "-m", "tools.cuda_rehearsal", "system", "--nvcc", "/nonexistent")
    assert done.returncode == 2 and "--nvcc /nonexistent is not an executable" in done.stderr


@pytest.mark.slow
def test_the_built_wheel_carries_the_patches_and_the_label_jittor_setup_expects(tmp_path):
    done = run("bash", "tools/patched_jittor.sh", str(tmp_path),
               env=dict(os.environ, PYTHON=sys.executable))
    assert done.returncode == 0, done.stderr
    wheel = done.stdout.strip().splitlines()[-1]
    version = PROBES.patched_jittor_version()
    assert os.path.basename(wheel) == f"jittor-{version}-py3-none-any.whl"
    digest = hashlib.sha256(b"".join(
        open(p, "rb").read() for p in sorted(glob.glob(os.path.join(
            ROOT, "patches", "jittor-1.3.11", "*.patch"))))).hexdigest()[:8]
    assert version.endswith(digest)
    with zipfile.ZipFile(wheel) as archive:
        helper = archive.read("jittor/extern/cuda/inc/helper_cuda.h").decode()
        compiler = archive.read("jittor/compiler.py").decode()
        numpy_cc = archive.read("jittor/src/pyjt/numpy.cc").decode()
        metadata = archive.read(f"jittor-{version}.dist-info/METADATA").decode()
    assert "deviceProp.computeMode" not in helper and "cudaDevAttrComputeMode" in helper
    assert 'cc_flags.replace("-std=c++14", "-std=c++17")' in compiler
    assert "fill(PyArray_CopyInto, 50)" in numpy_cc
    assert "Requires-Dist: numpy\n" in metadata and "numpy<2" not in metadata


def cpu_core_files():
    """Modification times of the CPU build's compiled core (Jittor's default cache)."""
    done = run(sys.executable, "-c", "import jittor_utils; print(jittor_utils.cache_path)",
               env={k: v for k, v in os.environ.items() if k not in ("cache_name", "nvcc_path")})
    folder = done.stdout.strip().splitlines()[-1]
    return {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(folder, "*.so"))}


@pytest.mark.slow
@pytest.mark.parametrize("toolkit", ["system", "cu13", "cu12"])
def test_the_cuda_build_compiles_without_a_gpu(toolkit, tmp_path):
    if toolkit == "system" and not os.access(cuda_rehearsal.SYSTEM_NVCC, os.X_OK):
        pytest.skip(f"no {cuda_rehearsal.SYSTEM_NVCC} on this machine")
    before = cpu_core_files()
    done = run(sys.executable, "-m", "tools.cuda_rehearsal", toolkit,
               "--log", str(tmp_path / "build.log"))
    assert done.returncode == 0, done.stderr + done.stdout
    release = {"system": "13.0", "cu13": "13.0", "cu12": "12.9"}[toolkit]
    assert f"built for CUDA {release}" in done.stdout
    assert "cuDNN 9, cuRAND and CUB operators and a CUB kernel compile" in done.stdout
    log = (tmp_path / "build.log").read_text(errors="replace")
    assert "-std=c++17" in log and "-std=c++14" not in log.split("kernel check:")[1]
    assert f"stylegan_cuda_rehearsal_{toolkit}" in log
    assert cpu_core_files() == before   # the CPU's compiled Jittor is untouched


@pytest.mark.slow
def test_jittor_as_released_fails_in_one_line_naming_the_patch(tmp_path):
    released = tmp_path / "released"
    done = run(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
               "--no-deps", "--target", str(released), "jittor==1.3.11")
    assert done.returncode == 0, done.stderr
    done = run(sys.executable, "-m", "tools.cuda_rehearsal", "cu13", "--jittor", str(released),
               "--log", str(tmp_path / "build.log"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == ("cuda_rehearsal: cu13: Jittor's CUDA core reads cudaDeviceProp fields "
                        "that CUDA 13 removed: install this project's patched Jittor (make "
                        "install; patches/jittor-1.3.11/0001-cuda13-device-attributes.patch)")
    assert lines[1] == f"cuda_rehearsal: log: {tmp_path / 'build.log'}"
