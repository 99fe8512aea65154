"""Does a map miss an anomaly, or does the label hold tissue the anomaly left as it was?

The benchmark labels the whole sphere an anomaly filled, but not every voxel in it
changed: a mirrored block keeps its mid-plane, a sink or source its rim, a small shift
whatever looks like its neighbour. Each test case's healthy volume before its anomaly
is drawn again from the benchmark's seed (:func:`anomaly_maps.benchmark.original_draws`),
and per anomaly type this prints:

- ``changed``: the share of the label's voxels whose intensity the anomaly changed by
  more than ``--min-change`` (intensities in [0, 1]; the healthy draws' noise is 0.01);
- ``AP sphere``: pixel AP against the benchmark's labels, as ``anomaly-maps evaluate``
  computes it (MOOD reading, a type's volumes and the healthy ones pooled);
- ``AP changed``: the same with the label's unchanged voxels left out of the count, so a
  map is not charged for tissue that is not anomalous.

If ``AP changed`` is no higher than ``AP sphere``, the map misses what changed.

Usage: python scripts/changed_voxels.py BENCHMARK PREDICTIONS [--min-change 0.03]
(PREDICTIONS: the test maps, e.g. EVAL/predictions/test/fpi of ``anomaly-maps evaluate``)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from anomaly_maps.benchmark import original_draws
from anomaly_maps.io import load_volume
from anomaly_maps.metrics import ScoreCounts, pool_counts, score_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--min-change", type=float, default=0.03,
                        help="intensity change that counts as changed, in (0, 1)")  # fmt: skip
    args = parser.parse_args()
    if not 0 < args.min_change < 1:
        parser.error(f"--min-change {args.min_change}: expected a value in (0, 1)")
    sphere: dict[str, list[ScoreCounts]] = {}
    changed: dict[str, list[ScoreCounts]] = {}
    share: dict[str, list[float]] = {}
    for case, draw in original_draws(args.benchmark):
        path = args.predictions / case.case
        if not path.is_file():
            parser.error(f"{path}: no map for test case {case.case}")
        scores = load_volume(path).data
        scan = load_volume(args.benchmark / "test" / "toy" / case.case).data
        label = load_volume(args.benchmark / "test" / "toy_label" / "pixel" / case.case).data
        label = label > 0
        moved = np.abs(scan.astype(np.float32) - draw.data) > args.min_change
        keep = ~label | moved
        sphere.setdefault(case.anomaly, []).append(score_counts(label, scores, mood=True))
        changed.setdefault(case.anomaly, []).append(
            score_counts(label[keep], scores[keep], mood=True)
        )
        if case.label:
            share.setdefault(case.anomaly, []).append(float(moved[label].mean()))
    healthy_sphere, healthy_changed = sphere.pop("none", []), changed.pop("none", [])
    print(f"| type | volumes | changed > {args.min_change} | AP sphere | AP changed |")
    print("|---|---|---|---|---|")
    for kind in sorted(sphere):
        ap_sphere = pool_counts(sphere[kind] + healthy_sphere).average_precision()
        ap_changed = pool_counts(changed[kind] + healthy_changed).average_precision()
        shares = ", ".join(f"{s:.2f}" for s in share[kind])
        print(f"| {kind} | {len(sphere[kind])} | {shares} | {ap_sphere:.3f} | {ap_changed:.3f} |")


if __name__ == "__main__":
    main()
