"""How often the top finding of an anomalous volume lies inside its lesion (issue 17's
benchmark target), overall and by anomaly type and size.

Reads a benchmark made by ``anomaly-maps make-benchmark`` and the predictions of one
scorer written by ``anomaly-maps evaluate`` (MOOD layout, ``mood``-normalised maps), cuts
each anomalous test volume's map at ``--threshold`` (default: the value the healthy 99th
percentile takes under the ``mood`` normalisation) into regions with
:func:`anomaly_maps.findings.find_regions`, and checks whether the region with the
highest peak has its peak voxel inside the lesion label. A volume without any region
counts as a miss.

    python scripts/findings_hit_rate.py BENCH PRED_DIR [--split test] [--min-ml 0.1]

``PRED_DIR`` is for example ``EVAL/predictions/test/fpi``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from anomaly_maps.benchmark import read_cases
from anomaly_maps.findings import find_regions
from anomaly_maps.io import load_volume
from anomaly_maps.scoring.postprocess import healthy_p99_value


def top_finding_hits(bench: Path, pred: Path, split: str, threshold: float, min_ml: float):
    """(case, anomaly, size, hit) for every anomalous case of ``split``."""
    for case in read_cases(bench):
        if case.split != split or not case.label:
            continue
        heat = load_volume(pred / case.case)
        label = load_volume(bench / split / "toy_label" / "pixel" / case.case).data > 0
        regions = find_regions(heat.data, heat.affine, threshold, min_ml=min_ml)
        hit = bool(regions.findings) and bool(label[regions.findings[0].peak_voxel])
        yield case.case, case.anomaly, case.size, hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("pred", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threshold", type=float, default=healthy_p99_value("mood"))
    parser.add_argument("--min-ml", type=float, default=0.1)
    args = parser.parse_args()
    groups: dict[str, list[bool]] = defaultdict(list)
    for _, anomaly, size, hit in top_finding_hits(
        args.bench, args.pred, args.split, args.threshold, args.min_ml
    ):
        for group in ("all", f"anomaly={anomaly}", f"size={size}"):
            groups[group].append(hit)
    print(f"top finding inside the lesion ({args.pred}, threshold {args.threshold:.4g})")
    print("| group | volumes | hits | hit rate |\n|---|---|---|---|")
    for group, hits in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        print(f"| {group} | {len(hits)} | {sum(hits)} | {sum(hits) / len(hits):.2f} |")


if __name__ == "__main__":
    main()
