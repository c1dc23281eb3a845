#!/usr/bin/env bash
# Prepares, here, what tools/gpu_check.sh needs on a GPU machine that reaches no package registry
# and has no copy of the PyTorch original (docs/gpu.md, "The GPU check"):
#
# * $WHEELHOUSE (default wheelhouse/, gitignored): this project's patched Jittor as a pure-Python
#   wheel (tools/patched_jittor.sh), and the packages that machine's Python 3.12 lacks:
#   astunparse (Jittor's requirement) with six (which astunparse imports) and lmdb (ours), as
#   cp312 manylinux x86_64 wheels;
# * tools/torch_model.py (gitignored): the original's model.py at ORIGINAL_COMMIT, from the
#   local copy of its repository at $ORIGINAL_REPO (its git directory), or from the file
#   $TORCH_MODEL when given.
#
# It prints the size of what the device tool carries (64 MiB at most) and of the working tree,
# which travels too, and fails in one line when the carried paths reach 64 MiB.
#
#   bash tools/gpu_wheels.sh                           # PYTHON= a Python with pip (default: .venv's)
#   TORCH_MODEL=path/to/model.py bash tools/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELHOUSE=${WHEELHOUSE:-wheelhouse}
ORIGINAL_REPO=${ORIGINAL_REPO:-/work/.mirror/rosinality+style-based-gan-pytorch/repo}
ORIGINAL_COMMIT=d4c04384720aab6c6dc1e7225f0b0d68db8084cc
ORIGINAL_BLOB=d0d1fa017bf111ebf549c5f4bc13074900a5d3fc   # git's id of model.py at that commit
CARRY_LIMIT=$(( 64 * 1024 * 1024 ))
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
export PYTHON
fail() { echo "gpu_wheels.sh: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

# the original's model.py first: without it nothing else is worth building
if [ -n "${TORCH_MODEL:-}" ]; then
  [ -f "$TORCH_MODEL" ] || fail "TORCH_MODEL=$TORCH_MODEL is not a file"
  [ "$(git hash-object "$TORCH_MODEL")" = "$ORIGINAL_BLOB" ] \
    || fail "TORCH_MODEL=$TORCH_MODEL is not model.py of rosinality/style-based-gan-pytorch at $ORIGINAL_COMMIT"
  cp "$TORCH_MODEL" tools/torch_model.py
else
  gitdir=$ORIGINAL_REPO
  [ -d "$gitdir/.git" ] && gitdir=$gitdir/.git
  git --git-dir="$gitdir" cat-file -e "$ORIGINAL_COMMIT:model.py" 2> /dev/null \
    || fail "no copy of rosinality/style-based-gan-pytorch at $ORIGINAL_COMMIT in $ORIGINAL_REPO: give its model.py at that commit as TORCH_MODEL=path/to/model.py (or its git directory as ORIGINAL_REPO=)"
  git --git-dir="$gitdir" show "$ORIGINAL_COMMIT:model.py" > tools/torch_model.py.tmp
  mv tools/torch_model.py.tmp tools/torch_model.py
fi
echo "tools/torch_model.py: the original's model.py at ${ORIGINAL_COMMIT:0:7}"

mkdir -p "$WHEELHOUSE"
rm -f "$WHEELHOUSE"/*.whl "$WHEELHOUSE"/*.tar.gz
bash tools/patched_jittor.sh "$WHEELHOUSE" > /dev/null
LMDB=$(sed -n 's/^lmdb==//p' requirements.txt)
# the GPU machine's Python: CPython 3.12 on x86_64 Linux (manylinux wheels)
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$WHEELHOUSE" "astunparse==1.6.3" "six==1.17.0" "lmdb==$LMDB" 2>&1 \
  | grep -v "^WARNING: Location" >&2 || true
for name in jittor astunparse six lmdb; do
  [ "$(ls "$WHEELHOUSE"/"$name"-*.whl 2> /dev/null | wc -l)" = 1 ] \
    || fail "$WHEELHOUSE/ should hold one $name wheel: $(ls "$WHEELHOUSE" | tr '\n' ' ')"
done
ls "$WHEELHOUSE"/jittor-*+stylegan.*-py3-none-any.whl > /dev/null 2>&1 \
  || fail "$WHEELHOUSE/'s Jittor wheel is not the patched build (jittor-*+stylegan.*-py3-none-any.whl)"

for f in "$WHEELHOUSE"/*.whl tools/torch_model.py; do
  printf '%10s  %s\n' "$(stat -c %s "$f")" "$f"
done
carried=$(du -cb "$WHEELHOUSE" tools/torch_model.py | tail -1 | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard \
       | xargs -0 -r stat -c %s -- 2> /dev/null | awk '{ s += $1 } END { print s + 0 }')
echo "carried ($WHEELHOUSE, tools/torch_model.py): $carried bytes, $(mib "$carried") of the device tool's 64 MiB"
echo "working tree (git ls-files: tracked and unignored files, which travel too): $tree bytes, $(mib "$tree")"
[ "$carried" -lt "$CARRY_LIMIT" ] \
  || fail "$WHEELHOUSE and tools/torch_model.py take $(mib "$carried"): the device tool carries less than 64 MiB"
echo "carry: [\"$WHEELHOUSE\", \"tools/torch_model.py\"]"
