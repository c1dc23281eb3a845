"""tools/onednn_kernels_bench.cpp, the framework-free kernel timer docs/benchmark.md quotes: it
builds, and the output size and FLOP count it prints follow the convolution arithmetic for
stride 1 and for the stride-2 4x4 convolutions whose input gradients are FusedUpsample."""
import os
import re
import shutil
import subprocess

import pytest

from ops import onednn_conv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = re.compile(r"conv (\d+) -> (\d+), (\d+)x\d+ map -> (\d+)x(\d+), (\d+)x\d+ kernel, "
                    r"padding (\d+), stride (\d+), batch (\d+): ([\d.]+) GFLOP per pass")


@pytest.fixture(scope="module")
def kernels_bench(tmp_path_factory):
    if shutil.which("g++") is None or not onednn_conv.available():
        pytest.skip("needs g++ and oneDNN")
    include, lib = onednn_conv.onednn_folders()
    binary = str(tmp_path_factory.mktemp("bench") / "onednn_kernels_bench")
    subprocess.run(["g++", "-O2", "-fopenmp", os.path.join(ROOT, "tools", "onednn_kernels_bench.cpp"),
                    "-I", include, "-L", lib, f"-Wl,-rpath,{lib}", "-o", binary, "-ldnnl"],
                   check=True, capture_output=True)
    return binary


def run(binary, *args):
    result = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    return result


@pytest.mark.parametrize("args, out_size", [
    ((2, 16, 32, 32, 3, 1), 32),       # 3x3, stride 1, padding 1: same size
    ((1, 16, 32, 64, 4, 1, 2), 32),    # FusedUpsample's convolution: half size
    ((2, 16, 16, 33, 3, 0, 2), 16),    # (33 - 3) // 2 + 1
])
def test_output_size_flops_and_rows(kernels_bench, args, out_size):
    result = run(kernels_bench, *args)
    assert result.returncode == 0, result.stderr
    header = HEADER.search(result.stdout)
    assert header, result.stdout
    c, o, h, oh, ow, k, p, s, n, gflop = header.groups()
    assert (int(oh), int(ow)) == (out_size, out_size)
    assert int(s) == (args[6] if len(args) == 7 else 1)
    expected = 2 * args[0] * args[2] * out_size ** 2 * args[1] * args[4] ** 2 / 1e9
    assert float(gflop) == pytest.approx(expected, abs=0.006)
    timings = re.findall(r"^  (input gradient|forward \(training, direct\))\s+([\d.]+) ms",
                         result.stdout, re.M)
    assert {name for name, _ in timings} == {"input gradient", "forward (training, direct)"}
    assert all(float(ms) > 0 for _, ms in timings)


def test_wrong_arguments_are_a_usage_error(kernels_bench):
    result = run(kernels_bench, 1, 2, 3)
    assert result.returncode == 2
    assert "usage:" in result.stderr
