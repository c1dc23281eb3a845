#!/usr/bin/env bash
# Fills wheelhouse/ (gitignored) with what tools/gpu_check.sh installs on a GPU machine that
# reaches no package registry: Jittor (built here into a pure-Python wheel from its sdist, so
# nothing is built there) and astunparse, Jittor's one requirement that machine lacks (numpy,
# pillow, tqdm and pytest are there already). A few MB; the device tool carries 64 MiB at most.
#
#   bash tools/gpu_wheels.sh          # then carry "wheelhouse" (and tools/torch_model.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
JITTOR=$(sed -n 's/^jittor==//p' requirements.txt)
mkdir -p wheelhouse
rm -f wheelhouse/*.whl wheelhouse/*.tar.gz
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --no-binary jittor \
  -d wheelhouse "jittor==$JITTOR"
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 --platform any \
  -d wheelhouse "astunparse==1.6.3"
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
  -w wheelhouse wheelhouse/jittor-*.tar.gz
rm -f wheelhouse/jittor-*.tar.gz
ls -la wheelhouse
du -sh wheelhouse
