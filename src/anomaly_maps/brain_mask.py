"""Brain extraction for head scans scored with models trained on skull-stripped brains.

A model trained on brain-masked slices has never seen skull or scalp, so a head scan
"lights up its skull". :func:`brain_mask` finds the brain the way FSL's BET starts
(Smith 2002, Hum. Brain Mapp. 17:143): a robust intensity threshold
``t2 + 0.1 (t98 - t2)`` separates brain and scalp from the dark CSF and skull between
them; an erosion cuts the thin bridges left across that dark layer, the component
holding most of the brain-sized core is kept, grown back and closed, holes filled.
Morphology runs on distance transforms in mm, so it follows the voxel size.
:func:`apply_brain_mask` sets everything outside to the scan's background value, so
the model's foreground (and every map) excludes it.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from .errors import VolumeError
from .io import Volume, load_volume
from .preprocessing import foreground_mask

__all__ = [
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
#: extracted brain grown by ``_HEAD_MARGIN_MM`` (skull-stripped template: 0, synthetic
#: heads: ~0.2).
HEAD_OUTSIDE_FRACTION = 0.08
_HEAD_MARGIN_MM = 6.0
#: An extracted brain smaller than this (ml) means the scan is no adult head (a phantom,
#: a crop, a part of a brain): it is scored as is.
MIN_BRAIN_ML = 400.0
_ERODE_MM = 4.0
_CLOSE_MM = 5.0


def _dilate(mask: np.ndarray, radius: float, zooms: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask, sampling=zooms) <= radius


def _erode(mask: np.ndarray, radius: float, zooms: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=zooms) > radius


def _core_component(mask: np.ndarray, zooms: np.ndarray) -> np.ndarray:
    """The connected component with most voxels near the centre of mass of ``mask``."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    centre = np.array(ndimage.center_of_mass(mask))
    grid = np.ogrid[tuple(slice(0, s) for s in mask.shape)]
    radius = 40.0  # mm: well inside any adult brain
    squared = sum(((g - c) * z) ** 2 for g, c, z in zip(grid, centre, zooms, strict=True))
    near = squared <= radius**2
    counts = np.bincount(labels[near & mask], minlength=count + 1)
    counts[0] = 0
    if counts.max() == 0:  # nothing near the centre: fall back to the largest component
        counts = np.bincount(labels.ravel(), minlength=count + 1)
        counts[0] = 0
    return labels == int(counts.argmax())


def _extract(volume: Volume) -> np.ndarray:
    """The brain mask, empty when the scan has no foreground or is too small for one."""
    data = np.asarray(volume.data, dtype=np.float32)
    zooms = np.asarray(volume.zooms, dtype=float)
    head = foreground_mask(data)
    if not head.any():
        return head
    t2, t98 = np.percentile(data[head], [2, 98])
    tissue = data > t2 + 0.1 * (t98 - t2)
    core = _core_component(_erode(tissue, _ERODE_MM, zooms), zooms)
    brain = _dilate(core, _ERODE_MM, zooms) & tissue
    brain = _core_component(brain, zooms)
    brain = _erode(_dilate(brain, _CLOSE_MM, zooms), _CLOSE_MM, zooms)
    return ndimage.binary_fill_holes(brain)


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
