#!/usr/bin/env bash
# The GPU path checked on a CUDA machine, its figures in one file:
#   1. the tests marked `cuda` (skipped elsewhere),
#   2. `anomaly-maps bench train --device cuda`,
#   3. `anomaly-maps bench score --device cuda --side 256`,
#   4. bf16 autocast against float32 on every bundled model and scorer
#      (scripts/bf16_tolerance.py: whether the scorers' bf16_auto flags hold on CUDA), and
#      `anomaly-maps bench score-many --device cuda` (readers preprocess, pinned memory),
#   5. with two GPUs or more: sharded scoring of 8 scans over 2 torchrun ranks, its
#      outputs compared byte for byte with one process.
# Usage: scripts/gpu_check.sh [FIGURES_FILE]   (default gpu_figures.txt)
set -euo pipefail
out="${1:-gpu_figures.txt}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
  echo "# gpu_check $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0), \
'bf16' if torch.cuda.is_bf16_supported() else 'no bf16')"
  echo "## tests marked cuda"
  python -m pytest -m cuda -q -p no:cacheprovider 2>&1 | tail -3
  echo "## bench train --device cuda"
  python -m anomaly_maps.cli bench train --device cuda
  echo "## bench score --device cuda --side 256"
  python -m anomaly_maps.cli bench score --device cuda --side 256
  echo "## bf16 vs float32 maps on cuda (fractions of the largest float32 value)"
  python scripts/bf16_tolerance.py --device cuda
  echo "## bench score-many --device cuda"
  python -m anomaly_maps.cli bench score-many --device cuda
  gpus="$(python -c 'import torch; print(torch.cuda.device_count())')"
  if [ "$gpus" -ge 2 ]; then
    echo "## sharded scoring over 2 GPUs (torchrun) vs one process"
    python - "$tmp" <<'PY'
import sys
from pathlib import Path

import numpy as np
import torch

from anomaly_maps.bench import _cube_brain, _preset_checkpoint
from anomaly_maps.checkpoint import save_checkpoint
from anomaly_maps.io import save_volume

tmp = Path(sys.argv[1])
brain = _cube_brain(128)
for i in range(8):
    noise = np.random.default_rng(i).normal(0, 0.02, brain.shape) * (brain.data > 0)
    save_volume(brain.with_data((brain.data * (1 + noise)).astype(np.float32)),
                tmp / "scans" / f"scan{i}.nii.gz")
preset = _preset_checkpoint("vae", torch.device("cpu"))
save_checkpoint(tmp / "vae.safetensors", preset.models, preprocessing=preset.preprocessing)
PY
    args=(score "$tmp"/scans/*.nii.gz --checkpoint "$tmp/vae.safetensors" --scorer rec)
    python -m anomaly_maps.cli "${args[@]}" --out "$tmp/one" --device cuda:0 >/dev/null 2>&1
    start=$(date +%s.%N)
    torchrun --nproc-per-node 2 -m anomaly_maps.cli "${args[@]}" --out "$tmp/two" >/dev/null 2>&1
    echo "2 ranks: $(echo "$(date +%s.%N) - $start" | bc) s for 8 scans of 128^3"
    diff -r "$tmp/one" "$tmp/two" && echo "outputs identical to one process"
  else
    echo "## one GPU: no 2-GPU sharded run"
  fi
} 2>&1 | tee "$out"
echo "figures written to $out"
