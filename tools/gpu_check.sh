#!/usr/bin/env bash
# The one prepared GPU check, for a machine lent through a tool that runs one command (docs/gpu.md,
# "The GPU check", gives the call): it installs the patched Jittor and what else the machine
# lacks from $WHEELHOUSE (tools/gpu_wheels.sh fills it here), checks the pieces Jittor compiles
# with, runs doctor.py, imports Jittor on CUDA, compares this port with the PyTorch original
# (tools/torch_model.py) on the same GPU for parity and speed, then runs the model and training
# tests on CUDA, all within GPU_CHECK_SECONDS (default 510). Each step has its own time limit;
# a failed step is recorded and the check goes on with the next one that does not need it.
#
# Without a GPU it says so and exits 2 at once. Exit 1 when a step failed or the check stopped,
# 0 when every step passed. Results go to $OUT (default /tmp/gpu_check_out), 8 files, what the
# device tool brings back: summary.md (each step's exit status and seconds), log.txt,
# doctor.txt, parity.md, speed.md, speed_torch.json, speed_jittor.json, pytest.txt.
#
#   bash tools/gpu_check.sh          # PYTHON= the Python to use (default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${WHEELHOUSE:-wheelhouse}
BUDGET=${GPU_CHECK_SECONDS:-510}
# Jittor compiles operators on as many threads as the machine has cores (16 on the lent H100)
# instead of jittor_setup's 1; a step that crashes with it runs once more with 1 (jstep)
export use_parallel_op_compiler=${use_parallel_op_compiler:-16}
export STYLEGAN_GPU_CHECK=1          # conftest.py skips the CPU-only tests (cpu_only marker)
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/gpu_check_work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
FAILED=0
mkdir -p "$OUT"
rm -f "$OUT"/summary.md "$OUT"/log.txt "$OUT"/doctor.txt "$OUT"/parity.md "$OUT"/speed.md \
  "$OUT"/pytest.txt "$OUT"/speed_torch.json "$OUT"/speed_jittor.json
: > "$OUT/log.txt"
: > "$WORK/head"
: > "$WORK/steps"
: > "$WORK/notes"

# summary.md, rewritten whole after every step and note, so that it is complete at any moment
render() {
  {
    echo "# GPU check (tools/gpu_check.sh)"
    if [ -s "$WORK/head" ]; then
      echo
      cat "$WORK/head"
    fi
    if [ -s "$WORK/steps" ]; then
      echo
      echo "| step | exit | seconds | limit s |"
      echo "|---|---:|---:|---:|"
      cat "$WORK/steps"
    fi
    if [ -s "$WORK/notes" ]; then
      echo
      cat "$WORK/notes"
    fi
  } > "$OUT/summary.md"
}
note() {
  echo "- $*" >> "$WORK/notes"
  echo "gpu_check: $*"
  render
}
# stop REASON: the check cannot go on; REASON is one line naming the missing piece and its fix
stop() {
  note "stopped: $*"
  note "done in $(( SECONDS - START )) s"
  exit 1
}

# step NAME LIMIT LOG COMMAND...: runs COMMAND within LIMIT seconds (less when the budget is
# nearly spent), its output appended to LOG, and adds its row to the summary (exit 124: stopped
# at its limit; 125: not run, the budget being spent). ROWS= another file for the row (a step
# run in the background).
step() {
  local name=$1 limit=$2 log=$3 rows=${ROWS:-$WORK/steps} left rc started
  shift 3
  left=$(( BUDGET - (SECONDS - START) ))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    echo "| $name | not run: time budget spent | - | - |" >> "$rows"
    [ -z "${ROWS:-}" ] && render
    return 125
  fi
  echo "==== $name (limit $limit s): $*" >> "$log"
  started=$SECONDS
  timeout -k 15 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  echo "| $name | $rc | $(( SECONDS - started )) | $limit |" >> "$rows"
  echo "gpu_check: $name: exit $rc after $(( SECONDS - started )) s (limit $limit s)"
  [ -z "${ROWS:-}" ] && render
  return $rc
}

# jstep: step for a command that runs Jittor; when Jittor crashed with several compiler threads
# (it prints "Caught segfault"), the command runs once more with use_parallel_op_compiler=1
# (runtime/jittor_setup.py says why that is its default), the operators compiled so far being cached
jstep() {
  local name=$1 limit=$2 log=$3 before rc
  before=$(stat -c %s "$log" 2> /dev/null || echo 0)
  step "$@"
  rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 125 ] && [ "$use_parallel_op_compiler" != 1 ] \
     && tail -c +$(( before + 1 )) "$log" | grep -q "Caught segfault"; then
    note "$name: Jittor crashed with use_parallel_op_compiler=$use_parallel_op_compiler; run again with 1"
    shift 3
    use_parallel_op_compiler=1 step "$name, 1 compiler thread" "$limit" "$log" "$@"
    rc=$?
  fi
  return $rc
}

