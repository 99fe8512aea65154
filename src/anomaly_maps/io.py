"""Scans as :class:`Volume` objects: voxels, geometry and the header they came with.

:func:`load_volume` is the one way in: NIfTI (``.nii``, ``.nii.gz``), Analyze pairs
(``.hdr``/``.img``, through nibabel), DICOM series (a folder, or one file of the
series, through :mod:`anomaly_maps.dicom`) and 2D images (PNG, JPEG, TIFF: one-slice
volumes, colour as channels, through :mod:`anomaly_maps.images2d`). Every map the
project writes for a scan has the scan's shape and affine, voxel for voxel, and keeps its
qform/sform codes, so it overlays the scan in any viewer.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ._fileio import atomic_path, full_suffix
from .dicom import is_dicom_file, open_series
from .errors import VolumeError
from .images2d import TIFF_SUFFIXES, is_image2d, read_image2d, save_image2d

__all__ = [
    "ANALYZE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "Volume",
    "available_memory",
    "load_volume",
    "save_volume",
    "source_files",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ANALYZE_SUFFIXES = (".hdr", ".img")
_EXPECTED = (
    "a NIfTI file (.nii or .nii.gz), an Analyze pair (.hdr/.img), a DICOM series "
    "(a folder, or one of its files) or a 2D image (.png, .jpg, .tif)"
)
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan: voxel array, 4x4 affine (voxel index -> world mm, RAS+) and origin.

    Parameters
    ----------
    data
        Voxel values, shape (X, Y, Z) in the file's own axis order, or (X, Y, Z, C) for
        an image of C >= 2 channels (an RGB photograph: ``(rows, cols, 1, 3)``).
    affine
        4x4 matrix mapping voxel indices to world millimetres (RAS+).
    path
        File the volume was read from, if any.
    header
        The NIfTI header it was read with (one made for it when read from Analyze or
        DICOM); saving a derived map reuses it so that qform/sform codes and units survive.
    modality
        The DICOM Modality of the series it was read from (``MR``, ``CT``, ...); ``None``
        for formats that do not record one (NIfTI, Analyze, images).
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    header: nib.Nifti1Header | None = field(default=None, repr=False)
    modality: str | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        affine = np.asarray(self.affine, dtype=np.float64)
        where = f" of {self.path}" if self.path else ""
        if not (data.ndim == 3 or (data.ndim == 4 and data.shape[3] >= 2)):
            raise VolumeError(
                f"volume{where} has shape {data.shape}: expected 3 dimensions "
                "(and a trailing axis of >= 2 channels for colour images)"
            )
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise VolumeError(f"affine{where} must be a finite 4x4 matrix, got {affine.shape}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise VolumeError(f"affine{where} is singular: voxel axes must span 3D space")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The voxel grid (X, Y, Z), without the channel axis."""
        return self.data.shape[:3]  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        """Values per voxel: 1 for a scan, 3 for an RGB image."""
        return 1 if self.data.ndim == 3 else self.data.shape[3]

    @property
    def is_image2d(self) -> bool:
        """A one-slice grid, as a 2D image opens (see :mod:`anomaly_maps.images2d`)."""
        return self.shape[2] == 1

    @property
    def zooms(self) -> np.ndarray:
        """Voxel sizes in mm along the array axes, from the affine."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Anatomical direction each array axis points to, e.g. ``('R', 'A', 'S')``."""
        return nib.aff2axcodes(self.affine)

    def with_data(self, data: np.ndarray) -> Volume:
        """A volume with new voxels on the same grid (the grid's shape, one channel)."""
        data = np.asarray(data)
        if data.shape != self.shape:
            raise VolumeError(
                f"new data has shape {data.shape}: expected the volume's shape {self.shape}"
            )
        return Volume(data, self.affine, self.path, self.header, self.modality)


def _analyze_pair(path: Path) -> Path:
    """The other file of an Analyze ``.hdr``/``.img`` pair."""
    return path.with_suffix(".img" if full_suffix(path) == ".hdr" else ".hdr")


def _is_dicom(path: Path) -> bool:
    """A DICOM series: a folder, or a file that is neither NIfTI nor Analyze but DICOM."""
    known = full_suffix(path) in NIFTI_SUFFIXES + ANALYZE_SUFFIXES
    return path.is_dir() or (not known and is_dicom_file(path))


def source_files(path: str | os.PathLike) -> list[Path]:
    """Every file :func:`load_volume` reads for ``path`` (to tell when a scan changed):
    the file, both files of an Analyze pair, or the files of a DICOM series' folder (all
    below a folder; beside a file of the series)."""
    path = Path(path)
    if is_image2d(path):
        return [path]
    if _is_dicom(path):
        folder = path if path.is_dir() else path.parent
        found = folder.rglob("*") if path.is_dir() else folder.iterdir()
        return sorted(p for p in found if p.is_file())
    if full_suffix(path) in ANALYZE_SUFFIXES:
        return [path, _analyze_pair(path)]
    return [path]


