#!/bin/bash
# Regenerates the "All scorers" tables of docs/results.md: every model kind and every
# scorer of the catalog on the 30-test-volume benchmark of issue 15 (the template, 128^3)
# and on the real held-out subject (Colin27 at its own 1 mm grid, scripts/real_subject.sh);
# the bundled models also on the second real subject (ITK's T1 head, 2x2x3 mm).
#
# Models: the VAE and DAE trained to convergence (scripts/seed000_ranking.sh), the
# VQ-VAE + prior (scripts/seed002_ranking.sh), and the bundled models of sample_data/
# (scripts/make_sample_data.sh): VAE, ceVAE, the 128x128 and 64x64 restoration models
# and the two joined. Map scorers give the volume score as the map's 99th percentile
# (`--volume-score map_p99`); slice-only scorers (ELBO family) as the slice mean.
#
# Usage (from the repository root, mricron-data installed):
#   bash scripts/results.sh WORKDIR
#   python scripts/results_table.py WORKDIR        # the Markdown tables
# An evaluation whose results.csv exists in WORKDIR is kept (delete its folder to redo);
# the two seed scripts run only when their evaluations are absent.
# Sizing (2-core CPU): seed000_ranking.sh about 25 min, seed002_ranking.sh about 60 min,
# the evaluations here about 40 min.
set -euo pipefail
W=${1:?usage: scripts/results.sh WORKDIR}
HERE=$(dirname "${BASH_SOURCE[0]}")
mkdir -p "$W"
# shellcheck source=scripts/_benchmark30.sh
source "$HERE/_benchmark30.sh"
ensure_benchmark "$W/bench"
[ -f "$W/colin27_eval/dae/results.csv" ] || bash "$HERE/seed000_ranking.sh" "$W"
[ -f "$W/colin27_eval/vqvae_restoration/results.csv" ] || bash "$HERE/seed002_ranking.sh" "$W"

keep_or_evaluate() {  # keep_or_evaluate NAME CHECKPOINT OPTIONS... (template, Colin27)
    local name=$1
    [ -f "$W/eval_$name/results.csv" ] || evaluate_on template "$@"
    [ -f "$W/colin27_eval/$name/results.csv" ] || evaluate_on colin27 "$@"
}
bundled() {  # bundled NAME CHECKPOINT OPTIONS...: keep_or_evaluate, and the ITK subject
    keep_or_evaluate "$@"
    [ -f "$W/itk_eval/$1/results.csv" ] || evaluate_on itk "$@"
}
S=sample_data
MAP=(--volume-score map_p99)
keep_or_evaluate vae_elbo "$W/vae64.best.safetensors" --scorer elbo --scorer kl \
    --scorer rec_nll --scorer iwae --scorer iwae_kl --scorer iwae_rec
keep_or_evaluate vae_tv "$W/vae64.best.safetensors" --scorer vae_tv_restoration "${MAP[@]}"
bundled vae_bundled "$S/vae.safetensors" --scorer rec --param rec:sigma=2 "${MAP[@]}"
bundled cevae_bundled "$S/cevae.safetensors" --scorer rec --scorer cevae_combined \
    "${MAP[@]}"
bundled restoration "$S/restoration.safetensors" --scorer disyre --scorer fpi \
    "${MAP[@]}"
bundled restoration64 "$S/restoration64.safetensors" --scorer fpi "${MAP[@]}"
bundled restoration_ensemble "$S/restoration_ensemble.safetensors" --scorer fpi \
    --param fpi:views=orthogonal --param fpi:through=2 "${MAP[@]}"
