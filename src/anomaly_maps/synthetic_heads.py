"""Synthetic head scans with a known brain mask, for testing and measuring brain extraction.

No head template ships offline (the bundled MNI152 T1 is already brain-masked), so a
head is built around a brain: CSF (dark), skull (dark), fat (bright) and scalp shells
of random, smoothly varying thickness from distance transforms of the brain mask, then a
bias field, noise and a random affine deformation of image and reference mask together.
Intensities are T1-like, relative to the brain's median. Real heads are harder in two
ways these options mimic: a scalp with temporal muscle up to about 12 mm thick
(``scalp_mm``), and tissue that bridges CSF and skull (``bridge_mm``: a column of
grey-matter-like intensity from the brain to the scalp, as vessels, dura or partial
volume make) -- together they joined Colin27's brain to its scalp in the first,
threshold-and-erode extractor.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .io import Volume
from .preprocessing import foreground_mask

__all__ = ["synthetic_head"]

# (name, relative intensity, thickness range in mm), from the brain outwards.
_SHELLS = (
    ("csf", 0.12, (1.5, 3.5)),
    ("skull", 0.04, (4.0, 8.0)),
    ("fat", 1.25, (1.5, 3.0)),
    ("scalp", 0.75, (2.0, 4.0)),
)
_PAD_MM = 26.0
_BRIDGE_LEVEL = 0.8  # grey matter relative to the brain's median in T1


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A smooth random field in [-1, 1] (coarse noise, upsampled and smoothed)."""
    coarse = rng.standard_normal(tuple(max(2, s // 16) for s in shape))
    factors = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    field = ndimage.zoom(coarse, factors, order=1)
    field = ndimage.gaussian_filter(field, sigma)
    return field / max(float(np.abs(field).max()), 1e-6)


def _deform(data: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """The same random small affine (rotation up to 8 degrees, scale +-6 %) on both."""
    angles = np.deg2rad(rng.uniform(-8, 8, 3))
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        rot = np.eye(3)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        matrix = matrix @ rot
    matrix = matrix @ np.diag(rng.uniform(0.94, 1.06, 3))
    centre = (np.array(data.shape) - 1) / 2
    offset = centre - matrix @ centre
    warped = ndimage.affine_transform(data, matrix, offset, order=1, cval=0.0)
    warped_mask = ndimage.affine_transform(mask.astype(np.float32), matrix, offset, order=1)
    return warped, warped_mask > 0.5


def _bridge(mask: np.ndarray, zooms: np.ndarray, radius: float) -> np.ndarray:
    """A column of ``radius`` mm along the last axis, up from the centre of ``mask``."""
    centre = np.array(ndimage.center_of_mass(mask))
    grid = np.ogrid[tuple(slice(0, s) for s in mask.shape)]
    pairs = zip(grid[:2], centre[:2], zooms[:2], strict=True)
    across = sum(((g - c) * z) ** 2 for g, c, z in pairs)
    return (across <= radius**2) & (grid[2] > centre[2]) & ~mask


def synthetic_head(
    brain: Volume,
    seed: int = 0,
    *,
    scalp_mm: tuple[float, float] = _SHELLS[-1][2],
    bridge_mm: float = 0.0,
) -> tuple[Volume, np.ndarray]:
    """A head scan built around a skull-stripped ``brain``, and its true brain mask.

    ``scalp_mm`` is the range of the scalp's mean thickness; ``bridge_mm`` > 0 adds a
    tissue bridge of that radius across CSF, skull and fat at the top of the head. The
    grid is padded so the shells fit; the affine keeps world coordinates.
    """
    rng = np.random.default_rng(seed)
    shells = (*_SHELLS[:-1], (_SHELLS[-1][0], _SHELLS[-1][1], scalp_mm))
    zooms = np.asarray(brain.zooms, dtype=float)
    reach = 1.3 * sum(high for _name, _level, (_low, high) in shells)
    pad = np.ceil(max(_PAD_MM, reach) / zooms).astype(int)
    data = np.pad(np.asarray(brain.data, np.float32), [(p, p) for p in pad])
    mask = np.pad(foreground_mask(brain.data), [(p, p) for p in pad])
    level = float(np.median(data[mask]))
    distance = ndimage.distance_transform_edt(~mask, sampling=zooms)
    head = data.copy()
    outer = 0.0
    for name, intensity, (low, high) in shells:
        mean = rng.uniform(low, high)
        thickness = mean * (1 + 0.3 * _smooth_field(data.shape, rng, 4.0))
        shell = ~mask & (distance > outer) & (distance <= outer + thickness)
        head[shell] = intensity * level
        if name == "scalp" and bridge_mm > 0:
            bridge = _bridge(mask, zooms, bridge_mm) & (distance <= outer + 1.0)
            head[bridge] = _BRIDGE_LEVEL * level
        outer = outer + thickness
    bias = np.exp(0.2 * _smooth_field(data.shape, rng, 8.0))
    head = head * bias
    head = head + rng.normal(0, 0.03 * level, head.shape) * (head > 0)
    head, mask = _deform(np.clip(head, 0, None).astype(np.float32), mask, rng)
    affine = brain.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ pad
    return Volume(head.astype(np.float32), affine), mask
