#!/bin/bash
# Re-checks seed 000's ranking of pixel scores (Zimmerer et al. 2019: DAE < reconstruction
# < smoothed reconstruction < sampling deviation < reconstruction gradient < KL gradient
# = ELBO gradient, by pixel AUROC on BraTS) with a VAE trained to convergence rather than
# the 6-epoch VAE of scripts/results.sh (issue 15, targets). Trains a VAE and a DAE on the
# benchmark's healthy training volumes with early stopping on a held-out tenth (the epoch
# with the lowest validation loss is scored), then evaluates every pixel scorer of the
# seed on the benchmark's test split and on the real held-out subject (Colin27, through
# scripts/real_subject.sh, registered into the model's space).
#
# Usage (from the repository root):
#   bash scripts/seed000_ranking.sh WORKDIR [EPOCHS (40)]
#   WORKDIR/bench      the 30-test-volume benchmark; made as scripts/train_restoration.sh
#                      makes it when absent
#   WORKDIR/vae64.safetensors, WORKDIR/dae64.safetensors (+ .best, .metrics.csv)
#   WORKDIR/eval_*     `anomaly-maps evaluate` on the template's test split
#   WORKDIR/colin27_eval/*  the same on Colin27
#   WORKDIR/times.txt  seconds per stage
# Sizing (2-core CPU): about 10 s per VAE epoch on the 40 training volumes' 64x64 slices.
set -euo pipefail
W=${1:?usage: scripts/seed000_ranking.sh WORKDIR [EPOCHS]}
EPOCHS=${2:-40}
B=$W/bench
mkdir -p "$W"
# shellcheck source=scripts/_benchmark30.sh
source "$(dirname "${BASH_SOURCE[0]}")/_benchmark30.sh"
ensure_benchmark "$B"
converge_options "$B" "$EPOCHS"  # sets TRAIN
timed train-vae anomaly-maps train --model vae --preset zimmerer2019 \
    --set likelihood_scale=0.1 --out "$W/vae64.safetensors" "${TRAIN[@]}"
timed train-dae anomaly-maps train --model dae --preset zimmerer2019 \
    --out "$W/dae64.safetensors" "${TRAIN[@]}"

VAE=$W/vae64.best.safetensors DAE=$W/dae64.best.safetensors
GRAD=(--scorer rec_grad --scorer kl_grad --scorer elbo_grad --param rec_grad:n_smooth=4
      --param kl_grad:n_smooth=4 --param elbo_grad:n_smooth=4 --volume-score map_p99)
for data in template colin27; do
    evaluate_on "$data" vae "$VAE" --scorer rec --scorer sample_std --volume-score map_p99
    evaluate_on "$data" vae_smoothed "$VAE" --scorer rec --param rec:sigma=2 \
        --volume-score map_p99
    evaluate_on "$data" vae_grad "$VAE" "${GRAD[@]}"
    evaluate_on "$data" dae "$DAE" --scorer rec --volume-score map_p99
done
