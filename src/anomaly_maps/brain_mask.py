"""Brain extraction for head scans scored with models trained on skull-stripped brains.

A model trained on brain-masked slices has never seen skull or scalp, so a head scan
"lights up its skull". :func:`brain_mask` finds the brain with the estimates FSL's BET
starts from (Smith 2002, Hum. Brain Mapp. 17:143, section 2.2): the robust range
``t2``/``t98`` and ``t = t2 + 0.1 (t98 - t2)``, the centre of gravity of the head, its
radius from the volume above ``t``, and the median intensity ``tm`` inside it. BET's
surface then stops where the intensity falls below ``t2 + bt (Imax - t2)`` with the
fractional threshold ``bt = 0.5`` and ``Imax <= tm``; here that threshold is applied
to the whole scan, which drops CSF and skull (dark in T1) and with them most contacts
between brain and scalp. An erosion cuts the bridges left (optic nerves, vessels,
partial volume); the component holding most of BET's initial sphere (half the head
radius around the centre of gravity) is kept, grown back inside the tissue, closed,
holes filled. Morphology runs on distance transforms in mm, so it follows the voxel
size, on the head's bounding box only, for speed. :func:`apply_brain_mask` sets
everything outside to the scan's background value, so the model's foreground (and
every map) excludes it.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .errors import VolumeError
from .io import Volume, load_volume
from .preprocessing import fill_holes, foreground_mask

__all__ = [
    "BET_FRACTIONAL_THRESHOLD",
    "HEAD_OUTSIDE_FRACTION",
    "MIN_BRAIN_ML",
    "apply_brain_mask",
    "brain_mask",
    "head_fraction",
    "load_brain_mask",
    "looks_like_head",
    "prepare_scan",
]

#: A scan is a head when more than this share of its foreground lies outside the
#: extracted brain grown by ``_HEAD_MARGIN_MM`` (skull-stripped brains: < 0.01,
#: synthetic heads: ~0.25, ~0.45 with a 10 mm scalp, Colin27 with skull: ~0.43).
HEAD_OUTSIDE_FRACTION = 0.08
_HEAD_MARGIN_MM = 6.0
#: An extracted brain smaller than this (ml) means the scan is no adult head (a phantom,
#: a crop, a part of a brain): it is scored as is.
MIN_BRAIN_ML = 400.0
#: BET's default fractional intensity threshold ``bt`` (Smith 2002; FSL ``bet -f 0.5``).
BET_FRACTIONAL_THRESHOLD = 0.5
#: Erosion radius: cuts tissue bridges up to twice as thick between brain and scalp.
_ERODE_MM = 6.0
_CLOSE_MM = 5.0


class _BetEstimates(NamedTuple):
    """BET's global estimates of a head scan (Smith 2002, section 2.2)."""

    t2: float  # 2nd percentile of the scan
    tm: float  # median inside the head sphere
    centre: np.ndarray  # centre of gravity, voxel coordinates
    radius: float  # head radius in mm, from the volume above t


def _dilate(mask: np.ndarray, radius: float, zooms: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask, sampling=zooms) <= radius


def _erode(mask: np.ndarray, radius: float, zooms: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=zooms) > radius


def _squared_distance(shape: tuple[int, ...], centre: np.ndarray, zooms: np.ndarray):
    """Squared distance in mm of every voxel from ``centre`` (voxel coordinates)."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) * z) ** 2 for g, c, z in zip(grid, centre, zooms, strict=True))


def _bet_estimates(data: np.ndarray, zooms: np.ndarray) -> _BetEstimates:
    """``t2``, ``tm``, centre of gravity and head radius of a scan, as BET estimates them.

    Percentiles run over the whole grid as in BET: its background sets ``t2``, so the
    brain threshold is about half the brain's median, with or without skull.
    """
    t2, t98 = np.percentile(data, [2, 98])
    above = data > t2 + 0.1 * (t98 - t2)
    weights = np.clip(data, t2, t98) * above
    if not weights.any():  # a scan mostly of one value, zero: the voxels above t
        weights = above.astype(np.float32)
    grid = np.ogrid[tuple(slice(0, s) for s in data.shape)]
    centre = np.array([float((g * weights).sum()) for g in grid]) / float(weights.sum())
    radius = float(np.cbrt(3 * above.sum() * np.prod(zooms) / (4 * np.pi)))
    inside = _squared_distance(data.shape, centre, zooms) <= radius**2
    return _BetEstimates(float(t2), float(np.median(data[inside])), centre, radius)


def _core_component(mask: np.ndarray, centre: np.ndarray, radius: float, zooms: np.ndarray):
    """The connected component of ``mask`` with most voxels within ``radius`` of ``centre``."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    near = _squared_distance(mask.shape, centre, zooms) <= radius**2
    counts = np.bincount(labels[near & mask], minlength=count + 1)
    counts[0] = 0
    if counts.max() == 0:  # nothing near the centre: fall back to the largest component
        counts = np.bincount(labels.ravel(), minlength=count + 1)
        counts[0] = 0
    return labels == int(counts.argmax())


