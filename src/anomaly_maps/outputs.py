"""Where ``score`` and ``preprocess`` put their files, planned and checked before any work.

``score`` writes one of two layouts (:data:`LAYOUTS`):

- ``scan_scorer`` (default): ``OUT/<scan>_<scorer>.nii.gz`` (the map; ``.tiff`` for a
  2D image),
  ``OUT/<scan>_<scorer>.txt`` (the volume score) and ``OUT/<scan>_<scorer>_slices.csv``
  (a score per slice), ``<scan>`` being the scan's file name without ``.nii[.gz]``.
- ``mood``: MOOD's submission format, which MOOD's evaluator and ``anomaly-maps evaluate
  --pred`` read: ``OUT/<case>`` (the map under the scan's own file name, e.g.
  ``00000.nii.gz``) and ``OUT/<case>.txt`` (the score, e.g. ``00000.nii.gz.txt``); with
  several scorers, one such folder per scorer, ``OUT/<scorer>/``. No slice CSV: the
  folder holds what the evaluators read and nothing else.

With ``--findings`` (``scan_scorer`` layout only) a run also writes
``OUT/<scan>_<scorer>_findings.csv`` and, scoring several scans, ``OUT/worklist.csv``;
with ``--report``, ``OUT/<scan>_<scorer>_report.html``.

Every output path of a run is computed before the first scan is read: two inputs that
would write the same file (the same name from two folders), or an existing file without
``overwrite``, are refused up front, so a run never stops half-way through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._fileio import full_suffix, write_text
from .errors import AnomalyMapsError
from .images2d import is_image2d
from .io import NIFTI_SUFFIXES, Volume, save_volume
from .preprocessing import PreprocessingSpec, SliceStack, slices_to_volume, to_slices

if TYPE_CHECKING:
    from .atlas import Atlas
    from .checkpoint import Checkpoint
    from .records import Calibration
    from .scoring.pipeline import VolumeScore
    from .worklist import WorklistRow

__all__ = [
    "LAYOUTS",
    "WORKLIST",
    "ScoreFiles",
    "model_view_outputs",
    "scan_stem",
    "score_outputs",
    "write_findings",
    "write_model_view",
    "write_score",
    "write_text",
]

#: Layouts of ``score`` outputs, with one line each for ``--help``.
LAYOUTS: dict[str, str] = {
    "scan_scorer": "OUT/<scan>_<scorer>.nii.gz map, .txt volume score, _slices.csv",
    "mood": "MOOD's format, read by `evaluate --pred`: OUT/<case>.nii.gz map and "
    "OUT/<case>.nii.gz.txt score (several scorers: OUT/<scorer>/...)",
}

#: The worklist's file name in ``--out`` (several scans scored with findings).
WORKLIST = "worklist.csv"


@dataclass(frozen=True)
class ScoreFiles:
    """The files of one scan and one scorer: map, volume score, (maybe) slice scores,
    findings CSV and HTML report."""

    map: Path
    score: Path
    slices: Path | None
    findings: Path | None = None
    report: Path | None = None

    def paths(self) -> list[Path]:
        every = (self.map, self.score, self.slices, self.findings, self.report)
        return [p for p in every if p is not None]


def scan_stem(path: str | os.PathLike) -> str:
    """The file name without its format suffix: ``a/x.nii.gz`` -> ``x``."""
    name, suffix = Path(path).name, full_suffix(path)
    return name[: -len(suffix)] if suffix else name


def _score_files(
    out: Path, scan: Path, scorer: str, layout: str, several: bool, extras: frozenset[str]
) -> ScoreFiles:
    if layout == "mood":
        folder = out / scorer if several else out
        # MOOD names a map after its case; a DICOM folder or an Analyze pair is saved as
        # NIfTI, so its case name becomes <name>.nii.gz
        name = scan.name if full_suffix(scan) in NIFTI_SUFFIXES else f"{scan_stem(scan)}.nii.gz"
        return ScoreFiles(folder / name, folder / f"{name}.txt", None)
    base = out / f"{scan_stem(scan)}_{scorer}"

    def named(tail: str, extra: str | None = None) -> Path | None:
        return None if extra and extra not in extras else base.with_name(base.name + tail)

    extra = (named("_findings.csv", "findings"), named("_report.html", "report"))
    map_suffix = ".tiff" if is_image2d(scan) else ".nii.gz"  # a 2D image's map: its size
    return ScoreFiles(named(map_suffix), named(".txt"), named("_slices.csv"), *extra)


def _refuse_collisions(planned: Mapping[str, Sequence[Path]]) -> None:
    """Two inputs that would write the same file: name both and say how to resolve it."""
    owner: dict[Path, str] = {}
    for source, paths in planned.items():
        for path in paths:
            other = owner.setdefault(path, source)
            if other != source:
                raise AnomalyMapsError(
                    f"{other} and {source} would both write {path}: rename one of them, "
                    "or run them with separate --out folders"
                )


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise AnomalyMapsError(
            f"{existing[0]}: already exists ({len(existing)} output(s)); "
            "pass --overwrite to replace them"
        )


def _checked(planned: dict[str, list[Path]], overwrite: bool) -> None:
    _refuse_collisions(planned)
    _refuse_existing([p for paths in planned.values() for p in paths], overwrite)


def score_outputs(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    scorers: Sequence[str],
    *,
    layout: str = "scan_scorer",
    overwrite: bool = False,
    findings: bool = False,
    report: bool = False,
) -> dict[str, dict[str, ScoreFiles]]:
    """Input -> scorer -> its :class:`ScoreFiles`, after refusing collisions and
    (without ``overwrite``) existing files.

    ``findings`` and ``report`` add the findings CSV and the HTML report (``scan_scorer``
    layout only); ``findings`` with several inputs also plans :data:`WORKLIST` in ``out``.
    """
    if layout not in LAYOUTS:
        raise AnomalyMapsError(f"layout {layout!r}: expected one of {list(LAYOUTS)}")
    if layout == "mood" and (findings or report):
        raise AnomalyMapsError(
            "--findings/--report with --layout mood: MOOD's folder holds only what its "
            "evaluator reads; use --layout scan_scorer"
        )
    extras = frozenset(k for k, on in (("findings", findings), ("report", report)) if on)
    out, several = Path(out), len(scorers) > 1
    plan = {
        str(scan): {
            name: _score_files(out, Path(scan), name, layout, several, extras) for name in scorers
        }
        for scan in inputs
    }
    checked = {s: [p for f in per.values() for p in f.paths()] for s, per in plan.items()}
    if findings and len(plan) > 1:
        checked["the worklist"] = [out / WORKLIST]
    _checked(checked, overwrite)
    return plan


def write_score(
    volume: Volume, result: VolumeScore, files: ScoreFiles, *, overwrite: bool = False
) -> None:
    """Write one scorer's (normalised) result for ``volume``: map, score, slice scores."""
    if result.map is not None:
        save_volume(volume.with_data(result.map), files.map, overwrite=overwrite)
    write_text(files.score, f"{result.volume_score:.8g}\n", overwrite=overwrite)
    if files.slices is not None:
        rows = "".join(f"{i},{s:.8g}\n" for i, s in enumerate(result.slice_scores))
        write_text(files.slices, "slice,score\n" + rows, overwrite=overwrite)


