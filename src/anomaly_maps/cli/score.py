"""``anomaly-maps score``: anomaly maps and scores of volumes with a trained model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AnomalyMapsError
from ._options import (
    add_brain_mask,
    add_overwrite,
    add_run_options,
    add_series,
    add_volume_index,
    expand_paths,
    integer,
    out_folder,
    real,
)
from ._progress import bar_progress
from ._scorers import add_scorer_options, checkpoint_and_scorers


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..outputs import LAYOUTS
    from ..scoring.pipeline import VOLUME_SCORES
    from ..scoring.postprocess import NORMALIZATIONS

    p = sub.add_parser("score", help="anomaly maps and scores of volumes with a trained model")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="SCAN",
        help="NIfTI/Analyze files, DICOM folders or quoted globs",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="trained .safetensors")
    add_scorer_options(p, required=True, help="scorer name")
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR")
    p.add_argument("--layout", choices=list(LAYOUTS), default="scan_scorer",
                   help="; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()))  # fmt: skip
    add_run_options(p)
    p.add_argument(
        "--normalize",
        choices=list(NORMALIZATIONS),
        default="none",
        help="; ".join(f"{k}: {v}" for k, v in NORMALIZATIONS.items())
        + " (model and mood need `anomaly-maps calibrate`)",
    )
    p.add_argument(
        "--volume-score",
        choices=list(VOLUME_SCORES),
        default="slice_mean",
        help="; ".join(f"{k}: {v}" for k, v in VOLUME_SCORES.items()),
    )
    add_overwrite(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bfloat16 autocast on CUDA devices that support it for "
                   "scorers whose maps stay within its tolerance, float32 elsewhere; "
                   "bf16: autocast for any scorer (on CPUs with AVX512-BF16 or AMX too); "
                   "bf16 on a device without it is refused")  # fmt: skip
    _add_many_scans_options(p)
    add_volume_index(p)
    add_series(p)
    add_brain_mask(p)
    from ..model_space import SPACES

    p.add_argument("--space", choices=list(SPACES), default="auto",
                   help="; ".join(f"{k}: {v}" for k, v in SPACES.items()))  # fmt: skip
    _add_findings_options(p)
    p.set_defaults(run=run)


def _add_many_scans_options(p: argparse.ArgumentParser) -> None:
    from ..batch_scoring import default_workers

    p.add_argument("--resume", action="store_true",
                   help="skip scans whose outputs a run with these settings completed "
                   "(checked against their completion records); redo the others")  # fmt: skip
    p.add_argument("--workers", type=integer(0, 64), default=default_workers(), metavar="N",
                   help="processes reading the next scans while the model scores "
                   f"(0: read in turn; default {default_workers()})")  # fmt: skip


def _add_findings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("findings (scan_scorer layout)")
    g.add_argument("--findings", action="store_true",
                   help="write <scan>_<scorer>_findings.csv (connected regions above the "
                   "threshold) and, for several scans, worklist.csv")  # fmt: skip
    g.add_argument(
        "--report",
        action="store_true",
        help="write <scan>_<scorer>_report.html (model card, findings, slices)",
    )
    g.add_argument("--threshold", type=real(-1e30, 1e30), metavar="VALUE",
                   help="map threshold in raw map units (before --normalize); default: the "
                   "model's best-Dice threshold, else its healthy 99th percentile")  # fmt: skip
    g.add_argument(
        "--min-ml",
        type=real(0.0),
        default=0.1,
        metavar="ML",
        help="drop regions smaller than this (default 0.1 ml)",
    )
    g.add_argument("--atlas", metavar="NAME|FILE",
                   help="name each finding's anatomy: aal (the AAL atlas of Debian's "
                   "mricron-data) or a label NIfTI FILE with names beside it (FILE.nii.txt, "
                   ".tsv or .csv: 'index name' lines); right only for scans in the atlas' "
                   "space (MNI for aal, as the benchmark and demo scans; not a native "
                   "scan); default: no labels")  # fmt: skip


def _calibrations(args: argparse.Namespace, checkpoint, scorers) -> dict:
    """Each scorer's calibration; ``--normalize model/mood`` needs one for every scorer."""
    from ..scoring.calibration import find_calibration

    calibrations = {}
    for name, params in scorers:
        calibrations[name] = find_calibration(checkpoint, name, params)
        if args.normalize in ("model", "mood") and calibrations[name] is None:
            raise AnomalyMapsError(
                f"--normalize {args.normalize}: {args.checkpoint} holds no calibration of "
                f"{name} with these parameters; run `anomaly-maps calibrate --checkpoint "
                f"{args.checkpoint} --scorer {name} HEALTHY_SCANS --out NEW.safetensors`"
            )
    return calibrations