# ---- a. a GPU, or nothing to check
if ! timeout 20 nvidia-smi -L > "$WORK/gpus.txt" 2>&1 || ! grep -q '^GPU' "$WORK/gpus.txt"; then
  note "no GPU here (nvidia-smi lists none): nothing checked"
  exit 2
fi
{
  echo "- $(grep -m1 '^GPU' "$WORK/gpus.txt")"
  echo "- driver $(timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1 | head -1)"
  echo "- $PYTHON: $("$PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>&1 | tail -1)," \
       "budget $BUDGET s, use_parallel_op_compiler=$use_parallel_op_compiler, STYLEGAN_GPU_CHECK=1"
} >> "$WORK/head"
render

# ---- b. the wheelhouse, installed into a folder of this run (the machine has no Jittor)
ls "$WHEELHOUSE"/jittor-*+stylegan.*.whl > /dev/null 2>&1 \
  || stop "no patched Jittor wheel in $WHEELHOUSE/ (jittor-*+stylegan.*.whl): run bash tools/gpu_wheels.sh before the check and carry $WHEELHOUSE"
if "$PYTHON" -m pip --version > /dev/null 2>&1; then
  step install 60 "$OUT/log.txt" "$PYTHON" -m pip install -q --disable-pip-version-check \
    --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$WHEELHOUSE"/*.whl
else   # a Python without pip: wheels are zip files laid out for site-packages
  step install 60 "$OUT/log.txt" "$PYTHON" -c \
    'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
    "$WORK/site" "$WHEELHOUSE"/*.whl
fi || stop "installing $WHEELHOUSE/*.whl failed: $(grep -v '^====' "$OUT/log.txt" | grep -m1 -i 'error' || tail -1 "$OUT/log.txt")"
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"

# ---- c. pre-flight: seconds, one line naming the first missing piece and its fix
JITTOR_VERSION=$(sed -n 's/^jittor==//p' requirements.txt)
EXPECTED=$(bash tools/patched_jittor.sh --version 2> /dev/null || true)
LABEL=${EXPECTED##*+stylegan.}
PREFLIGHT='
import importlib.metadata, os, re, shutil, subprocess, sys, sysconfig
wheelhouse, patches, label = sys.argv[1:4]
def stop(line):
    print(line)
    sys.exit(1)
try:
    jittor = importlib.metadata.version("jittor")
except importlib.metadata.PackageNotFoundError:
    stop(f"no Jittor installed from {wheelhouse}/: run bash tools/gpu_wheels.sh and carry {wheelhouse}")
if "+stylegan." not in jittor:
    stop(f"Jittor {jittor} is not the patched build of this project (+stylegan.): run bash tools/gpu_wheels.sh and carry {wheelhouse}")
if label and not jittor.endswith("+stylegan." + label):
    stop(f"Jittor {jittor} in {wheelhouse}/ is built from other patches than {patches}/ (label {label}): run bash tools/gpu_wheels.sh again and carry {wheelhouse}")
try:
    import numpy
except ImportError as error:
    stop(f"numpy does not import ({error}): pip install numpy")
nvcc = shutil.which("nvcc")
if not nvcc:
    stop("no nvcc on PATH: export PATH=/usr/local/cuda/bin:$PATH (the bin folder of the CUDA toolkit)")
release = re.search(r"release ([0-9.]+)", subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout)
if not release:
    stop(f"{nvcc} --version names no release: reinstall the CUDA toolkit")
compilers = [c for c in ["g++"] + [f"g++-{n}" for n in range(20, 8, -1)] if shutil.which(c)]
if not compilers:
    stop("no g++ on PATH: apt-get install g++")
headers = sysconfig.get_paths()["include"]
version = "%d.%d" % sys.version_info[:2]
if not os.path.isfile(os.path.join(headers, "Python.h")):
    stop(f"no Python.h in {headers}: apt-get install python{version}-dev (Jittor compiles against it)")
configs = [os.path.join(sys.base_prefix, "bin", f"python{version}-config"),
           os.path.join(os.path.dirname(sys.executable), f"python{version}-config"),
           f"/usr/bin/python{version}-config", f"/usr/local/bin/python{version}-config"]
looked = " ".join(configs)
if not any(os.path.isfile(path) for path in configs):
    stop(f"no python{version}-config (looked for {looked}): apt-get install python{version}-dev (Jittor reads its flags from it)")
print(f"pre-flight: Jittor {jittor}, numpy {numpy.__version__}, nvcc {release.group(1)} at {nvcc}, "
      f"{compilers[0]} at {shutil.which(compilers[0])}, Python.h in {headers}")
'
step preflight 30 "$WORK/preflight.txt" "$PYTHON" -c "$PREFLIGHT" \
  "$WHEELHOUSE" "patches/jittor-$JITTOR_VERSION" "$LABEL" \
  || stop "pre-flight: $(tail -1 "$WORK/preflight.txt")"
cat "$WORK/preflight.txt" >> "$OUT/log.txt"
note "$(tail -1 "$WORK/preflight.txt")"

# ---- d. doctor.py: will the scripts run on CUDA here?
if ! step doctor 60 "$OUT/doctor.txt" "$PYTHON" doctor.py --require_cuda; then
  mode=$(grep -m1 '^Mode ' "$OUT/doctor.txt" | sed 's/^Mode *//')
  problem=$(grep '^  - ' "$OUT/doctor.txt" | grep -v -m1 -- '--require_cuda' | sed 's/^  - //')
  stop "doctor.py: the scripts will not run on CUDA here: ${mode:-no verdict}${problem:+; $problem} (doctor.txt)"
