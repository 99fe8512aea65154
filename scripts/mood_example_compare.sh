#!/usr/bin/env bash
# Side by side on this machine: the MOOD challenge's own ceVAE example (GitHub
# MIC-DKFZ/mood, example_algos/algorithms/ce_vae.py, --score-mode combi) against
# `anomaly-maps score --scorer cevae_combined` with the same-size ceVAE (preset
# mood2020: 128x128 slices, widths 16-64-256-1024, latent 128), on the same 256^3 volume.
#
# What is timed: each whole process, from `python` starting to its map written (imports,
# model construction, reading, scoring every slice, writing). Both models are untrained
# (fresh weights): speed does not depend on training, and nothing is trained here.
# Three alternating runs of each; the medians and their ratios are printed. anomaly-maps
# runs twice: in float32 (the default on the CPU) and with `--precision bf16`, which
# CPUs with AVX512-BF16 or AMX run natively (cevae_combined's maps then lie within
# 0.3-0.6 % of float32 at their 99th percentile, 2.5-6.4 % at most:
# scripts/bf16_tolerance.py).
#
# The example scores all 256 slices of the volume with SmoothGrad's 2 noisy copies per
# batch of 16; anomaly-maps scores the slices with foreground only (its preprocessing
# finds them), with its own batch size. The example's trixi logger is replaced by the
# no-op shim in scripts/mood_example_shim (see its README); its one trixi function that
# scores, get_smooth_image_gradient, is copied unchanged from TRIXI_CLONE.
#
# Usage: scripts/mood_example_compare.sh MOOD_CLONE TRIXI_CLONE [VOLUME_256.nii.gz]
#   MOOD_CLONE   a local clone of https://github.com/MIC-DKFZ/mood (nothing is downloaded)
#   TRIXI_CLONE  a local clone of https://github.com/MIC-DKFZ/trixi
#   VOLUME       a 256^3 scan (default: the bundled sample brain centred in a 256^3 cube)
# Needs: anomaly-maps installed, plus click and scikit-learn (the example imports them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 2 ]; then
  echo "usage: $0 MOOD_CLONE TRIXI_CLONE [VOLUME_256.nii.gz]" >&2
  exit 2
fi
mood="$(cd "$1" && pwd)" trixi="$(cd "$2" && pwd)"
example="$mood/example_algos/algorithms/ce_vae.py"
gradients="$trixi/trixi/util/pytorchutils.py"
[ -f "$example" ] || { echo "MOOD_CLONE $1: no example_algos/algorithms/ce_vae.py; expected a clone of MIC-DKFZ/mood" >&2; exit 2; }
[ -f "$gradients" ] || { echo "TRIXI_CLONE $2: no trixi/util/pytorchutils.py; expected a clone of MIC-DKFZ/trixi" >&2; exit 2; }
[ $# -lt 3 ] || [ -f "$3" ] || { echo "VOLUME $3: no such file; expected a 256^3 NIfTI scan" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/test" "$tmp/data" "$tmp/shim"
cp -r "$here/mood_example_shim/trixi" "$here/mood_example_shim/monai" "$tmp/shim/"
cp "$gradients" "$tmp/shim/trixi/util/pytorchutils.py"

python - "$tmp" "${3:-}" <<'PY'
import sys
from pathlib import Path

import numpy as np
import torch

from anomaly_maps.bench import _cube_brain
from anomaly_maps.checkpoint import save_checkpoint
from anomaly_maps.io import load_volume, save_volume
from anomaly_maps.models import build_model, model_presets
from anomaly_maps.preprocessing import PreprocessingSpec

tmp, given = Path(sys.argv[1]), sys.argv[2]
volume = load_volume(given) if given else _cube_brain(256)
if volume.shape != (256, 256, 256):
    sys.exit(f"VOLUME {given}: shape {volume.shape}; expected 256^3")
# the example reads preprocessed MOOD data: intensities in [0, 1]
data = volume.data.astype(np.float32)
data = (data - data.min()) / max(float(np.ptp(data)), 1e-12)
save_volume(volume.with_data(data), tmp / "test" / "volume.nii.gz")
torch.manual_seed(0)
model = build_model(model_presets("cevae")["mood2020"])
save_checkpoint(tmp / "mood2020.safetensors", {"cevae": model},
                preprocessing=PreprocessingSpec(size=128))
PY

python - "$tmp" "$mood" "$example" <<'PY'
import os
import statistics
import subprocess
import sys
import time

tmp, mood, example = sys.argv[1:]
volume = f"{tmp}/test/volume.nii.gz"
env = {**os.environ, "PYTHONPATH": f"{tmp}/shim:{mood}"}
runs = {
    "anomaly-maps cevae_combined": lambda i: (
        [sys.executable, "-m", "anomaly_maps.cli", "score", volume, "--checkpoint",
         f"{tmp}/mood2020.safetensors", "--scorer", "cevae_combined", "--device", "cpu",
         "--out", f"{tmp}/ours{i}"], os.environ),
    "anomaly-maps ... --precision bf16": lambda i: (
        [sys.executable, "-m", "anomaly_maps.cli", "score", volume, "--checkpoint",
         f"{tmp}/mood2020.safetensors", "--scorer", "cevae_combined", "--device", "cpu",
         "--precision", "bf16", "--out", f"{tmp}/bf16_{i}"], os.environ),
    "MOOD example ce_vae combi": lambda i: (
        [sys.executable, example, "-r", "predict", "-m", "pixel", "--score-mode", "combi",
         "-d", f"{tmp}/data", "-t", f"{tmp}/test", "-p", f"{tmp}/theirs{i}"], env),
}
seconds = {name: [] for name in runs}
for i in range(3):
    for name, command in runs.items():
        argv, run_env = command(i)
        os.makedirs(f"{tmp}/theirs{i}", exist_ok=True)
        start = time.perf_counter()
        done = subprocess.run(argv, env=run_env, cwd=mood, capture_output=True, text=True)
        seconds[name].append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{name} failed ({' '.join(argv)}):\n{done.stderr[-3000:]}")
assert os.path.exists(f"{tmp}/theirs0/volume.nii.gz"), "the example wrote no map"
assert os.path.exists(f"{tmp}/ours0/volume_cevae_combined.nii.gz"), "anomaly-maps wrote no map"
commit = subprocess.run(["git", "-C", mood, "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True).stdout.strip() or "?"
print(f"one 256^3 volume, whole process, untrained same-size ceVAE, CPU "
      f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}); MIC-DKFZ/mood {commit}")
for name, values in seconds.items():
    runs_s = " ".join(f"{v:.1f}" for v in values)
    print(f"{name:30} median {statistics.median(values):6.1f} s   (runs: {runs_s})")
ours, ours_bf16, theirs = (statistics.median(v) for v in seconds.values())
print(f"ratio (example / anomaly-maps): {theirs / ours:.2f}x float32, "
      f"{theirs / ours_bf16:.2f}x bf16 autocast")
PY