def _thresholds(args: argparse.Namespace, calibrations: dict) -> dict[str, tuple[float, str]]:
    """Each scorer's findings threshold and its source, checked before any work."""
    from ..findings import validated_threshold

    if not (args.findings or args.report):
        return {}
    if args.threshold is not None:
        return {name: (args.threshold, "--threshold") for name in calibrations}
    return {name: validated_threshold(cal, f"--findings: {name} of {args.checkpoint}")
            for name, cal in calibrations.items()}  # fmt: skip


def _atlas(args: argparse.Namespace):
    """``--atlas``, read before any work (it names findings: needs --findings/--report)."""
    from ..atlas import resolve_atlas

    if args.atlas is None:
        return None
    if not (args.findings or args.report):
        raise AnomalyMapsError("--atlas without --findings or --report: no finding to name")
    return resolve_atlas(args.atlas)


def run(args: argparse.Namespace) -> int:
    """Score volumes: per scan and scorer a map NIfTI, a score .txt (and, in the default
    layout, a slice CSV; with ``--findings``/``--report`` findings, worklist and report);
    every output name and threshold is checked before the first scan is read. Under
    torchrun the scans are split over the ranks (:mod:`anomaly_maps.batch_scoring`)."""
    from ..batch_scoring import ScoringJob, rank_device, score_scans
    from ..outputs import WORKLIST, score_outputs
    from ..training.distributed import dist_from_env

    env = dist_from_env()
    args.device = rank_device(env, args.device)
    scorers, checkpoint = checkpoint_and_scorers(args)
    calibrations = _calibrations(args, checkpoint, scorers)
    thresholds = _thresholds(args, calibrations)
    atlas = _atlas(args)
    planned = score_outputs(
        args.out, expand_paths(args.inputs, "SCAN"), [name for name, _ in scorers],
        layout=args.layout, overwrite=args.overwrite or args.resume, findings=args.findings,
        report=args.report,
    )  # fmt: skip
    from ..model_space import check_space_run

    check_space_run(args.space, checkpoint, args.checkpoint, planned,
                    overwrite=args.overwrite or args.resume)  # fmt: skip
    if args.layout == "mood" and args.normalize != "mood" and env.main:
        print("note: MOOD's evaluator clips maps and scores to [0, 1]; --normalize mood "
              "puts them there", file=sys.stderr)  # fmt: skip
    job = ScoringJob(
        checkpoint, Path(args.checkpoint), scorers, calibrations, thresholds,
        normalize=args.normalize, volume_score=args.volume_score,
        batch_size=args.batch_size, seed=args.seed, volume_index=args.volume_index,
        series=args.series, brain_mask=args.brain_mask, space=args.space, min_ml=args.min_ml,
        overwrite=args.overwrite, atlas=atlas, precision=args.precision,
    )  # fmt: skip
    worklist = args.findings and len(planned) > 1
    score_scans(job, planned, args.out, workers=args.workers, resume=args.resume,
                worklist=worklist, env=env, progress=_scan_bar, log=print)  # fmt: skip
    if worklist and env.main:
        print(f"worklist: {args.out / WORKLIST}")
    return 0


@contextmanager
def _scan_bar(scan: str) -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    with tqdm(desc=Path(scan).name, unit="slice") as bar:
        yield bar_progress(bar)
