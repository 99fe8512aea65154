"""Pooled pixel AP, AUROC and best Dice of ``vae_tv_restoration`` per (steps, step size).

Scores every case of one benchmark split with a VAE checkpoint, once per setting, and
prints the metrics pooled over all voxels (plain ``rec`` first, as the baseline). The
defaults of ``vae_tv_restoration`` come from this sweep on a tuning benchmark that the
results' test split does not share (README, "Scoring scans"). Usage::

    anomaly-maps make-benchmark --out tune128 --n-train 0 --n-val 16 --n-test 0 \\
        --seed 7 --shape 128
    python scripts/tune_tv_restoration.py VAE.safetensors tune128 --split val \\
        --settings 5:0.1,10:0.1,20:0.1,10:0.05,3:0.3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anomaly_maps.benchmark import read_cases
from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.metrics import pool_counts, score_counts
from anomaly_maps.scoring import score_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--settings", default="5:0.1,10:0.1,20:0.1,10:0.05,3:0.3",
                        help="comma-separated N_STEPS:LR pairs")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    folder = args.benchmark / args.split
    cases = [
        (load_volume(folder / "toy" / c.case), load_volume(folder / "toy_label/pixel" / c.case))
        for c in read_cases(args.benchmark)
        if c.split == args.split
    ]
    settings = [("rec", {})] + [
        ("vae_tv_restoration", {"n_steps": int(n), "lr": float(lr)})
        for n, lr in (pair.split(":") for pair in args.settings.split(","))
    ]
    print(f"{len(cases)} {args.split} cases of {args.benchmark}")
    for name, params in settings:
        start = time.perf_counter()
        counts = []
        for scan, label in cases:
            [result] = score_volume(scan, checkpoint, [(name, params)], device=args.device)
            counts.append(score_counts(label.data > 0, result.map))
        pooled = pool_counts(counts)
        print(f"{name:20s} {params!s:30s} AP {pooled.average_precision():.4f} "
              f"AUROC {pooled.roc_auc():.4f} best Dice {pooled.best_dice()[0]:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
