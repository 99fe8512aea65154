"""``anomaly-maps evaluate``: metrics of MOOD-format predictions, or of a model on a
benchmark (scored here, then evaluated)."""

from __future__ import annotations

import argparse

from ..errors import AnomalyMapsError
from ._options import add_overwrite, add_run_options, out_folder
from ._progress import bar_progress
from ._scorers import add_scorer_options, checkpoint_and_scorers


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..scoring.pipeline import VOLUME_SCORES

    p = sub.add_parser(
        "evaluate",
        help="pixel/sample AUROC, AP and Dice of MOOD-format predictions (--pred, --labels) "
        "or of a model on a benchmark (--checkpoint, --scorer, --benchmark)",
    )
    p.add_argument("--pred", metavar="DIR",
                   help="predictions in MOOD's format (NAME.nii.gz maps, NAME.nii.gz.txt "
                   "scores: what `score --layout mood` writes); one folder, or one per "
                   "scorer")  # fmt: skip
    p.add_argument("--labels", metavar="DIR", help="toy_label folder (or the split above it)")
    p.add_argument("--val-pred", metavar="DIR", help="validation predictions (Dice threshold)")
    p.add_argument("--val-labels", metavar="DIR", help="validation labels")
    p.add_argument("--manifest", metavar="CSV", help="benchmark cases.csv (or its folder)")
    p.add_argument("--checkpoint", metavar="CKPT", help="trained .safetensors")
    add_scorer_options(p, required=False, help="scorer to evaluate with --checkpoint")
    p.add_argument("--benchmark", metavar="DIR", help="folder made by make-benchmark")
    p.add_argument("--volume-score", choices=list(VOLUME_SCORES), default="slice_mean")
    p.add_argument("--space", choices=("auto", "native"), default="auto",
                   help="with --checkpoint: auto (as score) registers a case off the "
                   "model's grid into its space and brings the maps back; native scores "
                   "every case as it is")  # fmt: skip
    add_run_options(p)
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR",
                   help="report (and predictions)")  # fmt: skip
    add_overwrite(p)
    p.set_defaults(run=run)


def _check_mode(args: argparse.Namespace) -> bool:
    """True for "score a benchmark with --checkpoint"; refuse a mix or an incomplete mode."""
    by_model = args.checkpoint is not None or args.benchmark is not None
    if by_model == (args.pred is not None or args.labels is not None):
        raise AnomalyMapsError(
            "give either --pred and --labels (MOOD-format predictions) or --checkpoint, "
            "--scorer and --benchmark (score a benchmark, then evaluate)"
        )
    needed = ("checkpoint", "scorer", "benchmark") if by_model else ("pred", "labels")
    missing = [f"--{name}" for name in needed if not getattr(args, name)]
    if missing:
        raise AnomalyMapsError(f"missing {' and '.join(missing)}")
    return by_model


def run(args: argparse.Namespace) -> int:
    """Evaluate MOOD-format predictions, or score a benchmark with a model and evaluate."""
    from tqdm import tqdm

    from ..evaluation import OUTPUT_FILES, evaluate, evaluate_checkpoint

    by_model = _check_mode(args)
    with tqdm(desc="evaluate", unit="volume") as bar:
        if by_model:
            scorers, checkpoint = checkpoint_and_scorers(args)
            evaluation = evaluate_checkpoint(
                checkpoint, scorers, args.benchmark, args.out, batch_size=args.batch_size,
                seed=args.seed, volume_score=args.volume_score, overwrite=args.overwrite,
                progress=bar_progress(bar), space=args.space,
            )  # fmt: skip
        else:
            evaluation = evaluate(
                args.pred, args.labels, val_pred_dir=args.val_pred,
                val_label_dir=args.val_labels, manifest=args.manifest,
                progress=bar_progress(bar),
            )  # fmt: skip
            evaluation.write(args.out, overwrite=args.overwrite)
    print(evaluation.to_markdown())
    print(f"wrote {', '.join(OUTPUT_FILES)} to {args.out}")
    return 0
