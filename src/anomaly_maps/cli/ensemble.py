"""``anomaly-maps ensemble``: join trained restoration checkpoints into one."""

from __future__ import annotations

import argparse

from ..errors import AnomalyMapsError
from ..models.restoration_ensemble import ENSEMBLE_UNITS, SCAN_QUANTILE
from ._options import add_overwrite, out_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="join restoration checkpoints into one whose fpi map is the largest of "
        "their maps, each in its unit",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="two or more restoration .safetensors, each with a default fpi "
                   "calibration (anomaly-maps calibrate)")  # fmt: skip
    p.add_argument("--units", choices=ENSEMBLE_UNITS, default="scan",
                   help="each member's unit: scan (default): its own 90th percentile over "
                   "the scan's foreground; template: its healthy 99th percentile from its "
                   "calibration (docs/results.md)")  # fmt: skip
    p.add_argument("--out", type=out_checkpoint, required=True, metavar="CKPT",
                   help="ensemble checkpoint to write; calibrate it before use")  # fmt: skip
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the members, check they fit together, write the ensemble."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..ensemble import join_restorations

    if args.out.exists() and not args.overwrite:
        raise AnomalyMapsError(f"{args.out}: already exists; pass --overwrite to replace it")
    joined = join_restorations([load_checkpoint(p) for p in args.checkpoints], args.units)
    save_checkpoint(
        args.out, joined.models, preprocessing=joined.preprocessing,
        records=joined.records, overwrite=args.overwrite,
    )  # fmt: skip
    for entry in joined.records.other_metrics["ensemble"]:
        p99 = f"healthy fpi p99 {entry['scale']:.4g}"
        unit = (
            f"its {100 * SCAN_QUANTILE:.0f}th percentile over each scan (its {p99} unused)"
            if args.units == "scan"
            else f"its {p99}"
        )
        print(f"member {entry['file']}: unit {unit}")
    print(f"wrote {args.out}; calibrate it (anomaly-maps calibrate --scorer fpi ...) before use")
    return 0
