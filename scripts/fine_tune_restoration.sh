#!/bin/bash
# Fine-tune the bundled 128x128 restoration model with other local changes (issue 15):
# `anomaly-maps train --init` keeps its network and slicing and `--set` changes only
# what shapes the training (here the kinds of local change of its `mix` corruption),
# on the 30-test-volume benchmark's 40 healthy training volumes, then evaluates it as
# the bundled model is (`fpi`, three views, through-plane smoothing).
#
# Usage: bash scripts/fine_tune_restoration.sh WORKDIR [LOCAL] [EPOCHS]
#   e.g. bash scripts/fine_tune_restoration.sh W noise,warp 5   (868 s of training on a
#   2-core CPU; docs/results.md, "local warps fine-tuned into the 128x128 model")
set -euo pipefail
W=${1:?usage: scripts/fine_tune_restoration.sh WORKDIR [LOCAL] [EPOCHS]}
LOCAL=${2:-noise,warp}
EPOCHS=${3:-5}
B=$W/bench
CKPT=$W/restoration128_${LOCAL//,/_}.safetensors
mkdir -p "$W"
source "$(dirname "${BASH_SOURCE[0]}")/_benchmark30.sh"
ensure_benchmark "$B"

timed fine-tune anomaly-maps train --model restoration \
    --init src/anomaly_maps/sample_data/restoration.safetensors \
    --set "local_changes=[\"${LOCAL//,/\",\"}\"]" \
    --data "$B/train/*.nii.gz" --out "$CKPT" --epochs "$EPOCHS" --batch-size 32 --lr 3e-4 \
    --lr-schedule cosine --patience 0 --min-foreground 0.01 --val-fraction 0.1 --seed 0 \
    --device cpu --overwrite
evaluate_on template "fine-tuned-${LOCAL//,/_}" "$CKPT" --scorer fpi \
    --param fpi:views=orthogonal --param fpi:through=2 --volume-score map_p99
evaluate_on colin27 "fine-tuned-${LOCAL//,/_}" "$CKPT" --scorer fpi \
    --param fpi:views=orthogonal --param fpi:through=2 --volume-score map_p99