def write_findings(
    volume: Volume,
    raw: VolumeScore,
    volume_score: float,
    files: ScoreFiles,
    checkpoint: Checkpoint,
    threshold: tuple[float, str],
    *,
    calibration: Calibration | None = None,
    min_ml: float = 0.0,
    atlas: Atlas | None = None,
    overwrite: bool = False,
) -> WorklistRow:
    """Find the regions of ``raw``'s (unnormalised) map above ``threshold`` (value,
    source), named with ``atlas`` if given, and write the planned findings CSV and
    report; returns the worklist row.

    No region is a valid result: the CSV then holds its header only. A slice-only
    scorer has no map: its CSV and report say so and hold no finding.
    """
    from .findings import find_regions, findings_csv, volume_rank
    from .worklist import WorklistRow

    value, source = threshold
    heat = raw.map if raw.map is not None else np.zeros(volume.data.shape, np.float32)
    regions = find_regions(heat, volume.affine, value, mask=raw.foreground, min_ml=min_ml,
                           calibration=calibration, atlas=atlas)  # fmt: skip
    healthy = None if calibration is None else calibration.volume_scores.get(raw.aggregate)
    rank = None if healthy is None else volume_rank(raw.volume_score, healthy)
    comments = [f"scan {volume.path}, scorer {raw.scorer} {raw.params}, precision {raw.precision}",
                f"threshold {value:.6g} (raw map units): {source}; minimum size {min_ml:g} ml",
                "healthy_above: fraction of healthy validation voxels above the peak; "
                "atlas_label, atlas_share, peak_atlas_label: the atlas label covering most "
                "of the region, the share it covers, the label at the peak (empty without "
                "--atlas)"]  # fmt: skip
    if raw.map is None:
        comments.append(f"{raw.scorer} rates slices only: no map, no findings")
    elif not regions.findings:
        comments.append("no region above the threshold: a valid result, no finding")
    if files.findings is not None:
        write_text(files.findings, findings_csv(regions, comments), overwrite=overwrite)
    if files.report is not None:
        from .report import report_html

        html = report_html(volume, raw, regions, checkpoint, source)
        write_text(files.report, html, overwrite=overwrite)
    return WorklistRow(scan_stem(volume.path or "scan"), raw.scorer, volume_score, rank, regions)


def model_view_outputs(
    out: str | os.PathLike, inputs: Sequence[str | os.PathLike], *, overwrite: bool = False
) -> dict[str, tuple[Path, Path]]:
    """Input -> ``(<scan>_model_view.nii.gz, <scan>_foreground.nii.gz)``, checked like
    :func:`score_outputs`."""
    out = Path(out)
    plan = {
        str(scan): [
            out / f"{scan_stem(scan)}_{kind}.nii.gz" for kind in ("model_view", "foreground")
        ]
        for scan in inputs
    }
    _checked(plan, overwrite)
    return {scan: (view, mask) for scan, (view, mask) in plan.items()}


def write_model_view(
    volume: Volume,
    spec: PreprocessingSpec,
    files: tuple[Path, Path],
    *,
    overwrite: bool = False,
) -> SliceStack:
    """Write what a model with ``spec`` sees of ``volume`` (its slices mapped back to the
    scan's grid) and the foreground it scores; returns the slices."""
    stack = to_slices(volume, spec)
    view = slices_to_volume(stack.images, stack.geometry)
    mask = slices_to_volume(stack.mask.astype(np.float32), stack.geometry) >= 0.5
    save_volume(volume.with_data(view), files[0], overwrite=overwrite)
    save_volume(volume.with_data(mask.astype(np.uint8)), files[1], overwrite=overwrite)
    return stack
