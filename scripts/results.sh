#!/bin/bash
# Regenerates the numbers in docs/results.md: a 128^3 MOOD-style benchmark from the
# bundled template, five models trained by `anomaly-maps train` on its 20 healthy
# training volumes (CPU-sized runs), and `anomaly-maps evaluate` of the papers' scorers
# on its 14 test volumes (Dice threshold from its 6 validation volumes).
# Usage: bash scripts/results.sh WORKDIR     (timings: WORKDIR/times.txt)
set -euo pipefail
W=${1:?usage: scripts/results.sh WORKDIR}
B=$W/bench
mkdir -p "$W"
timed() { local name=$1; shift; local t0; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }

timed benchmark anomaly-maps make-benchmark --out "$B" --n-train 20 --n-val 6 --n-test 14 --seed 0 --shape 128
TRAIN=(--data "$B/train/*.nii.gz" --batch-size 32 --lr 1e-3 --seed 0 --overwrite)
timed train-vae anomaly-maps train --model vae --preset zimmerer2019 --set likelihood_scale=0.1 \
    --out "$W/vae64.safetensors" --epochs 6 "${TRAIN[@]}"
timed train-dae anomaly-maps train --model dae --preset zimmerer2019 \
    --out "$W/dae64.safetensors" --epochs 6 "${TRAIN[@]}"
timed train-cevae anomaly-maps train --model cevae --preset mood2020 --size 64 \
    --set 'widths=[16,32,64,256]' latent_dim=256 likelihood_scale=0.1 \
    --out "$W/cevae64.safetensors" --epochs 6 "${TRAIN[@]}"
timed train-vqvae anomaly-maps train --model vqvae --preset marimont2021 --size 64 \
    --set 'widths=[32,64,128,128]' res_blocks=2 code_dim=64 num_codes=128 \
    --out "$W/vqvae64.safetensors" --epochs 3 "${TRAIN[@]}"
timed train-prior anomaly-maps train --model prior --preset marimont2021 \
    --vqvae "$W/vqvae64.safetensors" --set width=128 depth=4 heads=4 \
    --out "$W/vqprior64.safetensors" --epochs 5 "${TRAIN[@]}"

EVAL=(--benchmark "$B" --batch-size 64 --overwrite)
timed eval-vae-fast anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer rec --scorer sample_std --scorer elbo --scorer kl --scorer iwae \
    --out "$W/eval_vae_fast" "${EVAL[@]}"
timed eval-vae-smoothed anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer rec --param rec:sigma=2 --out "$W/eval_vae_smoothed" "${EVAL[@]}"
timed eval-dae anomaly-maps evaluate --checkpoint "$W/dae64.safetensors" --scorer rec \
    --out "$W/eval_dae" "${EVAL[@]}"
timed eval-vae-grad anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer rec_grad --scorer kl_grad --scorer elbo_grad \
    --param rec_grad:n_smooth=4 --param kl_grad:n_smooth=4 --param elbo_grad:n_smooth=4 \
    --out "$W/eval_vae_grad" "${EVAL[@]}"
timed eval-cevae anomaly-maps evaluate --checkpoint "$W/cevae64.safetensors" \
    --scorer rec --scorer cevae_combined --out "$W/eval_cevae" "${EVAL[@]}"
timed eval-vqvae anomaly-maps evaluate --checkpoint "$W/vqprior64.safetensors" \
    --scorer rec --scorer latent_restoration --scorer latent_nll \
    --out "$W/eval_vqvae" "${EVAL[@]}"
timed eval-vae-tv anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer vae_tv_restoration \
    --out "$W/eval_vae_tv" "${EVAL[@]}"
