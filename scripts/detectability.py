"""How much of each benchmark anomaly type is visible at all, at the data's resolution
and on a model's slice grid: pixel AP of two model-free maps, by type.

- ``deviation``: ``|x - mean| / (std + 0.02)`` against the voxel-wise mean and standard
  deviation of the benchmark's healthy training volumes (which share the template's
  grid), i.e. what a perfect model of the healthy intensities at each voxel would flag;
- ``detail``: local high-frequency energy, the root mean square over a 5-voxel window of
  ``x - gaussian(x, 1 voxel)``, i.e. texture.

Both are computed on the volumes as stored, and on axial slices resized to ``--size``
pixels the way the models' preprocessing does (``resize_planes``: antialiased bilinear),
so the table says which types a model working at that size cannot see, whatever it
learns. Neither map is a scorer: they read the benchmark's own generator (the deviation
map needs the test volumes on the training volumes' grid, which real scans are not).
Groups follow ``anomaly-maps evaluate`` (all voxels of a type's volumes and of the
healthy ones, pooled); the maps are not clipped to [0, 1] as MOOD's reading would.

Usage: python scripts/detectability.py BENCHMARK [--size 64] [--n-train 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from anomaly_maps.benchmark.cases import read_cases
from anomaly_maps.io import load_volume
from anomaly_maps.metrics import ScoreCounts, pool_counts, score_counts
from anomaly_maps.preprocessing import resize_planes

TYPES = ("intensity", "mirror", "noise", "shift", "sink", "source")


def on_slices(data: np.ndarray, size: int) -> np.ndarray:
    """``data`` (X, Y, Z) as its Z slices resized to ``size`` x ``size``: (Z, size, size)."""
    planes = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, 2, 0)))
    return resize_planes(planes.float(), (size, size)).numpy()


def detail(data: np.ndarray, planar: bool) -> np.ndarray:
    """Local RMS of ``data`` minus its Gaussian blur (sigma 1 voxel; in-plane only for
    slices, whose first axis is the slice index)."""
    sigma, window = ((0, 1, 1), (1, 5, 5)) if planar else (1, 5)
    high = data - ndimage.gaussian_filter(data, sigma)
    return np.sqrt(np.maximum(ndimage.uniform_filter(high * high, window), 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("--size", type=int, default=64, help="model slice side (pixels)")
    parser.add_argument("--n-train", type=int, default=20, help="healthy volumes for the mean")
    args = parser.parse_args()
    if args.size < 8 or args.n_train < 2:
        parser.error("--size must be >= 8 and --n-train >= 2")
    train = sorted((args.benchmark / "train").glob("*.nii.gz"))[: args.n_train]
    if len(train) < 2:
        parser.error(f"{args.benchmark}/train: fewer than 2 volumes")
    healthy = np.stack([load_volume(p).data.astype(np.float32) for p in train])
    grids = {"stored": lambda d: d, f"{args.size}x{args.size}": lambda d: on_slices(d, args.size)}
    stats = {}
    for grid, to_grid in grids.items():
        on_grid = np.stack([to_grid(v) for v in healthy])
        stats[grid] = on_grid.mean(0), on_grid.std(0) + 0.02
    cases = [c for c in read_cases(args.benchmark) if c.split == "test"]
    counts: dict[tuple[str, str], list[ScoreCounts]] = {}
    for case in cases:
        x = load_volume(args.benchmark / "test" / "toy" / case.case).data.astype(np.float32)
        label = load_volume(args.benchmark / "test" / "toy_label" / "pixel" / case.case).data
        for grid, to_grid in grids.items():
            xg, yg = to_grid(x), to_grid(label.astype(np.float32)) >= 0.5
            mean, std = stats[grid]
            found = {"deviation": np.abs(xg - mean) / std, "detail": detail(xg, grid != "stored")}
            for name, m in found.items():
                counts.setdefault((grid, name), []).append(score_counts(yg, m))
    print(f"| grid | map | pooled | {' | '.join(TYPES)} |")
    print(f"|---|---|---|{'---|' * len(TYPES)}")
    for (grid, name), per_case in counts.items():
        row = [pool_counts(per_case).average_precision()]
        for kind in TYPES:
            pairs = zip(per_case, cases, strict=True)
            group = [c for c, case in pairs if case.anomaly in (kind, "none")]
            row.append(pool_counts(group).average_precision())
        print(f"| {grid} | `{name}` | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
