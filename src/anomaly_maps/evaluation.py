"""Evaluate anomaly maps and scores the way the MOOD challenge does, and more finely.

Predictions are read in MOOD's submission format [1]_: a folder per scorer holding, for
each case ``NAME`` (e.g. ``00000.nii.gz``) of the label folder, a same-shape NIfTI map
``NAME`` and/or a text file ``NAME.txt`` with one score. Labels follow MOOD's
``toy_label/pixel/NAME`` (voxel label) and ``toy_label/sample/NAME.txt`` (0 or 1).
Maps are read as MOOD's evaluator reads them (float16, clipped to [0, 1]; labels
rounded, clipped, ``== 1``), so pooled AP here is MOOD's pixel score on the same files,
and sample scores are clipped to [0, 1] as MOOD does. Unlike MOOD, which scores a
missing or misshapen prediction as all zeros, a missing file or a shape mismatch is an
error here: a silent zero would look like a weak method.

Per scorer, over all voxels of all cases pooled: AUROC, AP, the best Dice over all
thresholds (an oracle) and the Dice at the threshold that is best on a validation split
(an honest operating point); over cases: sample-level AUROC and AP. With a benchmark's
``cases.csv`` the same numbers are given per anomaly type and per size bin, each
subset being the cases of that kind *plus all healthy cases*, so that sample-level
metrics have negatives and pixel-level ones the same healthy background.

References
----------
.. [1] The MOOD challenge (Medical Out-of-Distribution Analysis), brain MRI track, as
   used by Marimont & Tarroni, ISBI 2021 (seed 002, section 3); its evaluator is
   MIC-DKFZ/mood ``scripts/evalresults.py``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._fileio import atomic_path, full_suffix
from .benchmark import Case, read_cases
from .checkpoint import Checkpoint
from .errors import AnomalyMapsError, VolumeError
from .io import NIFTI_SUFFIXES, Volume, load_volume, save_volume
from .metrics import ScoreCounts, pool_counts, score_counts

if TYPE_CHECKING:
    from .scoring import VolumeScore

__all__ = [
    "OUTPUT_FILES",
    "Evaluation",
    "Result",
    "evaluate",
    "evaluate_checkpoint",
    "labelled_scans",
]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class _Scored:
    """One scorer's predictions on one split, read and counted per case."""

    pixel: dict[str, ScoreCounts]
    sample: dict[str, float]


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
            _write_text(path, text, overwrite=overwrite)
        self._plot(paths[2], "roc", overwrite)
        self._plot(paths[3], "pr", overwrite)
        return paths

    def _plot(self, path: Path, kind: str, overwrite: bool) -> None:
        """ROC or PR curves, pixel-level and sample-level side by side."""
        from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI

        figure = Figure(figsize=(10, 4.5), layout="constrained")
        for ax, (level, counts) in zip(
            figure.subplots(1, 2),
            (("voxels pooled", self.pixel_counts), ("cases", self.sample_counts)),
            strict=True,
        ):
            for scorer, c in counts.items():
                if kind == "roc":
                    fpr, tpr, _ = c.roc_curve()
                    ax.plot(fpr, tpr, label=f"{scorer} (AUROC {c.roc_auc():.3f})")
                else:
                    precision, recall, _ = c.pr_curve()
                    ax.step(recall, precision, where="post",
                            label=f"{scorer} (AP {c.average_precision():.3f})")  # fmt: skip
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
                ax.set(xlabel="false positive rate", ylabel="true positive rate")
            else:
                ax.set(xlabel="recall", ylabel="precision")
            ax.set(title=f"{kind.upper()}, {level}", xlim=(0, 1), ylim=(0, 1.02))
            if counts:
                ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=8)
        with atomic_path(path, overwrite=overwrite) as tmp:
            figure.savefig(tmp, format="png", dpi=120)


