"""From an anomaly map to findings: connected regions a reader can step through.

A reader does not read a heat map voxel by voxel: they want "three suspicious regions,
the largest 12 ml, its peak far above anything seen in healthy scans" and a way to jump
to each one. :func:`find_regions` thresholds a map, labels its connected regions
(26-connectivity, :func:`scipy.ndimage.label`) and measures every region in one
vectorised pass over the flagged voxels only (``np.bincount`` and
:mod:`scipy.ndimage`, no Python loop over voxels): volume in ml, peak and mean score,
peak and centroid in the scan's world millimetres (RAS+, through the
:class:`~anomaly_maps.io.Volume` affine), bounding box in voxels, the axial slice of the
peak, and how unusual the peak is: the fraction of healthy validation voxels scoring
higher, read from the model's :class:`~anomaly_maps.records.Calibration` pixel
quantiles (empty without one).

With an :class:`~anomaly_maps.atlas.Atlas` (``score --atlas``) each region is named:
``atlas_label`` is the label covering most of its voxels, ``atlas_share`` the fraction
of its voxels that label covers, ``peak_atlas_label`` the label at its peak; all empty
without an atlas. Names are right only when the scan is in the atlas' space (MNI for
AAL): see :mod:`anomaly_maps.atlas`.

:func:`validated_threshold` is the threshold findings use by default (the model's
best-Dice threshold, else the healthy 99th percentile); :func:`volume_rank` is a scan's
place among healthy validation volumes for the worklist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from scipy import ndimage

from .atlas import RegionNames
from .errors import ParameterError

if TYPE_CHECKING:
    from .atlas import Atlas
    from .records import Calibration

__all__ = [
    "FINDING_COLUMNS",
    "Finding",
    "Regions",
    "axial_axis",
    "csv_cell",
    "find_regions",
    "findings_csv",
    "healthy_fraction_above",
    "validated_threshold",
    "volume_rank",
]

#: Columns of a findings table (CSV, the dock), in order.
FINDING_COLUMNS: tuple[str, ...] = (
    "finding", "volume_ml", "voxels", "peak_score", "mean_score", "healthy_above",
    "peak_x_mm", "peak_y_mm", "peak_z_mm", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "peak_i", "peak_j", "peak_k", "peak_axial_slice",
    "bbox_i0", "bbox_i1", "bbox_j0", "bbox_j1", "bbox_k0", "bbox_k1", "atlas_label",
    "atlas_share", "peak_atlas_label",
)  # fmt: skip

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


@dataclass(frozen=True)
class Finding:
    """One connected region of flagged voxels.

    ``index`` is the region's number in :attr:`Regions.labels` (1 = highest peak).
    Positions in voxels are data indices ``(i, j, k)``; ``bbox`` holds ``(start, stop)``
    per data axis, stop exclusive. ``peak_axial_slice`` is the peak's index along the
    data axis closest to inferior-superior. ``healthy_above`` is the fraction of
    healthy validation voxels scoring above the peak (``None`` without a calibration).
    ``atlas_label`` names the atlas label covering most voxels, ``atlas_share`` the
    fraction it covers, ``peak_atlas_label`` the label at the peak (empty without an atlas).
    """

    index: int
    voxels: int
    volume_ml: float
    peak_score: float
    mean_score: float
    peak_voxel: tuple[int, int, int]
    peak_mm: tuple[float, float, float]
    centroid_mm: tuple[float, float, float]
    bbox: tuple[tuple[int, int], ...]
    peak_axial_slice: int
    healthy_above: float | None = None
    atlas_label: str = ""
    atlas_share: float | None = None
    peak_atlas_label: str = ""

    def row(self) -> tuple:
        """The values of :data:`FINDING_COLUMNS`, in order."""
        bbox = tuple(v for pair in self.bbox for v in pair)
        return (self.index, self.volume_ml, self.voxels, self.peak_score, self.mean_score,
                self.healthy_above, *self.peak_mm, *self.centroid_mm, *self.peak_voxel,
                self.peak_axial_slice, *bbox, self.atlas_label, self.atlas_share,
                self.peak_atlas_label)  # fmt: skip

    @property
    def label_text(self) -> str:
        """The atlas names for a reader: ``"Frontal_Sup_L (62 %)"``, and the peak's label
        when it differs (``"...; peak in Precentral_L"``); "" without an atlas label."""
        if not self.atlas_label:
            return ""
        text = f"{self.atlas_label} ({100 * self.atlas_share:.0f} %)"
        if self.peak_atlas_label != self.atlas_label:
            text += f"; peak in {self.peak_atlas_label or 'no labelled structure'}"
        return text


@dataclass(frozen=True)
class Regions:
    """The findings of one map at one threshold, sorted by peak score (highest first).

    ``labels`` (int32, the map's shape) holds each flagged voxel's finding index, 0
    elsewhere (specks below ``min_ml`` included). No finding is a valid result: the
    map has no region above the threshold. ``atlas`` names the atlas the findings were
    named with ("" without one).
    """

    findings: tuple[Finding, ...]
    labels: np.ndarray
    threshold: float
    min_ml: float
    atlas: str = ""

    @property
    def total_ml(self) -> float:
        return float(sum(f.volume_ml for f in self.findings))

    @property
    def largest_ml(self) -> float:
        return max((f.volume_ml for f in self.findings), default=0.0)


def axial_axis(affine: np.ndarray) -> int:
    """The data axis closest to the world's inferior-superior axis."""
    return int(np.flatnonzero(nib.orientations.io_orientation(affine)[:, 0] == 2)[0])


def healthy_fraction_above(
    values: np.ndarray | float, calibration: Calibration | None
) -> np.ndarray | None:
    """Fraction of healthy validation voxels scoring above each value (quantile lookup),
    or ``None`` without a pixel calibration."""
    if calibration is None or calibration.pixel_quantiles is None:
        return None
    quantiles = np.maximum.accumulate(np.asarray(calibration.pixel_quantiles, np.float64))
    return 1.0 - np.interp(values, quantiles, calibration.levels)


def _check(threshold: float, min_ml: float, shape: tuple[int, ...], mask) -> None:
    if not np.isfinite(threshold):
        raise ParameterError(f"threshold {threshold!r}: expected a finite number")
    if not (np.isfinite(min_ml) and min_ml >= 0):
        raise ParameterError(f"minimum size {min_ml!r} ml: expected a number >= 0")
    if len(shape) != 3:
        raise ParameterError(f"map of shape {shape}: expected a 3D map")
    if mask is not None and np.shape(mask) != shape:
        raise ParameterError(f"mask of shape {np.shape(mask)}: expected the map's {shape}")


def _crop(flagged: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the flagged voxels (labelling runs only there)."""
    spans = []
    for axis in range(3):
        hit = np.flatnonzero(flagged.any(axis=tuple(a for a in range(3) if a != axis)))
        spans.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
    return tuple(spans)


def find_regions(
    anomaly_map: np.ndarray,
    affine: np.ndarray,
    threshold: float,
    *,
    mask: np.ndarray | None = None,
    min_ml: float = 0.0,
    calibration: Calibration | None = None,
    atlas: Atlas | None = None,
) -> Regions:
    """Connected regions of ``anomaly_map >= threshold`` (within ``mask``), measured.

    Parameters
    ----------
    anomaly_map
        3D map on the scan's grid (e.g. ``VolumeScore.map``).
    affine
        The scan's 4x4 voxel -> world mm (RAS+) affine; gives volumes and positions.
    threshold
        Map value (the map's units) from which a voxel is flagged.
    mask
        Voxels that may be flagged (e.g. ``VolumeScore.foreground``); all if ``None``.
    min_ml
        Regions smaller than this (ml) are specks and dropped.
    calibration
        The scorer's calibration, for ``healthy_above``; ``None`` leaves it empty.
    atlas
        Names the regions (``atlas_label``...); right only for a scan in its space.
    """
    anomaly_map = np.asarray(anomaly_map)
    affine = np.asarray(affine, dtype=np.float64)
    _check(threshold, min_ml, anomaly_map.shape, mask)
    flagged = anomaly_map >= threshold
    if mask is not None:
        flagged &= np.asarray(mask, dtype=bool)
    crop = _crop(flagged)
    flagged_c = flagged[crop]
    labels_c, n = ndimage.label(flagged_c, structure=_STRUCTURE)
    labels = np.zeros(anomaly_map.shape, dtype=np.int32)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    flat = np.flatnonzero(flagged_c)
    lab = labels_c.ravel()[flat]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    keep = np.flatnonzero(counts * voxel_ml >= min_ml) + 1
    atlas_name = atlas.name if atlas is not None else ""
    if not keep.size:
        return Regions((), labels, float(threshold), float(min_ml), atlas_name)
    values = anomaly_map[crop].ravel()[flat].astype(np.float64)
    # Each region's peak among its own voxels (ties: the first in C order), from the
    # flagged voxels grouped by label; ndimage.maximum(_position) would sort the whole
    # crop by value, seconds on a 256^3 map whose flagged voxels are spread over it.
    by_label = np.argsort(lab, kind="stable")  # a radix sort of the integer labels
    sorted_labels, sorted_values = lab[by_label], values[by_label]
    starts = np.searchsorted(sorted_labels, np.arange(1, n + 1))
    peak_value = np.maximum.reduceat(sorted_values, starts)
    hits = np.flatnonzero(sorted_values == np.repeat(peak_value, counts))
    _, first = np.unique(sorted_labels[hits], return_index=True)
    peak_at = by_label[hits[first]]  # flagged-voxel index of the peak of label 1..n
    order = keep[np.argsort(-values[peak_at[keep - 1]], kind="stable")]
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[order] = np.arange(1, order.size + 1)
    labels[crop] = lut[labels_c]
    sums = np.bincount(lab, values, minlength=n + 1)[order]
    coords = np.unravel_index(flat, labels_c.shape)
    centroid = (
        np.stack([np.bincount(lab, c, minlength=n + 1)[order] for c in coords], axis=1)
        / counts[order - 1, None]
    )
    offset = np.array([s.start for s in crop])
    peak_vox = np.stack(np.unravel_index(flat[peak_at[order - 1]], labels_c.shape), axis=1)
    peak_vox = peak_vox + offset
    world = nib.affines.apply_affine
    peak_mm, centroid_mm = world(affine, peak_vox), world(affine, centroid + offset)
    boxes = ndimage.find_objects(labels[crop])
    peak_values = anomaly_map[tuple(peak_vox.T)].astype(np.float64)
    above = healthy_fraction_above(peak_values, calibration)
    axial = axial_axis(affine)
    names = [RegionNames()] * order.size
    if atlas is not None:  # the flagged voxels only, in scan indices, by finding number
        scan_coords = tuple(c + o for c, o in zip(coords, offset, strict=True))
        names = atlas.region_names(lut[lab], scan_coords, affine, peak_vox)
    findings = tuple(
        Finding(
            index=i + 1,
            voxels=int(counts[r - 1]),
            volume_ml=float(counts[r - 1] * voxel_ml),
            peak_score=float(peak_values[i]),
            mean_score=float(sums[i] / counts[r - 1]),
            peak_voxel=tuple(int(v) for v in peak_vox[i]),
            peak_mm=tuple(float(v) for v in peak_mm[i]),
            centroid_mm=tuple(float(v) for v in centroid_mm[i]),
            bbox=tuple((s.start + o, s.stop + o) for s, o in zip(boxes[i], offset, strict=True)),
            peak_axial_slice=int(peak_vox[i, axial]),
            healthy_above=None if above is None else float(above[i]),
            atlas_label=names[i].main,
            atlas_share=names[i].main_share,
            peak_atlas_label=names[i].peak,
        )
        for i, r in enumerate(order)
    )
    return Regions(findings, labels, float(threshold), float(min_ml), atlas_name)


def csv_cell(value: object) -> str:
    """A CSV cell: empty for ``None``, 6 significant digits for floats; text holding a
    comma, quote or line break quoted as RFC 4180 says (atlas names may)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def findings_csv(regions: Regions, comments: Sequence[str] = ()) -> str:
    """The findings as CSV text: ``# `` comment lines, a header, one row per finding
    (a header only when there is none)."""
    lines = [f"# {c}" for c in comments]
    if regions.atlas:
        lines.append(f"# atlas {regions.atlas}: labels are right only for a scan in its space")
    lines.append(",".join(FINDING_COLUMNS))
    lines += [",".join(csv_cell(v) for v in f.row()) for f in regions.findings]
    return "\n".join(lines) + "\n"


def validated_threshold(calibration: Calibration | None, what: str) -> tuple[float, str]:
    """The model's validated map threshold and where it comes from: the best-Dice
    threshold on labelled validation scans, else the healthy voxels' 99th percentile.

    ``what`` names the scorer and checkpoint in the error when there is no pixel
    calibration to read either from.
    """
    if calibration is not None and calibration.dice_threshold is not None:
        return float(calibration.dice_threshold), "best Dice on labelled validation scans"
    if calibration is not None and calibration.pixel_quantiles is not None:
        return calibration.quantile(0.99), "99th percentile of healthy validation voxels"
    raise ParameterError(
        f"{what}: no map calibration to take a threshold from; pass --threshold VALUE "
        "or run `anomaly-maps calibrate` first"
    )


def volume_rank(score: float, healthy_scores: Sequence[float] | None) -> float:
    """Fraction of healthy validation volumes whose volume score is above ``score``.

    ``healthy_scores`` come from the model's calibration; asking without them is an
    error (a rank needs healthy volumes to rank against).
    """
    if healthy_scores is None or not len(healthy_scores):
        raise ParameterError(
            "calibrated rank: the model's calibration holds no healthy volume scores; "
            "run `anomaly-maps calibrate` first"
        )
    return float(np.mean(np.asarray(healthy_scores, dtype=np.float64) > score))
