#!/usr/bin/env bash
# Installs everything the project needs on a Debian/Ubuntu machine: system packages through apt
# (oneDNN for fast CPU convolutions, the Noto Color Emoji font for the demo data set, OpenMPI for
# multi-process training, Chromium and its driver for the explorer's browser test), then the pinned
# Python packages (requirements.txt, and requirements-test.txt for the tests). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
APT_PACKAGES="libdnnl-dev fonts-noto-color-emoji openmpi-bin libopenmpi-dev"
# the browser test of explore.py (test/test_explore.py) drives Debian's Chromium through selenium
TEST_APT_PACKAGES="chromium chromium-driver"

# The pins in requirements.txt (pillow 13, pytest 9, ...) need Python 3.11 or newer.
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: $PYTHON is $("$PYTHON" -V 2>&1 || echo 'not found'); this project needs Python 3.11 or newer (set PYTHON=python3.11)" >&2
  exit 1
fi

missing=""
for p in $APT_PACKAGES $TEST_APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: apt-get not found; install these packages by hand:$missing" >&2
  else
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends $missing \
      || { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends $missing; }
  fi
fi
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
