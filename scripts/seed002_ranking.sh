#!/bin/bash
# Trains seed 002's VQ-VAE + autoregressive prior (Naval Marimont & Tarroni 2021) to
# convergence on the CPU with dead-code restarts (issue 15, item 4), reports codebook
# usage, and re-checks the seed's ranking (latent-space restoration above the plain
# VQ-VAE reconstruction error and the prior's code NLL) on the benchmark's test split and
# on the real held-out subject (Colin27, through scripts/real_subject.sh).
#
# The model keeps the paper's 8x down-sampling (160x160 -> 20x20 codes) at 64x64 slices
# (8x8 codes), with the paper's 128 codes, codebook loss and commitment weight 1.0, but
# narrower layers (16-128 channels, one residual block, 64-dimensional codes) and a
# 4-layer prior so that both converge on a 2-core CPU within about an hour.
#
# Usage (from the repository root):
#   bash scripts/seed002_ranking.sh WORKDIR [EPOCHS (40)]
#   WORKDIR/bench      the 30-test-volume benchmark (scripts/_benchmark30.sh)
#   WORKDIR/vqvae64.safetensors, WORKDIR/vqvae64_prior.safetensors (+ .best, .metrics.csv)
#   WORKDIR/codebook.txt   perplexity and codes used on the training slices
#   WORKDIR/vqvae_transfer.md  the map on healthy scans with thicker slices
#   WORKDIR/eval_vqvae*     `anomaly-maps evaluate` on the template's test split
#   WORKDIR/colin27_eval/vqvae*  the same on Colin27
#   WORKDIR/times.txt  seconds per stage
# Sizing (2-core CPU): about 0.35 s per step of 32 slices for the VQ-VAE.
set -euo pipefail
W=${1:?usage: scripts/seed002_ranking.sh WORKDIR [EPOCHS]}
EPOCHS=${2:-40}
B=$W/bench
mkdir -p "$W"
# shellcheck source=scripts/_benchmark30.sh
source "$(dirname "${BASH_SOURCE[0]}")/_benchmark30.sh"
ensure_benchmark "$B"
converge_options "$B" "$EPOCHS"  # sets TRAIN
VQ=$W/vqvae64.safetensors PRIOR=$W/vqvae64_prior.safetensors
if [ ! -f "$W/vqvae64.best.safetensors" ]; then
    timed train-vqvae anomaly-maps train --model vqvae --preset marimont2021 --size 64 \
        --set "widths=[16,32,64,128]" res_blocks=1 code_dim=64 --out "$VQ" "${TRAIN[@]}"
fi
if [ ! -f "$W/vqvae64_prior.best.safetensors" ]; then
    timed train-prior anomaly-maps train --model prior --preset marimont2021 \
        --vqvae "$W/vqvae64.best.safetensors" --set width=128 depth=4 heads=4 \
        --out "$PRIOR" "${TRAIN[@]}"
fi
CK=$W/vqvae64_prior.best.safetensors
python scripts/vqvae_codebook_usage.py --checkpoint "$CK" "$B" | tee "$W/codebook.txt"

for data in template colin27; do
    evaluate_on "$data" vqvae "$CK" --scorer rec --scorer latent_nll --volume-score map_p99
    evaluate_on "$data" vqvae_restoration "$CK" --scorer latent_restoration \
        --volume-score map_p99
done
# Item 3 of issue 15: the map on healthy validation scans re-acquired with 2x and 3x
# thicker slices (p99 ratio 1.0 = as quiet as at the scan's own resolution).
HEALTHY=$(healthy_val "$B")
# shellcheck disable=SC2086
timed transfer-vqvae python scripts/thick_slice_maps.py "$CK" $HEALTHY \
    --scorer latent_restoration --scorer rec --factor 2 3 --batch-size 64 \
    | tee "$W/vqvae_transfer.md"