def _check_file(path: Path) -> None:
    """Staged checks before nibabel: not empty, a NIfTI or Analyze name, matching bytes."""
    if path.stat().st_size == 0:
        raise VolumeError(f"{path}: file is empty, expected {_EXPECTED}")
    suffix = full_suffix(path)
    if suffix in ANALYZE_SUFFIXES:
        pair = _analyze_pair(path)
        if not (pair.exists() or pair.with_suffix(pair.suffix.upper()).exists()):
            raise VolumeError(f"{path}: Analyze file without its pair {pair.name}")
        return
    if suffix not in NIFTI_SUFFIXES:
        raise VolumeError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}, expected {_EXPECTED}"
        )
    with path.open("rb") as f:
        magic = f.read(2)
    if (suffix == ".nii.gz") != (magic == _GZIP_MAGIC):
        kind = "gzip-compressed" if magic == _GZIP_MAGIC else "not gzip-compressed"
        raise VolumeError(f"{path}: content is {kind}, which does not match its {suffix} suffix")


def available_memory() -> int | None:
    """Bytes of memory a new array can take now, or ``None`` where it cannot be told.

    psutil (napari installs it) knows what the system can still hand out; without it the
    physical memory is the bound, which still refuses what can never fit.
    """
    try:
        import psutil
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no answer
            return None
    return int(psutil.virtual_memory().available)


