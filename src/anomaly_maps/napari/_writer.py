"""napari writers: Image and Labels layers back to NIfTI with the source geometry.

napari's save dialog has already asked before replacing a file, so these writers
replace an existing file; the write itself is atomic (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import Volume, save_volume
from ._geometry import layer_affine

__all__ = ["write_image", "write_labels"]


def _write(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    data = np.asarray(data)
    header = (meta.get("metadata") or {}).get("nifti_header")
    volume = Volume(data, layer_affine(meta, data.shape), header=header)
    return [str(save_volume(volume, Path(path), overwrite=True))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an Image layer (e.g. a scan or an anomaly map) as ``.nii``/``.nii.gz``."""
    return _write(path, data, meta)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a Labels layer (e.g. a thresholded anomaly mask) as ``.nii``/``.nii.gz``."""
    return _write(path, data, meta)
