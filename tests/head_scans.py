"""A small synthetic head (2 mm voxels) around the bundled brain, built once per session."""

from __future__ import annotations

from functools import cache

import numpy as np

from anomaly_maps.io import Volume, load_volume
from anomaly_maps.samples import sample_path
from anomaly_maps.synthetic_heads import synthetic_head


@cache
def small_brain() -> Volume:
    """The bundled MNI152 brain at 2 mm (every second voxel): small enough to test on."""
    full = load_volume(sample_path("brain"))
    affine = full.affine.copy()
    affine[:3, :3] *= 2
    return Volume(np.ascontiguousarray(full.data[::2, ::2, ::2]), affine)


@cache
def small_head() -> tuple[Volume, np.ndarray]:
    """A synthetic head around :func:`small_brain` and its true brain mask."""
    return synthetic_head(small_brain(), seed=3)
