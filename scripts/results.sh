#!/bin/bash
# Regenerates the numbers in docs/results.md: a 128^3 MOOD-style benchmark from the
# bundled template, five models trained by `anomaly-maps train` on 20 of its healthy
# training volumes (CPU-sized runs), and `anomaly-maps evaluate` of every scorer.
# Usage: bash scripts/results.sh WORKDIR   (about 2-3 hours on 2 CPU cores)
set -euo pipefail
W=${1:?usage: scripts/results.sh WORKDIR}
B=$W/bench128
mkdir -p "$W"
timed() { local name=$1; shift; local t0; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }

timed benchmark anomaly-maps make-benchmark --out "$B" --n-train 30 --n-val 10 --n-test 30 --seed 0 --shape 128
DATA="$B/train/000[01]*.nii.gz"   # 20 healthy training volumes
COMMON=(--data "$DATA" --epochs 6 --batch-size 32 --lr 1e-3 --seed 0 --overwrite)
timed train-vae anomaly-maps train --model vae --preset zimmerer2019 --set likelihood_scale=0.1 --out "$W/vae64.safetensors" "${COMMON[@]}"
timed train-dae anomaly-maps train --model dae --preset zimmerer2019 --out "$W/dae64.safetensors" "${COMMON[@]}"
timed train-cevae anomaly-maps train --model cevae --preset mood2020 --size 64 --set 'widths=[16,32,64,256]' latent_dim=256 likelihood_scale=0.1 --out "$W/cevae64.safetensors" "${COMMON[@]}"
timed train-vqvae anomaly-maps train --model vqvae --preset marimont2021 --size 64 --set 'widths=[32,64,128,128]' res_blocks=2 code_dim=64 num_codes=128 --out "$W/vqvae64.safetensors" --data "$DATA" --epochs 5 --batch-size 32 --lr 1e-3 --seed 0 --overwrite
timed train-prior anomaly-maps train --model prior --preset marimont2021 --vqvae "$W/vqvae64.safetensors" --set width=128 depth=4 heads=4 --out "$W/vqprior64.safetensors" --data "$DATA" --epochs 8 --batch-size 32 --lr 1e-3 --seed 0 --overwrite

EVAL=(--benchmark "$B" --batch-size 64 --overwrite)
timed eval-vae anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer rec --scorer sample_std --scorer rec_grad --scorer kl_grad --scorer elbo_grad \
    --scorer vae_tv_restoration --scorer elbo --scorer kl --scorer iwae \
    --param sample_std:n_samples=8 --param rec_grad:n_smooth=8 --param kl_grad:n_smooth=8 \
    --param elbo_grad:n_smooth=8 --param iwae:n_samples=15 --param vae_tv_restoration:n_steps=25 \
    --out "$W/eval_vae" "${EVAL[@]}"
timed eval-vae-smoothed anomaly-maps evaluate --checkpoint "$W/vae64.safetensors" \
    --scorer rec --param rec:sigma=2 --out "$W/eval_vae_smoothed" "${EVAL[@]}"
timed eval-dae anomaly-maps evaluate --checkpoint "$W/dae64.safetensors" --scorer rec \
    --out "$W/eval_dae" "${EVAL[@]}"
timed eval-cevae anomaly-maps evaluate --checkpoint "$W/cevae64.safetensors" \
    --scorer rec --scorer cevae_combined --scorer kl_grad --param kl_grad:n_smooth=8 \
    --out "$W/eval_cevae" "${EVAL[@]}"
timed eval-vqvae anomaly-maps evaluate --checkpoint "$W/vqprior64.safetensors" \
    --scorer rec --scorer latent_restoration --scorer latent_nll \
    --out "$W/eval_vqvae" "${EVAL[@]}"