def _size(n: float) -> str:
    """Bytes in the unit that gives 1 to 999 of them: ``"281 TB"``."""
    units = ("B", "kB", "MB", "GB", "TB")
    power = min(int(math.log10(max(n, 1)) // 3), len(units) - 1)
    return f"{n / 1000**power:.3g} {units[power]}"


def _check_fits_memory(
    shape: tuple[int, ...], dtype: np.dtype, path: Path, source: str = "header"
) -> None:
    """Refuse, from the header (or DICOM tags) alone, a volume too large for memory."""
    shape = tuple(int(n) for n in shape)
    needed = math.prod(shape) * np.dtype(dtype).itemsize
    available = available_memory()
    if available is not None and needed > available:
        raise VolumeError(
            f"{path}: {source} declares a {'x'.join(map(str, shape))} {dtype} volume "
            f"({_size(needed)}) but only {_size(available)} of memory is available; "
            "expected a scan that fits in memory (is the header corrupt?)"
        )


def _read_array(img: nib.spatialimages.SpatialImage, path: Path) -> np.ndarray:
    try:
        return np.asarray(img.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile, ValueError, OSError) as err:
        raise VolumeError(
            f"{path}: voxel data is truncated or corrupt ({err}); "
            "expected as many voxels as the header declares"
        ) from err


def _to_3d(data: np.ndarray, path: Path, volume_index: int | None) -> np.ndarray:
    """Reduce a 4D series to one volume; refuse anything that is not a 3D scan."""
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4:
        n = data.shape[3]
        if volume_index is None:
            if n > 1:
                warnings.warn(
                    f"{path}: 4D series of {n} volumes; using volume 0 "
                    "(pass volume_index=i, CLI --volume-index i, to choose another)",
                    stacklevel=3,
                )
            volume_index = 0
        if not 0 <= volume_index < n:
            raise VolumeError(f"{path}: volume_index={volume_index} out of range [0, {n - 1}]")
        data = data[..., volume_index]
    elif volume_index not in (None, 0):
        raise VolumeError(f"{path}: volume_index={volume_index} given for a 3D volume")
    if data.ndim != 3:
        raise VolumeError(
            f"{path}: image has {data.ndim} dimension(s) {data.shape}: expected a 3D volume "
            "(or a 4D series to pick one volume from)"
        )
    return data


def _check_values(data: np.ndarray, path: Path) -> None:
    if data.size == 0:
        raise VolumeError(f"{path}: image is empty (shape {data.shape}), expected voxels")
    if not (data.dtype == bool or np.issubdtype(data.dtype, np.number)) or np.iscomplexobj(data):
        raise VolumeError(
            f"{path}: voxel type {data.dtype} is not supported, expected real scalar voxels "
            "(RGB or complex images are not scans this tool can score)"
        )
    if np.issubdtype(data.dtype, np.floating):
        bad = np.count_nonzero(~np.isfinite(data))
        if bad:
            raise VolumeError(
                f"{path}: {bad} voxel(s) are NaN or infinite, expected finite intensities; "
                "replace them (e.g. with 0) before scoring"
            )


def load_volume(
    path: str | os.PathLike, *, volume_index: int | None = None, series: str | None = None
) -> Volume:
    """Read a scan with its geometry: NIfTI, an Analyze pair, a DICOM series or a 2D image.

    Parameters
    ----------
    path
        A ``.nii``/``.nii.gz`` file, either file of an Analyze ``.hdr``/``.img`` pair, a
        folder holding a DICOM series, one file of a DICOM series (its folder is read),
        or a ``.png``/``.jpg``/``.tif`` image (a ``(rows, cols, 1[, C])`` volume, see
        :mod:`anomaly_maps.images2d`).
    volume_index
        For a 4D series, which volume to use; by default the first, with a warning.
    series
        SeriesInstanceUID of the DICOM series to read from a folder holding several;
        by default the one with the most slices.

    Returns
    -------
    Volume
        Voxels in the file's dtype (scaled to float if the header sets a slope),
        the best affine the header holds (sform, else qform; for DICOM, built from the
        slices' positions and orientation), and a NIfTI header.

    Raises
    ------
    VolumeError
        Missing, empty or unsupported file, a header declaring more voxels than fit in
        the available memory (refused before reading them), truncated data, not 3D,
        empty array, NaN/Inf voxels, or a DICOM folder whose series cannot form one
        grid (see :func:`anomaly_maps.dicom.open_series`); the message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file")
    if series is not None and not _is_dicom(path):
        raise VolumeError(f"{path}: series {series} given, but only a DICOM series has one")
    modality = None
    if is_image2d(path):
        if volume_index not in (None, 0):
            raise VolumeError(f"{path}: volume_index={volume_index} given for a 2D image")
        data, affine, header = read_image2d(path)
    elif _is_dicom(path):
        data, affine, header, modality = _read_dicom(path, series)
        data = _to_3d(data, path, volume_index)
    else:
        _check_file(path)
        data, affine, header = _read_nibabel(path)
        data = _to_3d(data, path, volume_index)
    _check_values(data, path)
    return Volume(data, affine, path, header, modality)


def _read_nibabel(path: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """NIfTI (also as a .hdr/.img pair) keeps its header; Analyze gets a NIfTI one."""
    try:
        img = nib.load(path)
    except (ImageFileError, nib.spatialimages.HeaderDataError, EOFError, OSError) as err:
        kind = "Analyze" if full_suffix(path) in ANALYZE_SUFFIXES else "NIfTI"
        raise VolumeError(f"{path}: not a readable {kind} image ({err})") from err
    if not isinstance(img, nib.AnalyzeImage):  # NIfTI-1/2 images and pairs derive from it
        raise VolumeError(f"{path}: is a {type(img).__name__}, expected {_EXPECTED}")
    _check_fits_memory(img.header.get_data_shape(), img.header.get_data_dtype(), path)
    data = _read_array(img, path)
    if isinstance(img, nib.Nifti1Pair):  # NIfTI-1/2, single file or pair
        return data, img.affine, img.header.copy()
    return data, img.affine, nib.Nifti1Image.from_image(img).header


def _read_dicom(
    path: Path, series: str | None
) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header, str | None]:
    """The series' voxels once its tags show they fit in memory, its affine, a header
    with scanner-coordinate codes, and its Modality."""
    found = open_series(path, series)
    _check_fits_memory(found.shape, found.dtype, path, source="DICOM series")
    data = found.read()
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header.set_qform(found.affine, code=1)
    header.set_sform(found.affine, code=1)
    header.set_xyzt_units("mm")
    header["descrip"] = f"DICOM series {found.description or found.uid}"[:79]
    return data, found.affine, header, found.modality


def _disk_dtype(data: np.ndarray) -> np.ndarray:
    """Voxels in a type every NIfTI reader handles: bool -> uint8, float64 -> float32."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype == np.float64 or data.dtype == np.float16:
        return data.astype(np.float32)
    if data.dtype == np.int64 and data.size and np.abs(data).max() < 2**31:
        return data.astype(np.int32)
    return data


def save_volume(volume: Volume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a volume to ``.nii`` or ``.nii.gz``, keeping its geometry, or a map of a 2D
    image to ``.tif``/``.tiff`` (:func:`~anomaly_maps.images2d.save_image2d`).

    The shape, affine, qform/sform codes and voxel sizes of ``volume`` (and of the
    header it carries from its source scan) are kept. The file is written to a
    temporary name and renamed, so nothing half-written is left behind.

    Raises
    ------
    VolumeError
        Unsupported suffix, a TIFF for more than one slice, or ``path`` exists and
        ``overwrite`` is False.
    """
    path = Path(path)
    if full_suffix(path) in TIFF_SUFFIXES:
        return save_image2d(volume.data, path, overwrite=overwrite)
    if full_suffix(path) not in NIFTI_SUFFIXES:
        raise VolumeError(
            f"{path}: cannot save as {full_suffix(path) or '(no suffix)'!r}, "
            f"expected a name ending in {' or '.join((*NIFTI_SUFFIXES, *TIFF_SUFFIXES))}"
        )
    data = _disk_dtype(volume.data)
    header = volume.header.copy() if volume.header is not None else None
    image_cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    img = image_cls(data, volume.affine, header=header)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    if header is None:  # no source codes to keep: declare the affine as scanner-aligned
        img.set_qform(volume.affine, code=1)
        img.set_sform(volume.affine, code=1)
    with atomic_path(path, overwrite=overwrite, error=VolumeError) as tmp:
        nib.save(img, tmp)
    return path
