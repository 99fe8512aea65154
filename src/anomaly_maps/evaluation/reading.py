"""Reading MOOD-format labels and predictions from disk, as MOOD's evaluator reads them."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._fileio import full_suffix
from ..errors import AnomalyMapsError, VolumeError
from ..io import NIFTI_SUFFIXES, load_volume
from ..metrics import ScoreCounts, score_counts

__all__ = [
    "ScorerPredictions",
    "label_root",
    "labelled_scans",
    "read_labels",
    "read_scorer",
    "scorer_dirs",
    "val_folder",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorerPredictions:
    """One scorer's predictions on one split, read and counted per case."""

    pixel: dict[str, ScoreCounts]
    sample: dict[str, float]


def label_root(label_dir: Path) -> Path:
    """The folder holding ``pixel/`` and/or ``sample/``: ``label_dir`` itself or its
    ``toy_label`` (so a benchmark split folder works too)."""
    for root in (label_dir / "toy_label", label_dir):
        if (root / "pixel").is_dir() or (root / "sample").is_dir():
            return root
    raise AnomalyMapsError(
        f"{label_dir}: no pixel/ or sample/ label folder in it or in its toy_label/: "
        "expected MOOD's label layout (toy_label/pixel/NAME, toy_label/sample/NAME.txt)"
    )


def first_line(path: Path, kind: type, what: str) -> Any:
    """The number on a MOOD text file's first line."""
    try:
        with path.open() as f:
            return kind(f.readline())
    except (OSError, ValueError) as err:
        raise AnomalyMapsError(
            f"{path}: cannot read {what} ({err}); expected a {kind.__name__} on the first line"
        ) from err


def read_labels(label_dir: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """Voxel-label files and sample labels by case name."""
    root = label_root(label_dir)
    pixel = {
        p.name: p
        for p in sorted((root / "pixel").glob("*"))
        if full_suffix(p) in NIFTI_SUFFIXES and not p.name.startswith(".")
    } if (root / "pixel").is_dir() else {}  # fmt: skip
    sample = {
        p.name[: -len(".txt")]: first_line(p, int, "a sample label")
        for p in sorted((root / "sample").glob("*.txt"))
        if not p.name.startswith(".")
    } if (root / "sample").is_dir() else {}  # fmt: skip
    if not pixel and not sample:
        raise AnomalyMapsError(f"{root}: no labels in pixel/ or sample/")
    return pixel, sample


def labelled_scans(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(scan, voxel label)`` file pairs of a folder in MOOD layout.

    ``folder`` holds ``toy/NAME`` scans and ``toy_label/pixel/NAME`` labels (a benchmark
    split such as ``BENCH/val``); every scan must have its label.
    """
    folder = Path(folder)
    scans = sorted(
        p for p in (folder / "toy").glob("*")
        if full_suffix(p) in NIFTI_SUFFIXES and not p.name.startswith(".")
    ) if (folder / "toy").is_dir() else []  # fmt: skip
    if not scans:
        raise AnomalyMapsError(
            f"{folder / 'toy'}: no NIfTI scans: expected MOOD layout (toy/NAME.nii.gz, "
            "toy_label/pixel/NAME.nii.gz)"
        )
    labels, _ = read_labels(folder)
    unlabelled = [p.name for p in scans if p.name not in labels]
    if unlabelled:
        raise AnomalyMapsError(
            f"{folder}: no voxel label in toy_label/pixel/ for {unlabelled[:3]}"
            f"{' ...' if len(unlabelled) > 3 else ''}"
        )
    return [(scan, labels[scan.name]) for scan in scans]


def scorer_dirs(pred_dir: Path) -> dict[str, Path]:
    """Scorer name -> folder: ``pred_dir`` itself if it holds predictions, else each
    sub-folder that does."""

    def holds(folder: Path) -> bool:
        return any(
            full_suffix(p) in (*NIFTI_SUFFIXES, ".txt") for p in folder.iterdir() if p.is_file()
        )

    if not pred_dir.is_dir():
        raise AnomalyMapsError(f"{pred_dir}: no such folder of predictions")
    if holds(pred_dir):
        return {pred_dir.name: pred_dir}
    found = {d.name: d for d in sorted(pred_dir.iterdir()) if d.is_dir() and holds(d)}
    if not found:
        raise AnomalyMapsError(
            f"{pred_dir}: no predictions: expected NAME.nii.gz maps and/or NAME.txt scores "
            "in it, or one such folder per scorer"
        )
    return found


def _missing(folder: Path, names: Sequence[str], suffix: str) -> None:
    missing = [n + suffix for n in names if not (folder / (n + suffix)).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise AnomalyMapsError(
            f"{folder}: no prediction for {len(missing)} of {len(names)} labelled case(s) "
            f"({shown}); expected one per file of the label folder"
        )


def read_scorer(
    folder: Path,
    pixel_labels: dict[str, Path],
    sample_labels: dict[str, int],
    progress: Callable[[], None] | None,
) -> ScorerPredictions:
    """Count one scorer's maps against the voxel labels and read its scores."""
    has_maps = any(full_suffix(p) in NIFTI_SUFFIXES for p in folder.iterdir())
    has_scores = any(p.suffix == ".txt" for p in folder.iterdir())
    pixel: dict[str, ScoreCounts] = {}
    outside = 0
    if has_maps:
        _missing(folder, list(pixel_labels), "")
        for name, label_path in pixel_labels.items():
            label = load_volume(label_path).data
            prediction = load_volume(folder / name).data
            if prediction.shape != label.shape:
                raise VolumeError(
                    f"{folder / name}: shape {prediction.shape} differs from its label "
                    f"{label_path} {label.shape}; expected a map on the label's grid"
                )
            outside += int(np.count_nonzero((prediction < 0) | (prediction > 1)))
            label = np.clip(np.rint(label), 0, 1) == 1  # as MOOD's evaluator
            pixel[name] = score_counts(label, prediction, mood=True)
            if progress is not None:
                progress()
    if outside:
        log.warning("%s: %d map voxel(s) outside [0, 1] clipped, as MOOD does", folder, outside)
    sample: dict[str, float] = {}
    if has_scores:
        _missing(folder, list(sample_labels), ".txt")
        for name in sample_labels:
            score = first_line(folder / f"{name}.txt", float, "a score")
            if not math.isfinite(score):
                raise AnomalyMapsError(f"{folder / name}.txt: score {score}: expected finite")
            sample[name] = float(np.clip(score, 0.0, 1.0))  # as MOOD's evaluator
    return ScorerPredictions(pixel, sample)


def val_folder(scorer: str, scorers: dict[str, Path], val_scorers: dict[str, Path]) -> Path:
    """The validation predictions of ``scorer``: same name, or the only one of each."""
    if scorer in val_scorers:
        return val_scorers[scorer]
    if len(scorers) == len(val_scorers) == 1:
        return next(iter(val_scorers.values()))
    raise AnomalyMapsError(
        f"no validation predictions of scorer {scorer!r}: expected a folder of that name "
        f"among {sorted(val_scorers)}"
    )
