"""The ``anomaly-maps`` command line: one module per command.

Each command module has ``add_parser(sub)``, which declares its options (every value
checked by an argparse ``type``, so bad numbers and unusable ``--out`` paths are refused
at parse time), and ``run(args)``, which validates what needs files, calls the library
and prints. Errors on bad input print one clear line (no traceback) and exit with
status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import AnomalyMapsError
from . import (
    bench,
    calibrate,
    demo,
    ensemble,
    evaluate,
    info,
    make_benchmark,
    make_sample_data,
    preprocess,
    score,
    train,
)

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (
    info,
    preprocess,
    train,
    score,
    calibrate,
    ensemble,
    bench,
    make_sample_data,
    make_benchmark,
    evaluate,
    demo,
)
"""The command modules, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``anomaly-maps`` parser with every command's sub-parser."""
    parser = argparse.ArgumentParser(
        prog="anomaly-maps",
        description="Pixel-wise anomaly maps for medical scans from generative models "
        "trained on healthy anatomy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for each in (parser, *sub.choices.values()):
        # argparse before Python 3.13 takes "-1e-3" for an option ("--threshold -1e-3":
        # "expected one argument"); a value in exponent notation is a number too
        each._negative_number_matcher = _NEGATIVE_NUMBER
    return parser


_NEGATIVE_NUMBER = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anomaly-maps`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AnomalyMapsError as err:
        print(f"anomaly-maps {args.command}: error: {err}", file=sys.stderr)
        return 2
