"""Per-scorer metrics, broken down by anomaly type and size, and their table."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .._fileio import write_text
from ..benchmark import Case, read_cases
from ..errors import AnomalyMapsError
from ..metrics import ScoreCounts, pool_counts, score_counts
from .plots import write_curves
from .reading import (
    ScorerPredictions,
    label_root,
    read_labels,
    read_scorer,
    scorer_dirs,
    val_folder,
)

__all__ = ["OUTPUT_FILES", "Evaluation", "Result", "evaluate"]

OUTPUT_FILES = ("results.md", "results.csv", "roc.png", "pr.png")
"""What :meth:`Evaluation.write` puts in its folder."""


@dataclass(frozen=True)
class Result:
    """One row of the results table: one scorer on one group of cases.

    ``group`` is ``all``, ``anomaly=KIND`` or ``size=BIN`` (those cases plus the healthy
    ones). Metrics that do not apply (no maps, no scores, no positives) are NaN.
    ``val_threshold`` is the map threshold with the best pooled Dice on the validation
    split, and ``val_dice`` the Dice it gives here.
    """

    scorer: str
    group: str
    n_cases: int
    n_anomalous: int
    pixel_auroc: float
    pixel_ap: float
    best_dice: float
    best_dice_threshold: float
    val_threshold: float
    val_dice: float
    sample_auroc: float
    sample_ap: float


_COLUMNS = tuple(f.name for f in fields(Result))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Results of :func:`evaluate` and what its plots need.

    Attributes
    ----------
    results
        One :class:`Result` per scorer and group, scorers in order, ``all`` first.
    pixel_counts, sample_counts
        Scorer -> pooled counts over all cases (for ROC/PR curves); absent for a
        scorer without maps or without scores.
    """

    results: list[Result]
    pixel_counts: dict[str, ScoreCounts]
    sample_counts: dict[str, ScoreCounts]

    def to_csv(self) -> str:
        """The table as CSV, full precision."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows([getattr(r, c) for c in _COLUMNS] for r in self.results)
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """The table as Markdown (3 decimals; ``n/a`` where a metric does not apply)."""

        def number(value: float) -> str:
            return "n/a" if math.isnan(value) else f"{value:.3f}"

        head = ("scorer", "cases", "pixel AUROC", "pixel AP", "best Dice (threshold)",
                "Dice @ val threshold", "sample AUROC", "sample AP")  # fmt: skip
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.results:
            group = "" if r.group == "all" else f" · {r.group}"
            cells = (
                f"{r.scorer}{group}",
                f"{r.n_cases} ({r.n_anomalous} anomalous)",
                number(r.pixel_auroc),
                number(r.pixel_ap),
                f"{number(r.best_dice)} ({r.best_dice_threshold:.4g})",
                f"{number(r.val_dice)} ({r.val_threshold:.4g})",
                number(r.sample_auroc),
                number(r.sample_ap),
            )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
        """Write :data:`OUTPUT_FILES` to ``out_dir``: the table (Markdown, CSV) and the
        pixel- and sample-level ROC and PR curves of every scorer (PNG).

        Nothing is written if any of them exists and ``overwrite`` is False.
        """
        out = Path(out_dir)
        paths = [out / name for name in OUTPUT_FILES]
        existing = [p for p in paths if p.exists()]
        if existing and not overwrite:
            raise AnomalyMapsError(
                f"{existing[0]}: already exists; pass overwrite=True (CLI: --overwrite) "
                "to replace the evaluation"
            )
        for path, text in zip(paths, (self.to_markdown(), self.to_csv()), strict=False):
            write_text(path, text, overwrite=overwrite)
        for path, kind in zip(paths[2:], ("roc", "pr"), strict=True):
            write_curves(path, kind, self.pixel_counts, self.sample_counts, overwrite=overwrite)
        return paths


def _groups(names: Sequence[str], cases: list[Case] | None) -> dict[str, list[str]]:
    """Group name -> case names: all, then each anomaly type and size bin plus healthy."""
    groups = {"all": list(names)}
    if not cases:
        return groups
    by_name = {c.case: c for c in cases}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise AnomalyMapsError(
            f"case(s) {unknown[:3]} are not in the manifest: expected the manifest of the "
            "benchmark split the labels come from"
        )
    healthy = [n for n in names if by_name[n].anomaly == "none"]
    for field in ("anomaly", "size"):
        for value in sorted({getattr(by_name[n], field) for n in names} - {"none", ""}):
            members = [n for n in names if getattr(by_name[n], field) == value]
            groups[f"{field}={value}"] = members + healthy
    return groups


def _pooled(
    members: list[str], scored: ScorerPredictions, sample_labels: dict[str, int]
) -> tuple[ScoreCounts | None, ScoreCounts | None]:
    """(voxel counts, case counts) of a group; ``None`` where the scorer has no maps or
    no scores."""
    pixel = pool_counts(scored.pixel[n] for n in members) if scored.pixel else None
    names = [n for n in members if n in scored.sample]
    sample = score_counts(
        np.array([sample_labels[n] for n in names], bool),
        np.array([scored.sample[n] for n in names], float),
    ) if scored.sample else None  # fmt: skip
    return pixel, sample


def _row(
    scorer: str,
    group: str,
    members: list[str],
    counts: tuple[ScoreCounts | None, ScoreCounts | None],
    n_anomalous: int,
    val_threshold: float,
) -> Result:
    nan = float("nan")
    pixel, sample = counts
    best, threshold = pixel.best_dice() if pixel else (nan, nan)
    return Result(
        scorer=scorer,
        group=group,
        n_cases=len(members),
        n_anomalous=n_anomalous,
        pixel_auroc=pixel.roc_auc() if pixel else nan,
        pixel_ap=pixel.average_precision() if pixel else nan,
        best_dice=best,
        best_dice_threshold=threshold,
        val_threshold=val_threshold,
        val_dice=pixel.dice_at(val_threshold) if pixel and not math.isnan(val_threshold) else nan,
        sample_auroc=sample.roc_auc() if sample else nan,
        sample_ap=sample.average_precision() if sample else nan,
    )


def evaluate(
    pred_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    *,
    val_pred_dir: str | os.PathLike | None = None,
    val_label_dir: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    split: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate MOOD-format predictions against MOOD-format labels.

    Parameters
    ----------
    pred_dir
        One scorer's predictions (``NAME.nii.gz`` maps and/or ``NAME.txt`` scores), or
        a folder of such folders, one per scorer (named after it).
    label_dir
        The ``toy_label`` folder (``pixel/``, ``sample/``) or the split folder holding it.
    val_pred_dir, val_label_dir
        The same for a validation split (given together): each scorer's Dice threshold
        is chosen there and applied to ``pred_dir``. Scorers are matched by name.
    manifest
        A benchmark's folder or ``cases.csv``, for results per anomaly type and size.
    split
        Which split of the manifest the labels are; default: the name of the folder
        above ``toy_label`` (``test`` for ``BENCHMARK/test/toy_label``).
    progress
        Called as ``progress(done, total)`` after each map read.

    Raises
    ------
    AnomalyMapsError
        Missing folders, labels or predictions; unreadable text files; a case not in
        the manifest. :class:`~anomaly_maps.errors.VolumeError` for a map whose shape
        differs from its label. Every message names the file.
    """
    pred_dir, label_dir = Path(pred_dir), Path(label_dir)
    if (val_pred_dir is None) != (val_label_dir is None):
        raise AnomalyMapsError(
            "val_pred_dir and val_label_dir go together: give both to choose Dice "
            "thresholds on a validation split, or neither"
        )
    pixel_labels, sample_labels = read_labels(label_dir)
    scorers = scorer_dirs(pred_dir)
    val = None
    if val_pred_dir is not None:
        val_pixel, val_sample = read_labels(Path(val_label_dir))
        val = (val_pixel, val_sample, scorer_dirs(Path(val_pred_dir)))
    cases = None
    if manifest is not None:
        split = split or label_root(label_dir).parent.name
        cases = [c for c in read_cases(manifest) if c.split == split]
        if not cases:
            raise AnomalyMapsError(f"{manifest}: no cases of split {split!r}")
    names = sorted(set(pixel_labels) | set(sample_labels))
    groups = _groups(names, cases)

    n_val = len(val[0]) if val else 0
    total, done = len(scorers) * (len(pixel_labels) + n_val), 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    results, pixel_counts, sample_counts = [], {}, {}
    for scorer, folder in scorers.items():
        threshold = float("nan")
        if val is not None:
            folder_val = val_folder(scorer, scorers, val[2])
            val_scored = read_scorer(folder_val, val[0], val[1], step)
            threshold = pool_counts(val_scored.pixel.values()).best_dice()[1]
        scored = read_scorer(folder, pixel_labels, sample_labels, step)
        for group, members in groups.items():
            counts = _pooled(members, scored, sample_labels)
            n_anomalous = sum(sample_labels.get(n, 0) for n in members)
            results.append(_row(scorer, group, members, counts, n_anomalous, threshold))
            if group == "all":
                if counts[0] is not None:
                    pixel_counts[scorer] = counts[0]
                if counts[1] is not None:
                    sample_counts[scorer] = counts[1]
    return Evaluation(results, pixel_counts, sample_counts)
