"""2D images (PNG, JPEG, TIFF) as one-slice volumes, and maps written back as TIFF.

Seed 004 (Lu & Xu, skin lesions) scores 128x128 RGB photographs. Here a 2D image becomes
a :class:`~anomaly_maps.io.Volume` of shape ``(rows, cols, 1)`` (``(rows, cols, 1, C)``
with colour channels last), whose affine puts the image in an axial plane: columns run
to the right (+R), rows downwards (-A), ``spacing`` mm apart. Axial slicing
(:func:`~anomaly_maps.preprocessing.to_slices`) then yields the image itself, upright,
and a map on that grid is the image's size, so :func:`save_image2d` writes it pixel for
pixel. Pillow reads and writes (it supports 8/16-bit and float TIFF and the dpi tags).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ._fileio import atomic_path, full_suffix
from .errors import VolumeError

__all__ = [
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "image_affine",
    "is_image2d",
    "read_image2d",
    "save_image2d",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
_GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I", "F")


def is_image2d(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a 2D image by its suffix (case-insensitive)."""
    return full_suffix(path).lower() in IMAGE_SUFFIXES


def image_affine(spacing: tuple[float, float]) -> np.ndarray:
    """4x4 affine of a ``(rows, cols, 1)`` image: (row, col, 0) -> (col * sx, -row * sy, 0)
    mm, for ``spacing = (sy, sx)`` (row and column spacing)."""
    sy, sx = spacing
    return np.array([[0, sx, 0, 0], [-sy, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)


def _spacing(info: dict) -> tuple[float, float]:
    """Pixel spacing in mm from the file's dots per inch; 1 mm where it records none."""
    dpi = info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return 1.0, 1.0
    return (25.4 / y, 25.4 / x) if x > 0 and y > 0 else (1.0, 1.0)


def read_image2d(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Voxels ``(rows, cols, 1)`` (grey) or ``(rows, cols, 1, 3)`` (colour; alpha and
    palettes dropped), the :func:`image_affine` and a NIfTI header for derived maps.

    Raises
    ------
    VolumeError
        The file is not a readable image, or holds several frames (a TIFF stack).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            if getattr(img, "n_frames", 1) > 1:
                raise VolumeError(
                    f"{path}: holds {img.n_frames} frames, expected one 2D image "
                    "(save a 3D stack as NIfTI)"
                )
            spacing = _spacing(img.info)
            if img.mode in _GREY_MODES:
                pixels = np.asarray(img)
            elif img.mode == "LA":
                pixels = np.asarray(img.getchannel("L"))
            else:  # RGB, RGBA, P, CMYK, YCbCr, ...
                pixels = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise VolumeError(f"{path}: not a readable PNG, JPEG or TIFF image ({err})") from err
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    data = pixels[:, :, None]  # (rows, cols, 1[, C])
    if pixels.ndim == 3:
        data = pixels[:, :, None, :]
    affine = image_affine(spacing)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape[:3])
    header.set_data_dtype(np.float32)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm")
    header["descrip"] = f"2D image {path.name}"[:79]
    return np.ascontiguousarray(data), affine, header


def _tiff_pixels(data: np.ndarray) -> np.ndarray:
    """Pixels in a type Pillow writes to TIFF: bool -> uint8, other floats -> float32,
    wide integers -> int32."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32)
    if data.dtype in (np.uint8, np.uint16, np.int32):
        return data
    return data.astype(np.int32)


def save_image2d(data: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a one-slice map ``(rows, cols, 1)`` as a TIFF of the image's size, atomically.

    Raises
    ------
    VolumeError
        ``data`` is not one slice of one channel, or ``path`` exists and ``overwrite`` is
        False.
    """
    from PIL import Image

    path = Path(path)
    if data.ndim != 3 or data.shape[2] != 1:
        raise VolumeError(
            f"{path}: cannot save a volume of shape {data.shape} as TIFF: expected one "
            "slice (rows, cols, 1), a map of a 2D image; save volumes as .nii.gz"
        )
    image = Image.fromarray(np.ascontiguousarray(_tiff_pixels(data[:, :, 0])))
    with atomic_path(path, overwrite=overwrite, error=VolumeError) as tmp:
        image.save(tmp, format="TIFF")
    return path
