"""Options the commands share, and the argparse types that check every value.

Each ``type=`` callable raises :class:`argparse.ArgumentTypeError`, so a number out of
range or an ``--out`` that cannot be written is one line at parse time, before any work:
``argument --batch-size: expected an integer >= 1, got 0``.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..dicom import one_path_per_series
from ..errors import AnomalyMapsError

__all__ = [
    "add_brain_mask",
    "add_overwrite",
    "add_run_options",
    "add_series",
    "add_volume_index",
    "brain_masked",
    "expand_paths",
    "integer",
    "out_checkpoint",
    "out_folder",
    "real",
    "shape",
]


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An int in ``[low, high]`` (no upper bound when ``high`` is None)."""
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


def real(
    low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A finite float from ``low`` to ``high``, each end included unless ``*_open``."""
    if high is None:
        expected = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        expected = f"a number in {left}{low:g}, {high:g}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        if not (above and below):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


def shape(text: str) -> int | tuple[int, int, int]:
    """``--shape 64`` (a cube) or ``--shape 160,192,160``, each side >= 8 voxels."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 3) or min(sizes) < 8:
        raise argparse.ArgumentTypeError(
            f"expected N or X,Y,Z, each an integer >= 8, got {text!r}"
        )
    return sizes[0] if len(sizes) == 1 else sizes  # type: ignore[return-value]


def _refuse_file_above(path: Path) -> None:
    """The nearest existing folder above ``path`` must be a folder, not a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{path}: {parent} is a file, not a folder")
            return


def out_folder(text: str) -> Path:
    """An output folder: new, or an existing folder; never a file or under one."""
    path = Path(text)
    _refuse_file_above(path)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, expected a folder for the outputs")
    return path


def out_checkpoint(text: str) -> Path:
    """An output checkpoint: a ``.safetensors`` file name, not a folder nor under a file."""
    path = Path(text)
    _refuse_file_above(path)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, expected a .safetensors file")
    if path.suffix != ".safetensors":
        raise argparse.ArgumentTypeError(f"{path}: expected a name ending in .safetensors")
    return path


def add_volume_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volume-index",
        type=integer(0),
        default=None,
        metavar="I",
        help="volume to use from a 4D series (default: the first, with a warning)",
    )


def add_series(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--series",
        default=None,
        metavar="UID",
        help="SeriesInstanceUID of the DICOM series to read from a folder holding several "
        "(default: the series with the most slices)",
    )


def add_run_options(parser: argparse.ArgumentParser, *, batch_size: int = 32) -> None:
    """``--device``, ``--batch-size``, ``--seed``: how every scoring command runs."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=integer(1), default=batch_size,
                        help="slices per model call (halved on CUDA out of memory)")  # fmt: skip
    parser.add_argument("--seed", type=integer(0), default=0, help="seeds every random draw")


def add_overwrite(parser: argparse.ArgumentParser, help: str = "replace existing outputs") -> None:
    parser.add_argument("--overwrite", action="store_true", help=help)


def expand_paths(patterns: Sequence[str], option: str = "--data") -> list[str]:
    """Paths and globs -> sorted, de-duplicated paths (files, or folders of DICOM series;
    the files of one DICOM series count once); a pattern matching nothing is an error."""
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise AnomalyMapsError(f"{option} {pattern!r} matches no file")
        paths += matches
    return one_path_per_series(list(dict.fromkeys(paths)))


def _brain_mask_choice(text: str) -> str:
    if text in ("auto", "none") or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"expected auto, none or a mask file, got {text!r}")


def add_brain_mask(parser: argparse.ArgumentParser) -> None:
    """``--brain-mask auto|none|FILE``: what of a head scan the model sees."""
    parser.add_argument(
        "--brain-mask", type=_brain_mask_choice, default="auto", metavar="auto|none|FILE",
        help="auto: extract the brain of a head scan when the model learnt skull-stripped "
        "brains; none: score the scan as is; FILE: a mask on the scan's grid",
    )  # fmt: skip


def brain_masked(args: argparse.Namespace, volume, checkpoint):
    """The scan as ``--brain-mask`` says to score it; one line when a mask was applied."""
    from ..brain_mask import prepare_scan
    from ..records import trained_on_brains

    on_brains = trained_on_brains(checkpoint.records.training)
    volume, note = prepare_scan(volume, args.brain_mask, on_brains)
    if note:
        print(note, file=sys.stderr)
    return volume