def _bounding_box(mask: np.ndarray, margin: np.ndarray) -> tuple[slice, ...]:
    """Slices of ``mask``'s bounding box grown by ``margin`` voxels per axis."""
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _extract(volume: Volume) -> np.ndarray:
    """The brain mask, empty when the scan has no foreground or is too small for one."""
    data = np.asarray(volume.data, dtype=np.float32)
    zooms = np.asarray(volume.zooms, dtype=float)
    head = foreground_mask(data)
    brain = np.zeros(data.shape, dtype=bool)
    if not head.any():
        return brain
    bet = _bet_estimates(data, zooms)
    box = _bounding_box(head, np.ceil((_ERODE_MM + _CLOSE_MM + 2) / zooms).astype(int))
    tissue = data[box] > bet.t2 + BET_FRACTIONAL_THRESHOLD * (bet.tm - bet.t2)
    start = bet.centre - [b.start for b in box], bet.radius / 2  # BET's initial sphere
    core = _core_component(_erode(tissue, _ERODE_MM, zooms), *start, zooms)
    grown = _core_component(_dilate(core, _ERODE_MM, zooms) & tissue, *start, zooms)
    closed = _erode(_dilate(grown, _CLOSE_MM, zooms), _CLOSE_MM, zooms)
    brain[box] = fill_holes(closed)
    return brain


def brain_mask(volume: Volume) -> np.ndarray:
    """Boolean brain mask of a head scan (T1-like contrast), on the scan's grid."""
    brain = _extract(volume)
    if not brain.any():
        raise VolumeError(
            f"{volume.path or 'volume'}: no brain found (no foreground, or none thicker "
            f"than {2 * _ERODE_MM:g} mm); pass --brain-mask none or a mask file"
        )
    return brain


def head_fraction(volume: Volume, mask: np.ndarray | None = None) -> float:
    """Share of the scan's foreground outside the brain ``mask`` grown by a margin.

    Near 0 for a skull-stripped brain, large for a head (skull, scalp, neck); compared
    with :data:`HEAD_OUTSIDE_FRACTION` to decide whether to extract a brain.
    """
    mask = brain_mask(volume) if mask is None else mask
    grown = _dilate(mask, _HEAD_MARGIN_MM, np.asarray(volume.zooms, dtype=float))
    fg = foreground_mask(volume.data)
    return float((fg & ~grown).sum() / max(int(fg.sum()), 1))


def looks_like_head(volume: Volume) -> tuple[bool, float]:
    """Whether a scan is a head (skull and scalp on), and its :func:`head_fraction`.

    Decided on a copy strided to voxels of about 2 mm (a few seconds): a head is a scan
    whose extracted brain holds at least :data:`MIN_BRAIN_ML` and with more than
    :data:`HEAD_OUTSIDE_FRACTION` of its foreground outside that brain (grown by 6 mm).
    """
    step = np.maximum(1, np.round(2.0 / np.asarray(volume.zooms))).astype(int)
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] * step
    coarse = Volume(np.asarray(volume.data)[:: step[0], :: step[1], :: step[2]], affine)
    mask = _extract(coarse)
    if mask.sum() * abs(np.linalg.det(affine[:3, :3])) < MIN_BRAIN_ML * 1000:
        return False, 0.0
    fraction = head_fraction(coarse, mask)
    return fraction > HEAD_OUTSIDE_FRACTION, fraction


def prepare_scan(volume: Volume, choice: str, model_on_brains: bool) -> tuple[Volume, str | None]:
    """The scan to score under ``--brain-mask choice`` (``auto``, ``none`` or a mask file),
    and a line to tell the user when a brain mask was applied.

    ``auto`` extracts the brain only for a model trained on skull-stripped brains and a
    scan that :func:`looks_like_head`; a file is checked by :func:`load_brain_mask`.
    """
    name = volume.path or "volume"
    if choice == "none":
        return volume, None
    if choice != "auto":
        mask = load_brain_mask(choice, volume)
        return apply_brain_mask(volume, mask), f"{name}: scoring inside the brain mask {choice}"
    if not model_on_brains:
        return volume, None
    head, fraction = looks_like_head(volume)
    if not head:
        return volume, None
    note = (
        f"{name}: looks like a head ({fraction:.0%} of the foreground outside the brain) "
        "and the model learnt skull-stripped brains: extracted the brain first "
        "(--brain-mask none scores it as is)"
    )
    return apply_brain_mask(volume, brain_mask(volume)), note


def apply_brain_mask(volume: Volume, mask: np.ndarray) -> Volume:
    """The scan with every voxel outside ``mask`` set to its background (minimum) value."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.shape:
        raise VolumeError(f"brain mask has shape {mask.shape}: expected the scan's {volume.shape}")
    data = np.asarray(volume.data)
    return volume.with_data(np.where(mask, data, data.min()).astype(data.dtype))


def load_brain_mask(path: str | os.PathLike, volume: Volume) -> np.ndarray:
    """A user's mask file, checked to lie on ``volume``'s grid and to overlap its foreground."""
    mask_vol = load_volume(path)
    same_affine = np.allclose(mask_vol.affine, volume.affine, atol=1e-3)
    if mask_vol.shape != volume.shape or not same_affine:
        raise VolumeError(
            f"--brain-mask {path}: shape {mask_vol.shape} / affine do not match the scan "
            f"{volume.path or ''} (shape {volume.shape}); expected a mask on the scan's grid"
        )
    mask = np.asarray(mask_vol.data) > 0
    if not (mask & foreground_mask(volume.data)).any():
        raise VolumeError(f"--brain-mask {path}: the mask does not overlap the scan's foreground")
    return mask
