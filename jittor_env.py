"""Prepare the process for Jittor, then import it. Every script imports this module first.

Jittor 1.3.11 needs three things fixed before ``import jittor`` on the machines this project
targets; variables the user has set always win:

* ``nvcc_path``: when an ``nvcc`` is on PATH but no CUDA driver can be loaded, Jittor's import
  fails while it probes CUDA. We then set ``nvcc_path=""`` so Jittor builds for the CPU only.
* oneDNN: on first import Jittor downloads oneDNN into its cache, which fails offline, and its
  own CPU convolutions are about 95x slower (``bench.py --compare_mkl``). If Debian's
  ``libdnnl-dev`` is installed we link it
  into the cache folder Jittor looks in (``~/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp``), so
  Jittor finds it and does not download. Without it we fall back to ``use_mkl=0`` and warn once.
* ``log_silent=1``: Jittor's compiler log lines are quiet unless the user asks for them.

After import, ``jt.flags.use_cuda`` is on whenever Jittor found a usable GPU.
"""
import ctypes
import json
import os
import platform
import sys

ONEDNN_DIR_NAME = {"x86_64": "dnnl_lnx_2.2.0_cpu_gomp", "aarch64": "dnnl_lnx_2.2.0_cpu_gomp_aarch64"}
DEBIAN_ONEDNN_INCLUDE = "/usr/include/oneapi/dnnl"
ONEDNN_INSTALL_HINT = "apt-get install -y libdnnl-dev"


def cuda_driver_loadable():
    """True when the CUDA driver library can be opened, i.e. a GPU may be usable."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def jittor_home():
    """Folder under which Jittor keeps ``.cache/jittor``: JITTOR_HOME, else the one recorded in
    ``~/.cache/jittor/config.json``, else the home folder (as ``jittor_utils.home`` decides)."""
    default = os.path.expanduser("~")
    try:
        with open(os.path.join(default, ".cache", "jittor", "config.json")) as f:
            default = json.load(f).get("JITTOR_HOME", default)
    except (OSError, ValueError):
        pass
    return os.path.abspath(os.environ.get("JITTOR_HOME", default))


def link_debian_onednn():
    """Make Jittor's oneDNN cache folder point at Debian's libdnnl. Returns True on success."""
    machine = platform.machine()
    if platform.system() != "Linux" or machine not in ONEDNN_DIR_NAME:
        return False
    target = os.path.join(jittor_home(), ".cache", "jittor", "mkl", ONEDNN_DIR_NAME[machine])
    lib_link = os.path.join(target, "lib", "libmkldnn.so")
    if os.path.isfile(lib_link):
        return True  # Jittor's own download, or a link made earlier
    library = f"/usr/lib/{machine}-linux-gnu/libdnnl.so.2"
    if not (os.path.isfile(library) and os.path.isdir(DEBIAN_ONEDNN_INCLUDE)):
        return False
    try:
        os.makedirs(os.path.join(target, "lib"), exist_ok=True)
        include_link = os.path.join(target, "include")
        if not os.path.lexists(include_link):
            os.symlink(DEBIAN_ONEDNN_INCLUDE, include_link)
        if os.path.lexists(lib_link):
            os.remove(lib_link)  # a dangling link left by an older install
        os.symlink(library, lib_link)
    except OSError:
        return False
    return os.path.isfile(lib_link)


def prepare_environment(environ=os.environ):
    """Set Jittor's environment variables for this machine, leaving user-set ones alone."""
    if "nvcc_path" not in environ and not cuda_driver_loadable():
        environ["nvcc_path"] = ""
    environ.setdefault("log_silent", "1")
    user_chose_mkl = any(k in environ for k in ("use_mkl", "mkl_include_path", "mkl_lib_path"))
    if not user_chose_mkl and not link_debian_onednn():
        environ["use_mkl"] = "0"
        print(f"warning: oneDNN not found, Jittor's CPU convolutions will be about 95x slower "
              f"(install it with: {ONEDNN_INSTALL_HINT})", file=sys.stderr)


prepare_environment()

import jittor as jt  # noqa: E402  (must come after the environment is prepared)

jt.flags.use_cuda = 1 if jt.has_cuda else 0


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on Linux (x86_64, aarch64)."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


SA_NOCLDSTOP = 1  # Linux: no SIGCHLD when a child only stops or continues


def ignore_stopped_children():
    """Keep Jittor's SIGCHLD handler, but only for children that end, not ones that stop.

    Jittor installs its handler without SA_NOCLDSTOP, and it ends the process ("Caught SIGCHLD
    ... quick exit", exit code 1, nothing saved) whenever a child changes state other than by
    exiting: a data-loader worker stopped by Ctrl-Z (SIGTSTP goes to the whole process group) or
    by SIGSTOP (a job scheduler's suspend) killed the training run. With SA_NOCLDSTOP the kernel
    reports only children that end, which is what the handler is for. Returns True when done;
    a no-op elsewhere than Linux on x86_64 / aarch64."""
    import signal
    if platform.system() != "Linux" or platform.machine() not in ONEDNN_DIR_NAME:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        action = _SigAction()
        if libc.sigaction(signal.SIGCHLD, None, ctypes.byref(action)) != 0:
            return False
        if not action.handler or action.handler in (signal.SIG_DFL, signal.SIG_IGN):
            return False  # no handler of Jittor's to amend
        action.flags |= SA_NOCLDSTOP
        return libc.sigaction(signal.SIGCHLD, ctypes.byref(action), None) == 0
    except (OSError, AttributeError):
        return False


ignore_stopped_children()


def compiler_pool_ignores(signals=("SIGINT", "SIGUSR1")):
    """Restart Jittor's operator-compiler process pool with ``signals`` ignored in its workers.

    Jittor compiles operators through a ``multiprocessing.Pool`` that it forks from this process
    the first time it compiles (``jittor_utils.run_cmds``). A Ctrl-C at a terminal goes to the
    whole process group, and mpirun forwards SIGUSR1 the same way, so the pool's workers die of
    it; Jittor's SIGCHLD handler then ends the process with "Caught SIGCHLD ... quick exit" and
    exit code 1, after ``train.py`` has saved its checkpoint but instead of its clean exit (130).
    Forked with the signals ignored, the workers (and the compilers they start) carry on, and the
    signal is handled by the training loop alone. Call it before training; a no-op off Linux.
    """
    import atexit
    import signal
    import jittor_utils
    numbers = [getattr(signal, name) for name in signals if hasattr(signal, name)]
    if os.name != "posix" or not hasattr(jittor_utils, "run_cmds") or not numbers:
        return
    if getattr(jittor_utils, "pool_size", 0) and hasattr(jittor_utils, "p"):
        atexit.unregister(jittor_utils.pool_cleanup)  # a pool from compiling Jittor's core
        jittor_utils.pool_cleanup()
        jittor_utils.pool_size = 0
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        jittor_utils.run_cmds([], None, None, "compiler pool")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
