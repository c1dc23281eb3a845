#!/usr/bin/env bash
# The one prepared GPU check (docs/gpu.md says how to run it with the device tool): doctor.py,
# Jittor's first import on CUDA, parity with the PyTorch original on the same GPU, speed beside
# it, then the model and training tests on CUDA, within GPU_CHECK_SECONDS (default 450) in all.
# It needs no package registry: Jittor comes from wheelhouse/ (tools/gpu_wheels.sh) when it is
# not installed, and the original's model.py must have been saved as tools/torch_model.py.
# Without a GPU it says so and exits 2 at once. Results go to $OUT (default /tmp/gpu_check_out):
# summary.md, log.txt, doctor.txt, parity.md, speed.md, speed_torch.json, speed_jittor.json,
# pytest.txt (the device tool brings back 8 files at most).
#
#   bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
PYTHON=${PYTHON:-python3}
BUDGET=${GPU_CHECK_SECONDS:-450}
WORK=$(mktemp -d /tmp/gpu_check_work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
: > "$OUT/summary.md"
: > "$OUT/log.txt"
rm -f "$OUT/doctor.txt" "$OUT/pytest.txt" "$OUT/parity.md" "$OUT/speed.md" "$OUT"/speed_*.json

note() { echo "gpu_check: $*" | tee -a "$OUT/summary.md"; }

# step NAME SECONDS LOG COMMAND...: runs COMMAND within SECONDS (less if the budget is nearly
# spent), its output appended to LOG, and notes its exit status (124: stopped at its limit)
step() {
  local name=$1 limit=$2 log=$3 left rc started
  shift 3
  left=$(( BUDGET - (SECONDS - START) ))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    note "$name: not run (the time budget is spent)"
    return 1
  fi
  echo "==== $name: $*" >> "$log"
  started=$SECONDS
  timeout -k 10 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  note "$name: exit $rc after $(( SECONDS - started )) s"
  return $rc
}

if ! timeout 20 nvidia-smi -L > "$WORK/gpus.txt" 2>&1 || ! grep -q '^GPU' "$WORK/gpus.txt"; then
  note "no GPU here (nvidia-smi lists none): nothing checked"
  exit 2
fi
cat "$WORK/gpus.txt" >> "$OUT/summary.md"

if ! "$PYTHON" -c 'import importlib.metadata as m; m.version("jittor")' 2>/dev/null; then
  if ! ls wheelhouse/jittor-*.whl > /dev/null 2>&1; then
    note "Jittor is not installed and wheelhouse/ has no wheel of it (bash tools/gpu_wheels.sh, then carry wheelhouse)"
    exit 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$WORK/site" wheelhouse/*.whl >> "$OUT/log.txt" 2>&1 || { note "pip install from wheelhouse/ failed (log.txt)"; exit 1; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  note "Jittor installed from wheelhouse/"
fi

step doctor 60 "$OUT/doctor.txt" "$PYTHON" doctor.py --require_cuda
if [ $? -ne 0 ]; then
  note "doctor.py says the scripts will not run on CUDA here: stopping (doctor.txt)"
  exit 1
fi
step import 300 "$OUT/log.txt" "$PYTHON" -c \
  "import time; t = time.time(); import jittor_env, jittor as jt; assert jt.flags.use_cuda, 'CUDA is off'; print('Jittor on CUDA, first import', round(time.time() - t), 's, cudnn', jt.compile_extern.cudnn is not None)" \
  || { note "Jittor does not import on CUDA: stopping (log.txt)"; exit 1; }

if [ -f tools/torch_model.py ]; then
  step parity_torch 120 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare parity-torch "$WORK" \
    && step parity_jittor 180 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare parity-jittor "$WORK"
  [ -f "$WORK/parity.md" ] && cp "$WORK/parity.md" "$OUT/parity.md"
  step speed_torch 120 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare speed-torch "$WORK"
  step speed_jittor 240 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare speed-jittor "$WORK"
  "$PYTHON" -m tools.gpu_compare speed-table "$WORK" >> "$OUT/log.txt" 2>&1
  for f in speed.md speed_torch.json speed_jittor.json; do
    [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"
  done
else
  note "no tools/torch_model.py (the original's model.py): parity and speed against PyTorch not run"
fi

step pytest 400 "$OUT/pytest.txt" "$PYTHON" -m pytest -q -x -p no:cacheprovider \
  test/test_model.py test/test_train.py
note "done in $(( SECONDS - START )) s"
