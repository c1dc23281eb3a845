#!/usr/bin/env bash
# The newcomer's demo (make demo): builds the emoji data set, trains a narrow StyleGAN from 8 to
# 32 px on the CPU (about 12 minutes on 2 cores with a cold Jittor cache, 7 when run again) and
# writes sample, style-mixing and interpolation images from the trained checkpoint, then scores
# it with the sliced Wasserstein
# distance against held-out emoji (every 8th emoji, never trained on) beside an untrained
# generator. Safe to re-run: the data set is reused, and train.py --resume continues (or, when
# complete, reuses) the run in $OUT.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
DATA=${DATA:-data}
HELDOUT=${HELDOUT:-${DATA}_heldout}
OUT=${OUT:-runs/demo}
ITER=${ITER:-3000}        # iterations; SAVE_EVERY must divide it (the last checkpoint is used)
PHASE=${PHASE:-16000}     # images per half phase: 8, 16 and 32 px take 1000 iterations each
SAVE_EVERY=${SAVE_EVERY:-500}

has_png() {  # (a glob, not ls | grep -q: under pipefail that fails by SIGPIPE on big folders)
  compgen -G "$1/*.png" > /dev/null
}

if ! has_png "$DATA/128"; then
  font=$("$PYTHON" -c 'import build_emoji; print(build_emoji.DEFAULT_FONT)')
  if [ ! -f "$font" ]; then
    echo "demo.sh: no emoji font at $font to build the data set from; add it with apt-get install fonts-noto-color-emoji (as root), or put square images of your own in $DATA/128" >&2
    exit 1
  fi
  "$PYTHON" build_emoji.py "$DATA" --heldout "$HELDOUT"
fi
"$PYTHON" resize.py "$DATA/128" --min_size 8
# batch 32, 1000 iterations per size, lr 4e-3 (the reference's lr: 1e-3): 2.4x the images of
# batch 16 x 500 in about the same time on 2 cores, and different emoji shapes instead of one
# (docs/demo_configurations.md: SWD 38.1 where batch 16 and lr 1e-3 gave 88.3)
"$PYTHON" train.py "$DATA" --init_size 8 --max_size 32 --width 32 --code_dim 128 --batch 32 \
  --lr 4e-3 --phase "$PHASE" --iter "$ITER" --sample_every 100 --save_every "$SAVE_EVERY" \
  --seed 0 --ema_decay 0.99 --out "$OUT" --resume   # run again: continues (or reuses) the run
checkpoint=$(printf '%s/checkpoint/%06d.model' "$OUT" "$ITER")
"$PYTHON" generate.py "$checkpoint" --size 32 --out "$OUT/generated" --seed 0 --n_mixing 1 \
  --interpolate 16
if has_png "$HELDOUT/128"; then
  "$PYTHON" resize.py "$HELDOUT/128" --min_size 32
  "$PYTHON" evaluate.py "$checkpoint" "$HELDOUT" --size 32 --n 488 --untrained --real_vs_real \
    | tee "$OUT/swd.md"
  # every checkpoint of the run, scored alike: $OUT/swd.csv and $OUT/curves.png
  "$PYTHON" evaluate.py "$OUT" "$HELDOUT" --size 32 --n 488 --real_vs_real > /dev/null
  # "your own images": four held-out emoji (never trained on) projected into W, mixed with each
  # other, and edited along the top SeFa direction of the coarse layers
  own=()
  for name in emoji_1F605 emoji_1F60D emoji_1F62D emoji_1F63D; do
    [ -f "$HELDOUT/32/$name.png" ] && own+=("$HELDOUT/32/$name.png")
  done
  if [ "${#own[@]}" -lt 4 ]; then
    mapfile -t own < <(compgen -G "$HELDOUT/32/*.png" | sort | head -n 4)
  fi
  "$PYTHON" projector.py "$OUT/checkpoint/train_state.model" "${own[@]}" --size 32 \
    --out "$OUT/own" --seed 0
  "$PYTHON" directions.py "$checkpoint" --layers 0-1 --out "$OUT/own/coarse.npz"
  "$PYTHON" generate.py "$checkpoint" --size 32 --w "$OUT/own/latents.npz" \
    --direction "$OUT/own/coarse.npz:0" --strength -3:3:7 --out "$OUT/own"
else
  echo "no held-out emoji in $HELDOUT/128 (data set built before they were split off): SWD skipped"
fi

echo
echo "demo done:"
echo "  training samples:  $OUT/sample/ (one grid every 100 iterations)"
echo "  checkpoint:        $checkpoint"
echo "  sample grid:       $OUT/generated/sample.png"
echo "  style mixing:      $OUT/generated/sample_mixing_0.png"
echo "  interpolation:     $OUT/generated/interpolation.png and interpolation.gif"
echo "  SWD table:         $OUT/swd.md (trained and untrained vs held-out emoji; lower is better)"
echo "  over training:     $OUT/swd.csv (every checkpoint) and $OUT/curves.png (losses and SWD)"
echo "  your own images:   $OUT/own/ (held-out emoji projected, mixed and edited)"
