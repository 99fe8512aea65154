"""``anomaly-maps make-benchmark``: a MOOD-style benchmark from the bundled template."""

from __future__ import annotations

import argparse

from ._options import add_overwrite, integer, out_folder, shape
from ._progress import bar_progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-benchmark",
        help="build a MOOD-style benchmark (healthy train, val/test with synthetic "
        "anomalies and labels) from the bundled template, offline",
    )
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR")
    p.add_argument("--n-train", type=integer(0), default=20, help="healthy training volumes")
    p.add_argument("--n-val", type=integer(0), default=10, help="validation volumes")
    p.add_argument("--n-test", type=integer(0), default=20, help="test volumes")
    p.add_argument("--seed", type=integer(0), default=0)
    p.add_argument(
        "--shape",
        type=shape,
        default=None,
        metavar="N|X,Y,Z",
        help="output grid in voxels (default: the template's own, 197,233,189 at 1 mm)",
    )
    p.add_argument(
        "--template",
        default=None,
        metavar="SCAN",
        help="a skull-stripped T1 to use instead of the bundled MNI152 template",
    )
    add_overwrite(p, help="replace an earlier benchmark")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build a MOOD-style benchmark from the bundled template (no download)."""
    from tqdm import tqdm

    from ..benchmark import make_benchmark, read_cases

    with tqdm(desc="make-benchmark", unit="volume") as bar:
        out = make_benchmark(
            args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
            seed=args.seed, shape=args.shape, template=args.template,
            overwrite=args.overwrite, progress=bar_progress(bar),
        )  # fmt: skip
    cases = read_cases(out)
    anomalous = sum(c.label for c in cases if c.split == "test")
    print(
        f"wrote {out}: {args.n_train} train, {args.n_val} val, {args.n_test} test volumes "
        f"({anomalous} test cases with an anomaly); cases in {out / 'cases.csv'}"
    )
    return 0