fi

# ---- e. Jittor's first import on CUDA (its core, cuBLAS, cuRAND and cuDNN operators), while
# the PyTorch side of the parity runs beside it
TORCH_MODEL=0
[ -f tools/torch_model.py ] && TORCH_MODEL=1
if [ $TORCH_MODEL = 1 ]; then
  ROWS="$WORK/steps_parity_torch" step parity_torch 120 "$WORK/parity_torch.txt" \
    "$PYTHON" -m tools.gpu_compare parity-torch "$WORK" &
  PARITY_TORCH=$!
else
  note "no tools/torch_model.py (bash tools/gpu_wheels.sh copies the original's model.py there): parity and speed against PyTorch not run"
fi
IMPORT='
import time
start = time.time()
from runtime.jittor_setup import setup; jt = setup()
assert jt.flags.use_cuda, "Jittor did not turn CUDA on (log_silent=0 shows why)"
x = jt.randn(256, 256)
(x @ x).sync()
jt.sync_all(True)
cudnn = "loaded" if jt.compile_extern.cudnn is not None else "not loaded"
print(f"Jittor {jt.__version__} on CUDA: first import and a cuRAND + cuBLAS call "
      f"{time.time() - start:.0f} s, cuDNN {cudnn}, "
      f"use_parallel_op_compiler {jt.flags.use_parallel_op_compiler}")
'
JITTOR=1
jstep import 240 "$OUT/log.txt" env log_silent=0 "$PYTHON" -c "$IMPORT" || JITTOR=0
if [ $JITTOR = 1 ]; then
  note "$(grep -m1 '^Jittor .* on CUDA: first import' "$OUT/log.txt")"
else
  FAILED=1
  note "Jittor does not import on CUDA (log.txt): its parity, speed and the tests not run"
fi
if [ $TORCH_MODEL = 1 ]; then
  wait "$PARITY_TORCH" || FAILED=1
  cat "$WORK/steps_parity_torch" >> "$WORK/steps"
  cat "$WORK/parity_torch.txt" >> "$OUT/log.txt"
  render
fi

# ---- f. parity with the PyTorch original, TF32 off on both sides (tools/gpu_compare.py)
if [ $JITTOR = 1 ] && [ $TORCH_MODEL = 1 ]; then
  if [ -f "$WORK/torch_parity.npz" ]; then
    jstep parity_jittor 150 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare parity-jittor "$WORK" \
      || FAILED=1
    [ -f "$WORK/parity.md" ] && cp "$WORK/parity.md" "$OUT/parity.md"
  else
    note "parity_jittor not run: the PyTorch side wrote nothing (log.txt)"
  fi
fi

# ---- g. speed beside PyTorch on the same GPU
if [ $TORCH_MODEL = 1 ]; then
  step speed_torch 90 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare speed-torch "$WORK" \
    || FAILED=1
fi
if [ $JITTOR = 1 ]; then
  jstep speed_jittor 180 "$OUT/log.txt" "$PYTHON" -m tools.gpu_compare speed-jittor "$WORK" \
    || FAILED=1
fi
if [ -f "$WORK/speed_torch.json" ] || [ -f "$WORK/speed_jittor.json" ]; then
  "$PYTHON" -m tools.gpu_compare speed-table "$WORK" >> "$OUT/log.txt" 2>&1
  for f in speed.md speed_torch.json speed_jittor.json; do
    [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"
  done
fi

# ---- h. the model and training tests on CUDA, with the time left: the model's first, so that
# its summary is whole even when the training tests reach the budget
if [ $JITTOR = 1 ]; then
  step pytest_model 150 "$OUT/pytest.txt" "$PYTHON" -m pytest -v -rfEs -p no:cacheprovider \
    test/test_model.py || FAILED=1
  step pytest_train 600 "$OUT/pytest.txt" "$PYTHON" -m pytest -v -rfEs -p no:cacheprovider \
    test/test_train.py || FAILED=1
  grep -E '^=+ .*(passed|failed|error|skipped).* =+$' "$OUT/pytest.txt" | while read -r line; do
    note "pytest: $line"
  done
fi

note "done in $(( SECONDS - START )) s"
for f in summary.md parity.md speed.md; do
  [ -f "$OUT/$f" ] && { echo; cat "$OUT/$f"; }
done
exit $FAILED
