#!/usr/bin/env bash
# Short ablations of the hand recipe's big augmentations (issue #17): the same recipe and seed, 1000 steps,
# once with everything on and once with each group off; the PCK@0.2 on hand_more/val at the last step (EMA
# weights, no checkpoint picked) is read from each run's eval event. Run from the project's root:
#   bash training/recipes/ablations/hand_augment.sh [OUT_DIR]
set -euo pipefail
out="${1:-runs/ablations}"
recipe=training/recipes/hand_lite.toml
common=(--set train.steps=1000 --set train.eval_every=0 --set train.checkpoint_every=1000 --set train.warmup_steps=100)
run() {  # name, overrides...
  local name=$1; shift
  cpm train "$recipe" "${common[@]}" "$@" --output "$out/$name" > "$out/$name.jsonl" 2> "$out/$name.err" || true
  python - "$out/$name.jsonl" "$name" <<'PY'
import json, sys
evals = [json.loads(line) for line in open(sys.argv[1]) if line.startswith('{"event": "eval"')]
print(f"{sys.argv[2]:<22} PCK@0.2 hand_more/val {evals[-1]['pck']:.3f}" if evals else f"{sys.argv[2]}: no eval")
PY
}
mkdir -p "$out"
run all_on
run no_copy_paste --set augment.paste_background=0 --set augment.paste_subject=0 --set augment.occluder=0
run no_camera_effects --set augment.motion_blur=0 --set augment.defocus_blur=0 --set augment.jpeg=0 \
  --set augment.hue=0 --set augment.channel_gain=0
run none_of_the_new --set augment.paste_background=0 --set augment.paste_subject=0 --set augment.occluder=0 \
  --set augment.motion_blur=0 --set augment.defocus_blur=0 --set augment.jpeg=0 --set augment.hue=0 \
  --set augment.channel_gain=0
