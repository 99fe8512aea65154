"""How often the top finding of an anomalous volume lies inside its lesion (issue 17's
benchmark target), overall and by anomaly type and size.

Reads a benchmark made by ``anomaly-maps make-benchmark`` and the predictions of one
scorer written by ``anomaly-maps evaluate`` (MOOD layout, ``mood``-normalised maps), cuts
each anomalous test volume's map at ``--threshold`` (default: the value the healthy 99th
percentile takes under the ``mood`` normalisation) into regions with
:func:`anomaly_maps.findings.find_regions`, and checks whether the top region has its
peak voxel inside the lesion label. A volume without any region counts as a miss.
``--order`` says which region is on top: the highest peak (``peak``, the order of the
findings table, the CSV and the report), or, to compare, the largest mass above the
threshold (``mass``: voxels x (mean - threshold)), volume or mean score. A second count,
"near", also takes a peak within ``--near-mm`` (default 4) of the label: a map that
peaks at the seam of a shifted or mirrored block, just outside its sphere, sends the
reader to the lesion all the same; the issue's target is the first count.

    python scripts/findings_hit_rate.py BENCH PRED_DIR [--split test] [--min-ml 0.1]
        [--order peak|mass|volume|mean] [--near-mm 4]

``PRED_DIR`` is for example ``EVAL/predictions/test/fpi``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from anomaly_maps.benchmark import read_cases
from anomaly_maps.findings import Finding, find_regions
from anomaly_maps.io import load_volume
from anomaly_maps.scoring.postprocess import healthy_p99_value

#: --order -> the key that puts a region on top (largest first), given the threshold
ORDERS = {
    "peak": lambda f, threshold: f.peak_score,
    "mass": lambda f, threshold: f.voxels * (f.mean_score - threshold),
    "volume": lambda f, threshold: f.volume_ml,
    "mean": lambda f, threshold: f.mean_score,
}


def top_finding(findings: tuple[Finding, ...], threshold: float, order: str) -> Finding:
    """The region ``order`` puts first (the first of equals, as the table lists them)."""
    return max(findings, key=lambda f: ORDERS[order](f, threshold))


def top_finding_hits(
    bench: Path,
    pred: Path,
    split: str,
    threshold: float,
    min_ml: float,
    order: str = "peak",
    near_mm: float = 4.0,
):
    """(case, anomaly, size, hit, near) for every anomalous case of ``split``: ``hit``
    the top finding's peak inside the label, ``near`` within ``near_mm`` of it."""
    for case in read_cases(bench):
        if case.split != split or not case.label:
            continue
        heat = load_volume(pred / case.case)
        label = load_volume(bench / split / "toy_label" / "pixel" / case.case).data > 0
        regions = find_regions(heat.data, heat.affine, threshold, min_ml=min_ml)
        if not regions.findings:
            yield case.case, case.anomaly, case.size, False, False
            continue
        peak = top_finding(regions.findings, threshold, order).peak_voxel
        spacing = np.linalg.norm(heat.affine[:3, :3], axis=0)
        mm = ndimage.distance_transform_edt(~label, sampling=spacing)[peak]
        yield case.case, case.anomaly, case.size, bool(label[peak]), bool(mm <= near_mm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("pred", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threshold", type=float, default=healthy_p99_value("mood"))
    parser.add_argument("--min-ml", type=float, default=0.1)
    parser.add_argument("--order", choices=ORDERS, default="peak")
    parser.add_argument("--near-mm", type=float, default=4.0)
    args = parser.parse_args()
    if not args.near_mm >= 0:
        parser.error(f"--near-mm {args.near_mm}: expected a distance >= 0 (mm)")
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for _, anomaly, size, hit, near in top_finding_hits(
        args.bench, args.pred, args.split, args.threshold, args.min_ml, args.order,
        args.near_mm,
    ):  # fmt: skip
        for group in ("all", f"anomaly={anomaly}", f"size={size}"):
            groups[group].append((hit, near))
    print(f"top finding ({args.order}) inside the lesion ({args.pred}, "
          f"threshold {args.threshold:.4g})")  # fmt: skip
    print(f"| group | volumes | hits | hit rate | near (<= {args.near_mm:g} mm) |")
    print("|---|---|---|---|---|")
    for group, rows in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        hits, near = (sum(column) for column in zip(*rows, strict=True))
        print(f"| {group} | {len(rows)} | {hits} | {hits / len(rows):.2f} | {near} |")


if __name__ == "__main__":
    main()
