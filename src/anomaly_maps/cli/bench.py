"""``anomaly-maps bench``: training throughput, or scoring time against the reference."""

from __future__ import annotations

import argparse

from ._options import integer
from ._scorers import add_list_scorers, scorer_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed on this machine")
    p.add_argument("what", choices=("train", "score"),
                   help="train: training throughput per model; score: seconds per volume "
                   "per scorer, batched vs. its per-slice, per-sample reference")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=None, help="train: comma-separated kinds (default all)")
    p.add_argument("--scorers", default=None, help="score: comma-separated (default all)")
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    add_list_scorers(p)
    p.add_argument("--side", type=integer(8), default=256, help="score: volume side in voxels")
    p.add_argument("--batch-size", type=integer(1), default=16)
    p.add_argument("--steps", type=integer(1), default=5, help="train: timed steps")
    p.add_argument("--no-amp", action="store_true")
    p.set_defaults(run=run)


def _bench_score(args: argparse.Namespace, device, torch_version: str) -> None:
    from ..bench import bench_score
    from ..scoring import list_scorers

    names = args.scorers.split(",") if args.scorers else list_scorers()
    scorers = scorer_params(names, args.param)
    print(
        f"scoring one {args.side}^3 volume on {device} (torch {torch_version}): "
        f"batches of {args.batch_size} slices vs. the per-slice, per-sample reference"
    )
    print(f"{'scorer':20} {'models':12} {'batched s':>10} {'reference s':>12} {'ratio':>6}")
    for row in bench_score(scorers, device=device, side=args.side, batch_size=args.batch_size):
        print(
            f"{row.scorer:20} {row.models:12} {row.batched_seconds:10.2f} "
            f"{row.reference_seconds:12.2f} {row.ratio:6.1f}"
        )


def _bench_train(args: argparse.Namespace, device, torch_version: str) -> None:
    from ..bench import bench_train

    kinds = args.models.split(",") if args.models else None
    print(
        f"training throughput on {device} (torch {torch_version}, batch {args.batch_size},"
        f" {args.steps} timed steps after 2 warm-up steps, augmentation included)"
    )
    print(f"{'model':8} {'preset':14} {'input':>14} {'params':>9} {'s/step':>8} {'slices/s':>9}")
    for row in bench_train(
        device=device,
        kinds=kinds,
        batch_size=args.batch_size,
        steps=args.steps,
        amp=not args.no_amp,
    ):
        shape = "x".join(map(str, row.input_shape))
        print(
            f"{row.kind:8} {row.preset:14} {shape:>14} {row.parameters / 1e6:8.2f}M "
            f"{row.seconds_per_step:8.3f} {row.slices_per_second:9.1f}"
        )


def run(args: argparse.Namespace) -> int:
    """Print speed measurements: training throughput, or scoring time against a reference."""
    import torch

    from ..device import resolve_device

    bench = _bench_score if args.what == "score" else _bench_train
    bench(args, resolve_device(args.device), torch.__version__)
    return 0
