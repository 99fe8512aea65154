"""How far bfloat16 autocast maps lie from float32 ones (on the CPU by default).

Scores the bundled sample brain with each bundled sample model in float32 and under
bf16 autocast (``score_volume(precision=...)``), for every scorer that fits the model
(or the scorers named), and prints per scorer the largest map difference and the 99th
percentile of differences, both over the largest float32 map value, the largest slice
score difference over the largest float32 slice score, the volume score's relative
difference, whether the map is within ``scoring.inferer.BF16_TOLERANCE``, and the two
runs' seconds. These figures back the tolerance and each scorer's ``bf16_auto`` flag
(whether ``precision=auto`` may pick bf16 for it).

Usage: python scripts/bf16_tolerance.py [--device DEVICE] [--model NAME ...] [SCORER ...]
"""

import argparse
import time

import numpy as np
import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.samples import sample_path
from anomaly_maps.scoring import get_scorer, list_scorers, score_volume
from anomaly_maps.scoring.inferer import within_bf16_tolerance

MODELS = ("vae", "cevae", "restoration")


def main(models: list[str], scorers: list[str], device: str) -> None:
    volume = load_volume(sample_path("brain"))
    print(f"{'model':12} {'scorer':20} {'map max':>8} {'map p99':>8} {'slices':>8} "
          f"{'volume':>8} {'within':>6} {'fp32 s':>7} {'bf16 s':>7}"
          "   (|bf16 - fp32| / max |fp32|)")  # fmt: skip
    for model in models:
        checkpoint = load_checkpoint(sample_path(model), device=device)
        names = [s for s in scorers or list_scorers() if get_scorer(s).fits(checkpoint.kinds)]
        for name in names:
            runs, seconds = {}, {}
            for p in ("fp32", "bf16"):
                start = time.perf_counter()
                runs[p] = score_volume(volume, checkpoint, [(name, {})], precision=p)[0]
                seconds[p] = time.perf_counter() - start
            want, got = runs["fp32"], runs["bf16"]
            assert got.precision == "bf16", got.precision
            maps, within = "       -        -", "-"
            if want.map is not None:
                diff = np.abs(got.map - want.map)[want.foreground] / np.abs(want.map).max()
                maps = f"{diff.max():8.4f} {np.percentile(diff, 99):8.4f}"
                within = str(within_bf16_tolerance(*map(torch.from_numpy, (got.map, want.map))))
            slices = _relative(got.slice_scores, want.slice_scores)
            total = _relative(got.volume_score, want.volume_score)
            print(
                f"{model:12} {name:20} {maps} {slices:8.4f} {total:8.4f} {within:>6} "
                f"{seconds['fp32']:7.2f} {seconds['bf16']:7.2f}",
                flush=True,
            )


def _relative(got, want) -> float:
    return float(np.max(np.abs(np.subtract(got, want))) / np.max(np.abs(want)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", action="append", choices=MODELS, help="default: all")
    parser.add_argument("scorers", nargs="*", help="default: all; each on the models it fits")
    args = parser.parse_args()
    main(args.model or list(MODELS), args.scorers, args.device)