def _write_text(path: Path, text: str, *, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def _label_root(label_dir: Path) -> Path:
    """The folder holding ``pixel/`` and/or ``sample/``: ``label_dir`` itself or its
    ``toy_label`` (so a benchmark split folder works too)."""
    for root in (label_dir / "toy_label", label_dir):
        if (root / "pixel").is_dir() or (root / "sample").is_dir():
            return root
    raise AnomalyMapsError(
        f"{label_dir}: no pixel/ or sample/ label folder in it or in its toy_label/: "
        "expected MOOD's label layout (toy_label/pixel/NAME, toy_label/sample/NAME.txt)"
    )


def _first_line(path: Path, kind: type, what: str) -> Any:
    """The number on a MOOD text file's first line."""
    try:
        with path.open() as f:
            return kind(f.readline())
    except (OSError, ValueError) as err:
        raise AnomalyMapsError(
            f"{path}: cannot read {what} ({err}); expected a {kind.__name__} on the first line"
        ) from err


def _read_labels(label_dir: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """Voxel-label files and sample labels by case name."""
    root = _label_root(label_dir)
    pixel = {
        p.name: p
        for p in sorted((root / "pixel").glob("*"))
        if full_suffix(p) in NIFTI_SUFFIXES and not p.name.startswith(".")
    } if (root / "pixel").is_dir() else {}  # fmt: skip
    sample = {
        p.name[: -len(".txt")]: _first_line(p, int, "a sample label")
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
    labels, _ = _read_labels(folder)
    unlabelled = [p.name for p in scans if p.name not in labels]
    if unlabelled:
        raise AnomalyMapsError(
            f"{folder}: no voxel label in toy_label/pixel/ for {unlabelled[:3]}"
            f"{' ...' if len(unlabelled) > 3 else ''}"
        )
    return [(scan, labels[scan.name]) for scan in scans]


def _scorer_dirs(pred_dir: Path) -> dict[str, Path]:
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


def _read_scorer(
    folder: Path,
    pixel_labels: dict[str, Path],
    sample_labels: dict[str, int],
    progress: Callable[[], None] | None,
) -> _Scored:
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
            score = _first_line(folder / f"{name}.txt", float, "a score")
            if not math.isfinite(score):
                raise AnomalyMapsError(f"{folder / name}.txt: score {score}: expected finite")
            sample[name] = float(np.clip(score, 0.0, 1.0))  # as MOOD's evaluator
    return _Scored(pixel, sample)


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
    members: list[str], scored: _Scored, sample_labels: dict[str, int]
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


def _val_folder(scorer: str, scorers: dict[str, Path], val_scorers: dict[str, Path]) -> Path:
    """The validation predictions of ``scorer``: same name, or the only one of each."""
    if scorer in val_scorers:
        return val_scorers[scorer]
    if len(scorers) == len(val_scorers) == 1:
        return next(iter(val_scorers.values()))
    raise AnomalyMapsError(
        f"no validation predictions of scorer {scorer!r}: expected a folder of that name "
        f"among {sorted(val_scorers)}"
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
    pixel_labels, sample_labels = _read_labels(label_dir)
    scorers = _scorer_dirs(pred_dir)
    val = None
    if val_pred_dir is not None:
        val_pixel, val_sample = _read_labels(Path(val_label_dir))
        val = (val_pixel, val_sample, _scorer_dirs(Path(val_pred_dir)))
    cases = None
    if manifest is not None:
        split = split or _label_root(label_dir).parent.name
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
            val_folder = _val_folder(scorer, scorers, val[2])
            val_scored = _read_scorer(val_folder, val[0], val[1], step)
            threshold = pool_counts(val_scored.pixel.values()).best_dice()[1]
        scored = _read_scorer(folder, pixel_labels, sample_labels, step)
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


def evaluate_checkpoint(
    checkpoint: str | os.PathLike | Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    benchmark: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    device: str | None = None,
    batch_size: int = 32,
    seed: int = 0,
    volume_score: str = "slice_mean",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score a benchmark's val and test cases with a model, write MOOD-format
    predictions, evaluate them (test, Dice threshold from val) and write the report.

    Maps and volume scores are normalised with the ``mood`` method of
    :mod:`~anomaly_maps.scoring.postprocess` (into (0, 1), 0.75 at the healthy 99th
    percentile), as MOOD's evaluator needs. The healthy statistics are the checkpoint's
    calibration of each scorer if it holds one, else they are computed here on the
    benchmark's healthy validation cases (the checkpoint file is left unchanged), whose
    raw results are then held in memory until written, so each case is scored once.

    Parameters
    ----------
    checkpoint
        A trained model file or a loaded :class:`~anomaly_maps.checkpoint.Checkpoint`.
    scorers
        ``(name, params)`` pairs, names unique.
    benchmark
        A folder made by :func:`~anomaly_maps.benchmark.make_benchmark`.
    out_dir
        Receives ``predictions/{val,test}/SCORER/NAME.nii.gz`` and ``NAME.txt``, and
        the :data:`OUTPUT_FILES` of the test evaluation.
    device, batch_size, seed, volume_score
        As for :func:`~anomaly_maps.scoring.score_volume`.
    overwrite
        Replace earlier predictions and report in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after each scored val/test volume.
    """
    from .checkpoint import load_checkpoint
    from .scoring import get_scorer, score_volume
    from .scoring.calibration import calibrations_from_results, find_calibration
    from .scoring.postprocess import normalize_result

    names = [name for name, _ in scorers]
    if not names or len(set(names)) != len(names):
        raise AnomalyMapsError(f"scorers {names}: expected one or more, each named once")
    benchmark, out = Path(benchmark), Path(out_dir)
    predictions = out / "predictions"
    taken = [p for p in (predictions, *(out / f for f in OUTPUT_FILES)) if p.exists()]
    if taken and not overwrite:
        raise AnomalyMapsError(
            f"{taken[0]}: already exists; pass overwrite=True (CLI: --overwrite) to replace "
            "the predictions and report"
        )
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint, device="cpu" if device is None else device)
    for name in names:
        get_scorer(name).check_fits(checkpoint.kinds)
    cases = read_cases(benchmark)
    splits = {s: [c for c in cases if c.split == s] for s in ("val", "test")}
    if not splits["test"]:
        raise AnomalyMapsError(f"{benchmark}: no test cases to evaluate")

    total, done = len(splits["val"]) + len(splits["test"]), 0

    def score(case: Case) -> tuple[Volume, list[VolumeScore]]:
        nonlocal done
        volume = load_volume(benchmark / case.split / "toy" / case.case)
        results = score_volume(
            volume, checkpoint, scorers, device=device, batch_size=batch_size, seed=seed,
            volume_score=volume_score,
        )  # fmt: skip
        done += 1
        if progress is not None:
            progress(done, total)
        return volume, results

    calibrations = {name: find_calibration(checkpoint, name, params) for name, params in scorers}
    missing = [i for i, (name, _) in enumerate(scorers) if calibrations[name] is None]
    # Healthy validation cases calibrate the missing scorers; their results are kept
    # (raw, in memory) to be written below rather than scored a second time.
    scored: dict[tuple[str, str], tuple[Volume, list[VolumeScore]]] = {}
    if missing:
        healthy = [c for c in splits["val"] if c.label == 0]
        if not healthy:
            raise AnomalyMapsError(
                f"{checkpoint.path}: no calibration of {[names[i] for i in missing]} and no "
                f"healthy validation case in {benchmark} to compute one from"
            )
        log.info("calibrating %d scorer(s) on %d healthy validation cases", len(missing),
                 len(healthy))  # fmt: skip
        for case in healthy:
            scored[case.split, case.case] = score(case)
        computed = calibrations_from_results(
            [scorers[i] for i in missing],
            ([results[i] for i in missing] for _, results in scored.values()),
        )
        calibrations.update({c.scorer: c for c in computed})

    for split, split_cases in splits.items():
        for case in split_cases:
            volume, raw_results = scored.pop((split, case.case), None) or score(case)
            for raw in raw_results:
                result = normalize_result(raw, "mood", calibrations[raw.scorer])
                folder = predictions / split / raw.scorer
                if result.map is not None:
                    save_volume(volume.with_data(result.map), folder / case.case,
                                overwrite=overwrite)  # fmt: skip
                _write_text(folder / f"{case.case}.txt", f"{result.volume_score:.8g}\n",
                            overwrite=overwrite)  # fmt: skip
    with_val = bool(splits["val"])
    evaluation = evaluate(
        predictions / "test",
        benchmark / "test",
        val_pred_dir=predictions / "val" if with_val else None,
        val_label_dir=benchmark / "val" if with_val else None,
        manifest=benchmark,
        split="test",
    )
    evaluation.write(out, overwrite=overwrite)
    return evaluation
