"""``anomaly-maps make-sample-data``: regenerate the bundled sample files
(``scripts/make_sample_data.sh`` runs every step)."""

from __future__ import annotations

import argparse

from ..errors import AnomalyMapsError
from ._options import add_overwrite, add_run_options, out_folder
from ._progress import bar_progress, command_line
from ._scorers import Scorers, add_scorer_options, scorer_params
from .demo import BUNDLED


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-sample-data",
        help="regenerate the bundled sample files (scripts/make_sample_data.sh: all steps)",
    )
    p.add_argument("--out", type=out_folder, default="sample_data", metavar="DIR")
    p.add_argument("--benchmark", metavar="DIR",
                   help="benchmark made from the template (for --demo-case, --model)")  # fmt: skip
    p.add_argument("--demo-case", metavar="NAME",
                   help="test case with an anomaly: the demo scan and label")  # fmt: skip
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                   help="trained checkpoint to calibrate on the benchmark's val split, "
                   "evaluate on its test split and bundle as NAME "
                   f"({', '.join(BUNDLED)})")  # fmt: skip
    add_scorer_options(p, required=False, help="scorer to calibrate and evaluate")
    add_run_options(p)
    add_overwrite(p)
    p.set_defaults(run=run)


def _models(args: argparse.Namespace) -> dict[str, str]:
    """``--model NAME=CKPT`` pairs, checked with the options they need."""
    from ..sample_build import bundled_models

    bundled = bundled_models()
    models = dict(pair.partition("=")[::2] for pair in args.model)
    unknown = [f"{k}={v}" for k, v in models.items() if k not in bundled or not v]
    if unknown:
        raise AnomalyMapsError(
            f"--model {unknown[0]!r}: expected NAME=CHECKPOINT, NAME in {bundled}"
        )
    if (args.demo_case or models) and args.benchmark is None:
        raise AnomalyMapsError(
            "--demo-case and --model need --benchmark DIR (made by make-benchmark)"
        )
    if models and not args.scorer:
        raise AnomalyMapsError("--model needs --scorer (the scorers to calibrate and evaluate)")
    return models


def run(args: argparse.Namespace) -> int:
    """Regenerate ``sample_data/``: the template that nilearn ships and, from a benchmark
    made from it, the demo case and the bundled models (calibrated, with test metrics)."""
    from ..sample_build import copy_template, write_notice

    models = _models(args)
    scorers = scorer_params(args.scorer, args.param) if models else []
    template = copy_template(args.out, overwrite=args.overwrite)
    print(f"wrote {template.path} (from nilearn {template.nilearn_version}: "
          f"{template.source.name})")  # fmt: skip
    about = None
    if args.demo_case:
        from ..demo import bundle_demo_case

        scan, label, about = bundle_demo_case(
            args.benchmark, args.demo_case, args.out, overwrite=args.overwrite
        )
        print(f"wrote {scan} and {label}: {about}")
    print(f"wrote {write_notice(args.out, about)}")
    if models:
        _bundle_models(args, models, scorers)
    return 0


def _bundle_models(args: argparse.Namespace, models: dict[str, str], scorers: Scorers) -> None:
    from tqdm import tqdm

    from ..demo import bundle_model
    from ..samples import SAMPLES

    for name, path in models.items():
        with tqdm(desc=f"{name}: calibrate, evaluate", unit="volume") as bar:
            written, evaluation = bundle_model(
                path, scorers, args.benchmark, args.out / SAMPLES[name][0],
                command=command_line(), device=args.device, batch_size=args.batch_size,
                seed=args.seed, overwrite=args.overwrite, progress=bar_progress(bar),
            )  # fmt: skip
        print(evaluation.to_markdown())
        print(f"wrote {written}")
