"""Shared pytest set-up: prepare Jittor before any test (pytest.ini puts the repository root on
the path)."""
import os
import signal
import sys

import pytest

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor


def _child_changed(signum, frame):
    """In the test process only: a child that dies of a signal (a crashed script, a killed pool
    worker) fails the test that owns it, visibly, instead of Jittor's SIGCHLD handler ending
    pytest at once with exit 1 and, under log_silent, no word. Reports such a child on stderr
    without reaping it."""
    try:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, OSError):
        return
    if info is not None and info.si_code != os.CLD_EXITED and info.si_status != signal.SIGTERM:
        print(f"conftest: child {info.si_pid} ended by signal {info.si_status} "
              f"(si_code {info.si_code})", file=sys.__stderr__, flush=True)


signal.signal(signal.SIGCHLD, _child_changed)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cpu_only: asserts the CPU's own kernels (the fused generation operators, the "
        "C++ blur, oneDNN); skipped under CUDA and under tools/gpu_check.sh (STYLEGAN_GPU_CHECK)")


def pytest_collection_modifyitems(config, items):
    """Skips the cpu_only tests where the CPU kernels they assert do not run: Jittor on CUDA
    (read only when a test module has imported Jittor already), or the GPU check's environment."""
    cpu_only = [item for item in items if item.get_closest_marker("cpu_only")]
    jittor = sys.modules.get("jittor")
    on_cuda = jittor is not None and bool(jittor.flags.use_cuda)
    if cpu_only and (os.environ.get("STYLEGAN_GPU_CHECK", "") not in ("", "0") or on_cuda):
        skip = pytest.mark.skip(reason="CPU-only kernels: not run on CUDA")
        for item in cpu_only:
            item.add_marker(skip)
