#!/usr/bin/env bash
# Times Jittor's first compile of the operators a short run needs, for each value of
# use_parallel_op_compiler given, side by side: before each run the compiled operators of the
# Jittor home in $JITTOR_HOME are deleted (its built core is kept), then train.py trains 40
# iterations from 8 to 16 px on $DATA (default data: resize.py's folders, as make demo builds)
# and generate.py draws from the checkpoint. Usage:
#   JITTOR_HOME=/tmp/jittor_home bash tools/cold_compile_time.sh 16 1 16 1
# The home must not be the one you work with (its operators are deleted): give a new folder,
# Jittor builds its core there on the first run. Results: docs/known_limits.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA=${DATA:-data}
if [[ -z "${JITTOR_HOME:-}" || "$(realpath -m "$JITTOR_HOME")" == "$(realpath -m "$HOME")" ]]; then
  echo "cold_compile_time.sh: set JITTOR_HOME to a folder of its own (its compiled operators are deleted)" >&2
  exit 2
fi
if [[ $# -eq 0 ]]; then
  echo "cold_compile_time.sh: give one or more use_parallel_op_compiler values, e.g. 16 1" >&2
  exit 2
fi
export JITTOR_HOME
# Jittor records the last JITTOR_HOME in ~/.cache/jittor/config.json and makes it the default of
# every later run without one: put the file back as it was.
config="$HOME/.cache/jittor/config.json"
out=$(mktemp -d)
if [[ -f "$config" ]]; then cp -p "$config" "$out/config.json"; fi
restore() {
  if [[ -f "$out/config.json" ]]; then cp -p "$out/config.json" "$config"; else rm -f "$config"; fi
  rm -rf "$out"
}
trap restore EXIT
failed() {
  tail -n 5 "$out/log" >&2
  echo "cold_compile_time.sh: $1 failed (its last lines above)" >&2
  exit 1
}
"$PYTHON" -c "from runtime.jittor_setup import setup; setup()" > /dev/null   # builds the core once, not timed
operator_folders=("$JITTOR_HOME"/.cache/jittor/jt*/*/*/*/*/*/*/jit)
for threads in "$@"; do
  for jit in "${operator_folders[@]}"; do rm -rf "${jit:?}"/*; done
  start=$(date +%s.%N)
  use_parallel_op_compiler=$threads "$PYTHON" train.py "$DATA" --init_size 8 --max_size 16 \
    --width 32 --code_dim 128 --batch 8 --phase 40 --iter 40 --sample_every 1000 \
    --save_every 40 --seed 0 --out "$out/$threads" > "$out/log" 2>&1 || failed train.py
  trained=$(date +%s.%N)
  use_parallel_op_compiler=$threads "$PYTHON" generate.py "$out/$threads/checkpoint/000040.model" \
    --size 16 --out "$out/$threads/generated" --seed 0 >> "$out/log" 2>&1 || failed generate.py
  done_at=$(date +%s.%N)
  built=$(ls "${operator_folders[@]}" | grep -c '\.so$' || true)
  printf 'use_parallel_op_compiler=%s: train.py %.0f s, generate.py %.1f s, %s operators built\n' \
    "$threads" "$(echo "$trained - $start" | bc)" "$(echo "$done_at - $trained" | bc)" "$built"
  rm -rf "${out:?}/$threads"
done
