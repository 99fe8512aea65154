"""napari reader: ``napari scan.nii.gz`` opens the scan in world millimetres.

It reads what :func:`~anomaly_maps.io.load_volume` reads: NIfTI, Analyze pairs, and DICOM
series (a folder, or one or more files of a series: each series opens once).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._fileio import full_suffix
from ..dicom import is_dicom_file, is_dicom_folder, one_path_per_series
from ..io import ANALYZE_SUFFIXES, NIFTI_SUFFIXES, Volume, load_volume
from ._geometry import RAS_AXES, layer_geometry, ras_axes, volume_metadata, world_affine
from ._views import upright_when_opened

__all__ = ["get_reader", "is_label_image", "volume_layer_data"]

LayerData = tuple[Any, dict[str, Any], str]
MAX_LABELS = 32
"""An integer scan with at most this many distinct non-negative values opens as Labels."""


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return the reader for scan paths, or None so napari tries other plugins."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(_is_scan(p) for p in paths):
        return None
    return read_scans


def _is_scan(path: str | os.PathLike) -> bool:
    if full_suffix(path) in NIFTI_SUFFIXES + ANALYZE_SUFFIXES:
        return True
    return is_dicom_folder(path) if os.path.isdir(path) else is_dicom_file(path)


def read_scans(path: str | Sequence[str]) -> list[LayerData]:
    """Read scans into napari layer data (shown upright, axial); files of one DICOM
    series given together open as one layer."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers = [volume_layer_data(load_volume(p)) for p in one_path_per_series(paths)]
    upright_when_opened()
    return layers


def is_label_image(data: np.ndarray) -> bool:
    """True for masks and segmentations: integer voxels, few distinct values >= 0."""
    if data.dtype == bool:
        return True
    if not np.issubdtype(data.dtype, np.integer) or data.min() < 0 or data.max() > 10_000:
        return False
    return np.count_nonzero(np.bincount(data.ravel().astype(np.int64))) <= MAX_LABELS


def robust_contrast_limits(data: np.ndarray) -> tuple[float, float]:
    """Display range from the 0.5th percentile to the 99.5th percentile of the tissue.

    The upper bound ignores background voxels (often most of a scan), so brains are
    not washed out, and ignores the brightest 0.5 % (vessels, fat, artefacts).
    """
    lo = float(np.percentile(data, 0.5))
    above = data[data > lo]
    hi = float(np.percentile(above, 99.5)) if above.size else float(data.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def volume_layer_data(volume: Volume, name: str | None = None) -> LayerData:
    """Image (or Labels) layer data for a volume, placed in world millimetres.

    The world axes are RAS millimetres in the order of the data axes (see
    :func:`~._geometry.world_affine`); ``axis_labels`` name them.
    """
    if name is None:
        name = _display_name(volume.path) if volume.path else "volume"
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": volume_metadata(volume),
        "axis_labels": tuple(RAS_AXES[axis] for axis in ras_axes(volume.affine)),
        "units": ("mm", "mm", "mm"),
        **layer_geometry(world_affine(volume.affine)),
    }
    if is_label_image(volume.data):
        return volume.data, kwargs, "labels"
    kwargs["contrast_limits"] = robust_contrast_limits(volume.data)
    kwargs["colormap"] = "gray"
    return volume.data, kwargs, "image"


def _display_name(path: Path) -> str:
    name = Path(path).name
    suffix = full_suffix(name)
    return name[: -len(suffix)] if suffix else name
