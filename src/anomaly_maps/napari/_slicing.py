"""Between the plane napari shows and the slices a model scores (no Qt here).

napari slices a scan along one of its file (voxel) axes. A model cuts the scan along an
anatomical axis after reorienting it to RAS+ (:func:`~anomaly_maps.preprocessing.to_slices`):
that axis is one file axis, possibly flipped, and is never resampled (only the in-plane
size is), so file plane ``i`` is exactly model slice ``i`` or ``n - 1 - i``. The
preview scores that one slice with the scoring inferer and puts its map back on the
file plane.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import nibabel as nib
import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..device import resolve_device
from ..errors import ParameterError
from ..preprocessing import _CANONICAL_AXIS, Axis, SliceGeometry, SliceStack, slices_to_volume
from ..scoring import SliceInferer, Slices, resolve_scorers
from ..scoring._ops import through_plane_radius
from ..scoring._registry import THROUGH_PLANE
from ..scoring.pipeline import is_multi_view, stacked_maps

__all__ = ["ModelSlicing", "SlicePreview", "score_model_slice"]


@dataclass(frozen=True)
class ModelSlicing:
    """Where a model's slices lie in the scan's file axes.

    Attributes
    ----------
    file_axis
        Voxel axis of the scan the model slices along.
    flipped
        True when model slice 0 is the last file plane (the file axis runs against RAS+).
    n_slices
        Planes along ``file_axis``.
    """

    file_axis: int
    flipped: bool
    n_slices: int

    @classmethod
    def from_geometry(cls, geometry: SliceGeometry) -> ModelSlicing:
        """Where the slices of a :class:`SliceStack` came from."""
        return cls._from_orientation(geometry.ornt, geometry.axis, geometry.shape)

    @classmethod
    def for_scan(cls, affine: np.ndarray, shape: tuple[int, ...], axis: Axis) -> ModelSlicing:
        """Where a model slicing along anatomical ``axis`` cuts a scan, without cutting it."""
        ornt = nib.orientations.io_orientation(affine)
        return cls._from_orientation(ornt, _CANONICAL_AXIS[axis], shape)

    @classmethod
    def _from_orientation(cls, ornt: np.ndarray, axis: int, shape: tuple[int, ...]):
        file_axis = int(np.flatnonzero(ornt[:, 0] == axis)[0])
        return cls(file_axis, bool(ornt[file_axis, 1] < 0), int(shape[file_axis]))

    def model_index(self, file_index: int) -> int:
        """Model slice showing file plane ``file_index`` (the map is symmetric)."""
        return self.n_slices - 1 - file_index if self.flipped else file_index

    file_index = model_index  # the flip is its own inverse

    def to_dict(self) -> dict[str, Any]:
        return {"file_axis": self.file_axis, "flipped": self.flipped, "n_slices": self.n_slices}


@dataclass(frozen=True)
class SlicePreview:
    """One scorer's result on one model slice, back on the scan's file plane."""

    scorer: str
    params: dict[str, Any]
    file_index: int
    plane: np.ndarray | None
    """Map on file plane ``file_index`` (the scan's shape without ``file_axis``), or None."""
    slice_score: float


def _plane_to_scan(plane: torch.Tensor, geometry: SliceGeometry, slicing: ModelSlicing):
    """(size, size) map of one model slice -> the matching 2D file plane of the scan."""
    shape = list(geometry.shape)
    shape[slicing.file_axis] = 1
    one = slices_to_volume(plane[None], replace(geometry, shape=tuple(shape)))
    return np.take(one, 0, axis=slicing.file_axis)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch ops in this block on one CPU thread, then restore the thread count.

    One slice is too little work per op to share: with every core busy (a GUI, other
    jobs), OpenMP's per-op barriers wait on descheduled threads. Measured on a loaded
    2-core machine: ``rec`` preview of a 64x64 VAE 0.37 s with 2 threads, 0.05 s with 1.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def score_model_slice(
    stack: SliceStack,
    checkpoint: Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    file_index: int,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
) -> list[SlicePreview]:
    """Score the model slice that shows file plane ``file_index`` of a preprocessed scan.

    ``stack`` is ``to_slices(volume, checkpoint.preprocessing)``, computed once per scan
    so that a preview costs one model call (on the neighbouring slices too, as far as a
    scorer's through-plane smoothing reaches: ``through``). The slice goes through the same
    :class:`~anomaly_maps.scoring.SliceInferer` as :func:`~anomaly_maps.scoring.score_volume`,
    each scorer with its own generator seeded from ``(seed, model slice index)``, and maps
    are masked alike (slice foreground, then the scan's foreground): a preview equals
    that slice of a full run with the same seed, whichever other scorers are ticked.
    It runs on one CPU thread (see :func:`_one_thread`).
    """
    slicing = ModelSlicing.from_geometry(stack.geometry)
    if not 0 <= file_index < slicing.n_slices:
        raise IndexError(f"plane {file_index} outside [0, {slicing.n_slices - 1}]")
    index = slicing.model_index(file_index)
    inferer = SliceInferer(resolve_device(device), batch_size=1, seed=seed)
    infos = resolve_scorers(scorers, checkpoint.kinds)
    multi_view = [info.name for info, p in infos if is_multi_view(p)]
    if multi_view:
        raise ParameterError(
            f"{multi_view[0]} views=orthogonal: its map combines slices along all three "
            "axes, which a one-slice preview does not have; press Score volume "
            "(or set views=single to preview)"
        )
    # a through-plane smoothed map needs the slices its kernel reaches
    reach = max(through_plane_radius(p.get(THROUGH_PLANE.name, 0.0)) for _, p in infos)
    window = np.arange(max(0, index - reach), min(len(stack.mask), index + reach + 1))
    window_mask = stack.mask[window]
    scored = window[window_mask.any(axis=(1, 2)) | (window == index)]
    fg_plane = np.take(stack.foreground, file_index, axis=slicing.file_axis)
    with _one_thread():
        results = inferer(
            checkpoint.models,
            Slices.from_stack(stack, scored),
            [(info.fn, params) for info, params in infos],
        )
    centre = np.flatnonzero(window == index)[0]
    out = []
    for (info, params), result in zip(infos, results, strict=True):
        plane = None
        if result.maps is not None:
            maps = stacked_maps(result.maps, scored - window[0], window_mask, params)
            plane = _plane_to_scan(maps[centre], stack.geometry, slicing) * fg_plane
        at = np.flatnonzero(scored == index)[0]
        score = float(result.scores[at]) if stack.mask[index].any() else 0.0
        out.append(SlicePreview(info.name, params, file_index, plane, score))
    return out
