"""``anomaly-maps bench``: training throughput, or scoring time against the reference."""

from __future__ import annotations

import argparse
import os

from ._options import integer
from ._scorers import add_list_scorers, scorer_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed on this machine")
    p.add_argument("what", choices=("train", "score", "score-many", "head"),
                   help="train: training throughput per model; score: seconds per volume "
                   "per scorer, batched vs. its per-slice, per-sample reference; "
                   "score-many: scans per minute over --scans small scans, read ahead "
                   "and written behind vs. one after the other; head: seconds of brain "
                   "extraction and registration for a 1 mm head scan")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=None, help="train: comma-separated kinds (default all)")
    p.add_argument("--scorers", default=None, help="score: comma-separated (default all)")
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    add_list_scorers(p)
    p.add_argument("--side", type=integer(8), default=256, help="score: volume side in voxels")
    p.add_argument("--batch-size", type=integer(1), default=16)
    p.add_argument("--scans", type=integer(1), default=40, help="score-many: scans")
    p.add_argument("--workers", type=integer(0, 64), default=2, help="score-many: readers")
    p.add_argument("--rounds", type=integer(1, 100), default=3,
                   help="score-many: alternating timed runs of each (medians)")  # fmt: skip
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32",
                   help="score-many: inference precision of both loops (see score)")  # fmt: skip
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


def _bench_score_many(args: argparse.Namespace, device, torch_version: str) -> None:
    from ..bench import bench_score_many

    (scorer,) = scorer_params([args.scorers or "rec"], args.param)
    side = 64 if args.side == 256 else args.side  # small scans unless --side is given
    print(f"scoring {args.scans} scans of {side}^3 with {scorer[0]} on {device} (torch "
          f"{torch_version}, {args.precision}), files to outputs, batches of "
          f"{args.batch_size} slices, median of {args.rounds} alternating runs")  # fmt: skip
    load = os.getloadavg()[0]
    row = bench_score_many(scorer, device=device, n_scans=args.scans, side=side,
                           batch_size=args.batch_size, workers=args.workers,
                           rounds=args.rounds, precision=args.precision)  # fmt: skip
    print(f"one after the other:        {row.sequential_per_minute:8.1f} scans/min")
    print(f"{args.workers} reader(s) + writer thread: {row.overlapped_per_minute:8.1f} "
          f"scans/min  ({row.ratio:.2f}x)")  # fmt: skip
    print(f"1-minute load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, on "
          f"{os.cpu_count()} cores")  # fmt: skip


def _bench_head(args: argparse.Namespace, device, torch_version: str) -> None:
    from ..bench import bench_head

    row = bench_head()
    shape, zooms = "x".join(map(str, row.shape)), "x".join(f"{z:g}" for z in row.zooms)
    print(f"a synthetic head of {shape} voxels of {zooms} mm, on {os.cpu_count()} CPU cores")
    print(f"brain extraction: {row.extraction_seconds:6.1f} s  (Dice {row.dice:.3f} "
          "against the true brain)")  # fmt: skip
    print(f"registration:     {row.registration_seconds:6.1f} s  (rigid + affine into the "
          "bundled restoration model's space)")  # fmt: skip
    print(f"together:         {row.total_seconds:6.1f} s")


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

    bench = {"score": _bench_score, "score-many": _bench_score_many, "head": _bench_head}.get(
        args.what, _bench_train
    )
    bench(args, resolve_device(args.device), torch.__version__)
    return 0
