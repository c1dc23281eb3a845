#!/usr/bin/env bash
# Builds Jittor from its sdist on the package registry with this project's patches
# (patches/jittor-<version>/*.patch, in name order: each says why) into a wheel in OUT_DIR.
# The wheel's version carries a local label made from the patches' content,
# 1.3.11.0+stylegan.<8 hex digits>, which runtime/jittor_setup.patched_jittor_version() computes the same
# way: doctor.py compares it with the installed Jittor. Pure Python: the wheel installs on any
# Python 3.10-3.12 (Jittor compiles its C++ sources when it is first imported).
#
#   bash tools/patched_jittor.sh OUT_DIR       # PYTHON= the Python whose pip downloads and builds
#   JITTOR_SDIST=path/to/jittor-1.3.11.0.tar.gz bash tools/patched_jittor.sh OUT_DIR   # offline
#   bash tools/patched_jittor.sh --version     # the version it would build, nothing built
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/patched_jittor.sh OUT_DIR (or --version)}
PYTHON=${PYTHON:-python3}
VERSION=$(sed -n 's/^jittor==//p' requirements.txt)
PATCHES=patches/jittor-$VERSION
fail() { echo "patched_jittor.sh: $*" >&2; exit 1; }

ls "$PATCHES"/*.patch > /dev/null 2>&1 || fail "no patches in $PATCHES"
label=$(cat "$PATCHES"/*.patch | sha256sum | cut -c1-8)
if [ "$OUT" = --version ]; then
  echo "$VERSION.0+stylegan.$label"
  exit 0
fi
command -v patch > /dev/null || fail "no 'patch' program: apt-get install patch (as root), or conda install patch"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "${JITTOR_SDIST:-}" ]; then
  cp "$JITTOR_SDIST" "$WORK/"
else
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$WORK" "jittor==$VERSION" 2>&1 | grep -v "^WARNING: Location" >&2 || true
fi
sdist=$(ls "$WORK"/jittor-*.tar.gz 2> /dev/null | head -1)
[ -n "$sdist" ] || fail "could not download Jittor $VERSION's sdist (pip download --no-binary :all: jittor==$VERSION)"
tar -xzf "$sdist" -C "$WORK"
src=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'jittor-*' | head -1)
for p in "$PATCHES"/*.patch; do
  patch -d "$src" -p1 --forward --quiet < "$p" > "$WORK/patch.log" 2>&1 \
    || fail "$p does not apply to $(basename "$sdist"): $(head -3 "$WORK/patch.log" | tr '\n' ' ')"
done
grep -q '^    version=version,$' "$src/setup.py" || fail "$(basename "$sdist")'s setup.py has no 'version=version,' line to label"
sed -i "s/^    version=version,\$/    version=version + \"+stylegan.$label\",/" "$src/setup.py"
mkdir -p "$OUT"
rm -f "$OUT"/jittor-*.whl
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps --use-pep517 -w "$OUT" "$src" 2>&1 \
  | grep -v "^WARNING: Location" >&2 || true
wheel=$(ls "$OUT"/jittor-*+stylegan."$label"-*.whl 2> /dev/null | head -1)
[ -n "$wheel" ] || fail "pip wheel did not build Jittor from $src"
echo "$wheel"
