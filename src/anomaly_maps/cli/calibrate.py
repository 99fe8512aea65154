"""``anomaly-maps calibrate``: healthy statistics (and a best-Dice threshold) per scorer."""

from __future__ import annotations

import argparse

from ..errors import AnomalyMapsError
from ..io import load_volume
from ._options import (
    add_brain_mask,
    add_overwrite,
    add_run_options,
    add_series,
    brain_masked,
    expand_paths,
    out_checkpoint,
)
from ._scorers import add_scorer_options, checkpoint_and_scorers


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="store a scorer's healthy statistics (and best-Dice threshold) in a checkpoint",
    )
    p.add_argument("inputs", nargs="+", metavar="SCAN",
                   help="healthy validation scans (NIfTI, DICOM folders, globs)")  # fmt: skip
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="trained .safetensors")
    add_scorer_options(p, required=True, help="scorer to calibrate")
    p.add_argument(
        "--labelled",
        default=None,
        metavar="DIR",
        help="validation scans with anomalies in MOOD layout (DIR/toy/*.nii.gz and "
        "DIR/toy_label/pixel/*.nii.gz): also store the best-Dice threshold",
    )
    p.add_argument("--out", type=out_checkpoint, required=True, metavar="CKPT",
                   help="checkpoint to write (the input's models plus calibration)")  # fmt: skip
    add_run_options(p)
    add_overwrite(p)
    add_series(p)
    add_brain_mask(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Score healthy (and optionally labelled) validation scans; store the statistics."""
    from tqdm import tqdm

    from ..checkpoint import save_checkpoint
    from ..evaluation import labelled_scans
    from ..scoring.calibration import calibrate_scorers, with_calibration

    scorers, checkpoint = checkpoint_and_scorers(args)
    if args.out.exists() and not args.overwrite:
        raise AnomalyMapsError(f"{args.out}: already exists; pass --overwrite to replace it")
    paths = expand_paths(args.inputs, "SCAN")
    healthy = [brain_masked(args, load_volume(p, series=args.series), checkpoint) for p in paths]
    pairs = labelled_scans(args.labelled) if args.labelled else []
    labelled = ((load_volume(scan), load_volume(label).data) for scan, label in pairs)
    with tqdm(total=len(healthy) + len(pairs), desc="calibrate", unit="scan") as bar:
        calibrations = calibrate_scorers(
            checkpoint, scorers, healthy, labelled=labelled, device=args.device,
            batch_size=args.batch_size, seed=args.seed,
            progress=lambda done: bar.update(done - bar.n),
        )  # fmt: skip
    for calibration in calibrations:
        checkpoint = with_calibration(checkpoint, calibration)
        print(calibration.report_line())
    save_checkpoint(
        args.out, checkpoint.models, preprocessing=checkpoint.preprocessing,
        records=checkpoint.records, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"wrote {args.out}")
    return 0
