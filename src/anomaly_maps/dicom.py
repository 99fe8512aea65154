"""DICOM series as a voxel grid and a RAS+ affine: pydicom parses, the geometry is built here.

A folder (searched recursively) or one file of a series is read as one 3D volume. The
geometry comes from the tags of every slice, as the DICOM standard defines it (PS3.3
C.7.6.2): the in-plane directions from ImageOrientationPatient, the in-plane spacing from
PixelSpacing (the spacing between rows first, then between columns), the slice spacing
and direction from the ImagePositionPatient of the slices sorted along the normal
(SliceThickness is a thickness, not a spacing), and DICOM's LPS patient coordinates turned
into the RAS+ world of :class:`~anomaly_maps.io.Volume`. Everything is checked from the
headers before the first pixel is decoded, so :func:`~anomaly_maps.io.load_volume` can
refuse a series too large for memory without reading it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import VolumeError

__all__ = [
    "DICOM_SUFFIXES",
    "DicomSeries",
    "is_dicom_file",
    "is_dicom_folder",
    "one_path_per_series",
    "open_series",
    "series_uid",
]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_PREAMBLE = 128
_MAGIC = b"DICM"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PathT = TypeVar("_PathT", str, os.PathLike)
_SPACING_TOLERANCE = 0.02
"""Neighbouring slices may differ from the mean spacing by 2 % (positions are rounded)."""


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a file with a DICOM suffix or the ``DICM`` marker after its preamble."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return path.is_file()
    try:
        with path.open("rb") as f:
            f.seek(_PREAMBLE)
            return f.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def is_dicom_folder(path: str | os.PathLike, *, look_at: int = 64) -> bool:
    """True for a folder whose first ``look_at`` files include a DICOM file."""
    files = (p for p in Path(path).rglob("*") if p.is_file())
    return any(is_dicom_file(p) for _, p in zip(range(look_at), files, strict=False))


@dataclass(frozen=True)
class _Slice:
    path: Path
    header: object  # pydicom Dataset, without its pixel data


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """One series, checked and sorted from its headers; :meth:`read` decodes the pixels.

    ``shape`` is (columns, rows, slices): array axis 0 runs along a row (the first
    direction of ImageOrientationPatient), axis 1 down a column, axis 2 along the slices.
    """

    folder: Path
    uid: str
    description: str
    slices: tuple[_Slice, ...]
    affine: np.ndarray
    dtype: np.dtype
    modality: str | None = None
    """The Modality tag of the first slice (``MR``, ``CT``, ...); ``None`` where absent."""

    @property
    def shape(self) -> tuple[int, int, int]:
        first = self.slices[0].header
        return int(first.Columns), int(first.Rows), len(self.slices)

    def read(self) -> np.ndarray:
        """Decode every slice, apply RescaleSlope/Intercept, stack along axis 2."""
        import pydicom

        data = np.empty(self.shape, self.dtype)
        for k, item in enumerate(self.slices):
            _check_decodable(item.header, item.path)
            try:
                pixels = pydicom.dcmread(item.path, force=True).pixel_array
            except (ValueError, RuntimeError, NotImplementedError, AttributeError, OSError) as err:
                raise VolumeError(
                    f"{item.path}: DICOM pixel data cannot be read ({err}); "
                    "expected Rows x Columns pixels"
                ) from err
            if pixels.shape != (self.shape[1], self.shape[0]):
                raise VolumeError(
                    f"{item.path}: pixel data has shape {pixels.shape}, expected "
                    f"Rows x Columns = {self.shape[1]} x {self.shape[0]}"
                )
            slope, intercept = _rescale(item.header)
            data[:, :, k] = pixels.T * slope + intercept  # exact in the dtype chosen for it
        return data


def series_uid(path: str | os.PathLike) -> str:
    """SeriesInstanceUID of one DICOM image file (read without its pixels)."""
    return str(_image_header(Path(path)).SeriesInstanceUID)


def one_path_per_series(paths: Sequence[_PathT]) -> list[_PathT]:
    """Drop DICOM files whose series (in the same folder) an earlier path already reads:
    ``series/*.dcm`` names one scan, not one per slice."""
    seen, kept = set(), []
    for path in paths:
        dicom_file = os.path.isfile(path) and is_dicom_file(path)
        key = (Path(path).parent, series_uid(path)) if dicom_file else path
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def open_series(path: str | os.PathLike, series: str | None = None) -> DicomSeries:
    """The series in a folder (the largest, or ``series``) or the one a file belongs to.

    Raises
    ------
    VolumeError
        No DICOM images; an unknown ``series`` (the message lists the series found: UID,
        description, slices); a file of another series than ``series``; mixed slice
        orientations or sizes, shared or irregularly spaced positions (missing slices);
        multi-frame, colour or undecodable pixel data. The message names the folder.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        found = _find_series(sorted(p for p in path.rglob("*") if p.is_file()))
        chosen = _choose(found, folder, series)
    else:
        uid = series_uid(path)
        if series is not None and series != uid:
            raise VolumeError(f"{path}: belongs to DICOM series {uid}, not to series {series}")
        found = _find_series(sorted(p for p in folder.iterdir() if p.is_file()))
        chosen = uid, found[uid]
    return _checked(folder, chosen)


def _read_header(path: Path, *, strict: bool = False):
    """The file's tags without pixel data, or None for a non-DICOM file or a non-image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not is_dicom_file(path):
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        if strict:
            raise VolumeError(f"{path}: not a readable DICOM file ({err})") from err
        return None
    needed = ("SeriesInstanceUID", "Rows", "Columns", "ImagePositionPatient")
    return header if all(name in header for name in needed) else None


def _image_header(path: Path):
    header = _read_header(path, strict=True)
    if header is None:
        raise VolumeError(f"{path}: DICOM file without an image (no Rows/Columns/position)")
    return header


def _find_series(files: list[Path]) -> dict[str, list[_Slice]]:
    found: dict[str, list[_Slice]] = {}
    for file in files:
        header = _read_header(file)
        if header is not None:
            found.setdefault(str(header.SeriesInstanceUID), []).append(_Slice(file, header))
    return found


def _describe(uid: str, slices: list[_Slice]) -> str:
    description = str(slices[0].header.get("SeriesDescription", "")) or "no description"
    return f"{uid} ({description}, {len(slices)} slices)"


def _choose(found: dict[str, list[_Slice]], folder: Path, series: str | None) -> tuple:
    """(UID, slices) of ``series``, or of the series with the most slices."""
    if not found:
        raise VolumeError(
            f"{folder}: is a directory without DICOM image files; expected a folder of a "
            "DICOM series, or a NIfTI (.nii, .nii.gz) or Analyze (.hdr/.img) file"
        )
    if series is None:
        uid = max(sorted(found), key=lambda u: len(found[u]))
        if len(found) > 1:
            warnings.warn(
                f"{folder}: {len(found)} DICOM series; reading the largest, "
                f"{_describe(uid, found[uid])} (pass series=UID, CLI --series UID, for another)",
                stacklevel=2,
            )
    elif series in found:
        uid = series
    else:
        listed = "; ".join(_describe(u, s) for u, s in sorted(found.items()))
        raise VolumeError(f"{folder}: no DICOM series {series}; series found: {listed}")
    return uid, found[uid]


def _floats(header, name: str, count: int, path: Path) -> np.ndarray:
    value = header.get(name)
    try:
        values = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise VolumeError(f"{path}: DICOM tag {name} is {value!r}, expected {count} numbers")
    return values


def _rescale(header) -> tuple[float, float]:
    return float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0)


def _check_frames(slices: list[_Slice], where: str) -> None:
    first = slices[0]
    if int(first.header.get("NumberOfFrames", 1) or 1) > 1:
        raise VolumeError(
            f"{where}: multi-frame (enhanced) DICOM is not supported; expected one slice per "
            "file (export the series as classic DICOM or NIfTI, e.g. with dcm2niix)"
        )
    if int(first.header.get("SamplesPerPixel", 1)) != 1:
        raise VolumeError(f"{where}: colour DICOM images are not scans; expected greyscale")
    size = (int(first.header.Rows), int(first.header.Columns))
    spacing = _floats(first.header, "PixelSpacing", 2, first.path)
    for item in slices[1:]:
        if (int(item.header.Rows), int(item.header.Columns)) != size or not np.allclose(
            _floats(item.header, "PixelSpacing", 2, item.path), spacing
        ):
            raise VolumeError(
                f"{where}: slices of different sizes or pixel spacings ({first.path.name} and "
                f"{item.path.name}); expected one grid per series"
            )


def _orientation(slices: list[_Slice], where: str) -> np.ndarray:
    """The series' ImageOrientationPatient; mixed orientations are refused."""
    first = _floats(slices[0].header, "ImageOrientationPatient", 6, slices[0].path)
    for item in slices[1:]:
        if not np.allclose(
            _floats(item.header, "ImageOrientationPatient", 6, item.path), first, atol=1e-4
        ):
            raise VolumeError(
                f"{where}: mixed slice orientations ({slices[0].path.name} and {item.path.name}); "
                "expected one ImageOrientationPatient per series"
            )
    return first


def _slice_step(positions: np.ndarray, normal: np.ndarray, header, where: str) -> np.ndarray:
    """The vector from one slice's position to the next, checked to be the same for all."""
    if len(positions) == 1:
        thickness = header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0
        return normal * float(thickness)
    steps = np.diff(positions, axis=0)
    distances = steps @ normal
    if distances.min() <= 1e-6:
        shared = int(np.count_nonzero(distances <= 1e-6)) + 1
        raise VolumeError(
            f"{where}: {shared} slices share a position (several echoes, phases or time "
            "points in one series?); expected one slice per position"
        )
    mean = (positions[-1] - positions[0]) / (len(positions) - 1)
    off = np.linalg.norm(steps - mean, axis=1).max()
    if off > _SPACING_TOLERANCE * np.linalg.norm(mean):
        raise VolumeError(
            f"{where}: irregular slice spacing ({distances.min():.4g} to "
            f"{distances.max():.4g} mm between neighbouring slices: missing slices?); "
            "expected evenly spaced slices"
        )
    return mean


def _voxel_dtype(slices: list[_Slice]) -> np.dtype:
    """The stored type, or float32 once a slope or a fractional intercept scales it."""
    header = slices[0].header
    bits, signed = int(header.get("BitsAllocated", 16)), int(header.get("PixelRepresentation", 0))
    stored = np.dtype(f"{'i' if signed else 'u'}{max(bits, 8) // 8}")
    rescales = {_rescale(item.header) for item in slices}
    if rescales == {(1.0, 0.0)}:
        return stored
    if all(slope == 1 and intercept.is_integer() for slope, intercept in rescales):
        return np.dtype(np.int32)
    return np.dtype(np.float32)


def _check_decodable(header, path: Path) -> None:
    """A compressed transfer syntax needs a decoder pydicom may lack: name what to install."""
    from pydicom.pixels import get_decoder

    syntax = getattr(header, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise VolumeError(
            f"{path}: pixel data in {syntax.name}, which pydicom cannot decode; "
            "expected an uncompressed series (convert it, e.g. with dcm2niix)"
        ) from None
    if not decoder.is_available:
        raise VolumeError(
            f"{path}: pixel data compressed as {syntax.name}; decoding it needs one of: "
            f"{'; '.join(decoder.missing_dependencies)} (pip install the package)"
        )


def _checked(folder: Path, chosen: tuple[str, list[_Slice]]) -> DicomSeries:
    """Sort the slices along the normal, build the RAS+ affine and refuse what no grid holds."""
    uid, slices = chosen
    where = f"{folder}: DICOM series {uid}"
    _check_frames(slices, where)
    orientation = _orientation(slices, where)
    along_row, along_column = orientation[:3], orientation[3:]
    normal = np.cross(along_row, along_column)
    positions = np.array([_floats(s.header, "ImagePositionPatient", 3, s.path) for s in slices])
    order = np.argsort(positions @ normal, kind="stable")
    slices, positions = [slices[i] for i in order], positions[order]
    _check_decodable(slices[0].header, slices[0].path)
    row_spacing, column_spacing = _floats(slices[0].header, "PixelSpacing", 2, slices[0].path)
    lps = np.eye(4)
    lps[:3, 0] = along_row * column_spacing  # next column: one column spacing along a row
    lps[:3, 1] = along_column * row_spacing  # next row: one row spacing down a column
    lps[:3, 2] = _slice_step(positions, normal, slices[0].header, where)
    lps[:3, 3] = positions[0]
    description = str(slices[0].header.get("SeriesDescription", ""))
    modality = str(slices[0].header.get("Modality", "")).strip().upper() or None
    return DicomSeries(
        folder, uid, description, tuple(slices), _LPS_TO_RAS @ lps, _voxel_dtype(slices),
        modality,
    )  # fmt: skip
