"""Score a whole volume: preprocess as the model was trained, score its foreground slices
with the :class:`~.inferer.SliceInferer`, mask the background, and put the maps back on
the scan's voxel grid.

This is the one function the CLI (``anomaly-maps score``) and the napari widgets call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, get_args

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..device import resolve_device
from ..errors import ParameterError
from ..io import Volume
from ..preprocessing import (
    Axis,
    PreprocessingSpec,
    SliceStack,
    check_scan_fits,
    slices_to_volume,
    to_slices,
    to_view_slices,
)
from ..records import trained_modality
from ._ops import through_plane_blur
from ._registry import THROUGH_PLANE, VIEWS, resolve_scorers
from .inferer import SliceInferer, Slices, resolve_precision
from .members import (
    combine_members,
    ensemble_config,
    is_ensemble,
    member_checkpoints,
    member_progress,
)

__all__ = [
    "VOLUME_SCORES",
    "PreparedVolume",
    "VolumeScore",
    "check_model_takes",
    "combine_views",
    "is_multi_view",
    "model_in_channels",
    "prepare_volume",
    "score_volume",
    "stacked_maps",
    "view_axes",
    "volume_score_of",
]


@dataclass
class VolumeScore:
    """One scorer's result for one volume.

    Attributes
    ----------
    scorer, params
        Which scorer ran, with every parameter value (defaults filled in).
    map
        Anomaly map on the scan's voxel grid (float32, background 0), or ``None`` for
        slice-only scorers.
    slice_scores
        (N,) score of every slice along the model's slicing axis (0 for slices without
        foreground, which are not scored).
    volume_score
        One number for the volume, the ``aggregate`` of its slice scores or its map.
    aggregate
        How ``volume_score`` was made, one of :data:`VOLUME_SCORES`.
    foreground
        Boolean mask on the scan's grid of the voxels the model scored (the foreground
        its preprocessing found); the map is 0 elsewhere.
    scored
        (N,) bool: which slices had foreground and were scored.
    normalization
        How map and scores were normalised (:mod:`.postprocess`); ``"none"`` = raw.
    precision
        What the models ran in: ``"float32"`` or ``"bf16"`` (autocast).
    """

    scorer: str
    params: dict[str, Any]
    map: np.ndarray | None
    slice_scores: np.ndarray
    volume_score: float
    aggregate: str
    foreground: np.ndarray
    scored: np.ndarray
    normalization: str = "none"
    precision: str = "float32"


@dataclass(frozen=True)
class PreparedVolume:
    """A volume preprocessed for a model: its slice stack and the foreground slices to
    score. Built by :func:`prepare_volume` (in a reader process, for many scans) and
    passed to :func:`score_volume`, which then only runs the models."""

    stack: SliceStack
    slices: Slices
    preprocessing: PreprocessingSpec

    def pin_memory(self) -> PreparedVolume:
        """The slices in pinned host memory (called by a DataLoader with
        ``pin_memory=True``, for fast copies to a CUDA device)."""
        return replace(self, slices=self.slices.pin_memory())


def prepare_volume(volume: Volume, preprocessing: PreprocessingSpec) -> PreparedVolume:
    """Slice, normalise and resize ``volume`` as ``preprocessing`` says, and pick the
    slices with foreground: all of :func:`score_volume`'s work before the models."""
    return _prepared(to_slices(volume, preprocessing), preprocessing)


def _prepared(stack: SliceStack, preprocessing: PreprocessingSpec) -> PreparedVolume:
    """``stack`` with its slices that have foreground, ready to score."""
    scored = np.flatnonzero(stack.mask.any(axis=(1, 2)))
    return PreparedVolume(stack, Slices.from_stack(stack, scored), preprocessing)


#: Ways to turn a volume's scores into one number (the MOOD sample score; seed 002
#: sums slice-level NLL, seed 003's MOOD entries use map statistics).
VOLUME_SCORES: dict[str, str] = {
    "slice_mean": "mean slice score over the slices with foreground",
    "slice_max": "highest slice score",
    "map_mean": "mean of the map over the foreground voxels",
    "map_p99": "99th percentile of the map over the foreground voxels",
}


def check_volume_score(aggregate: str) -> None:
    """Raise ``ParameterError`` unless ``aggregate`` is one of :data:`VOLUME_SCORES`."""
    if aggregate not in VOLUME_SCORES:
        raise ParameterError(f"volume score {aggregate!r}: expected one of {list(VOLUME_SCORES)}")


def volume_score_of(
    aggregate: str, slice_scores: np.ndarray, volume_map: np.ndarray | None, foreground: np.ndarray
) -> float:
    """One number for a volume from its foreground slices' scores or its map.

    ``slice_scores`` are those of the scored slices only; map aggregates need a map.
    """
    check_volume_score(aggregate)
    if aggregate.startswith("map_"):
        if volume_map is None:
            raise ParameterError(
                f"volume score {aggregate!r} needs a map; this scorer only rates slices "
                "(use slice_mean or slice_max)"
            )
        values = volume_map[foreground]
        if values.size == 0:
            return 0.0
        return float(values.mean() if aggregate == "map_mean" else np.percentile(values, 99))
    if slice_scores.size == 0:
        return 0.0
    return float(slice_scores.mean() if aggregate == "slice_mean" else slice_scores.max())


def score_volume(
    volume: Volume,
    checkpoint: Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    *,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    reference: bool = False,
    volume_score: str = "slice_mean",
    precision: str = "float32",
    prepared: PreparedVolume | None = None,
) -> list[VolumeScore]:
    """Run scorers over every foreground slice of ``volume``.

    Parameters
    ----------
    volume
        The scan, in its own geometry.
    checkpoint
        Models and the preprocessing they were trained with.
    scorers
        ``(name, params)`` pairs; parameters are checked against each scorer's spec.
    device
        Where to score; default: where the checkpoint's models are.
    batch_size
        Slices per call, >= 1 (halved automatically on CUDA out-of-memory).
    seed
        Seeds each scorer's random draws (SmoothGrad noise, samples, restorations),
        slice by slice with the slice's index, so the maps do not depend on
        ``batch_size``; an int >= 0.
    progress
        Called as ``progress(done_slices, total_slices)`` after every batch.
    should_stop
        Polled after every batch; when it returns True, scoring stops there and
        :class:`~anomaly_maps.errors.Cancelled` is raised (a GUI's Cancel button).
    reference
        Run each scorer's naive per-slice, per-sample reference instead of its batched
        implementation (for ``anomaly-maps bench score``; same results, slower).
    volume_score
        How each volume score is made, one of :data:`VOLUME_SCORES`.
    precision
        ``float32``/``fp32`` (default, exact), ``bf16`` (bfloat16 autocast; refused on a device
        without it) or ``auto`` (bf16 on CUDA devices that have it when every scorer
        allows it, else fp32); see :func:`~.inferer.resolve_precision`. Recorded in
        each result.
    prepared
        ``prepare_volume(volume, checkpoint.preprocessing)``, when made beforehand
        (e.g. in a reader process): the same results, without preprocessing here.

    Returns
    -------
    list of VolumeScore
        One per scorer, in order.
    """
    check_volume_score(volume_score)  # before any work
    check_model_takes(volume, checkpoint)
    if prepared is not None and (
        prepared.preprocessing != checkpoint.preprocessing
        or prepared.stack.geometry.shape != tuple(volume.shape)
    ):
        raise ParameterError(
            "prepared: made from another volume or with other preprocessing; expected "
            "prepare_volume(volume, checkpoint.preprocessing)"
        )
    infos = resolve_scorers(scorers, checkpoint.kinds, reference=reference)
    if is_ensemble(checkpoint):
        return _score_members(
            volume, checkpoint, scorers, prepared=prepared, progress=progress,
            device=device, batch_size=batch_size, seed=seed, should_stop=should_stop,
            reference=reference, volume_score=volume_score, precision=precision,
        )  # fmt: skip
    spec = checkpoint.preprocessing
    if spec.images and any(is_multi_view(p) for _, p in infos):
        raise ParameterError(
            "views=orthogonal: a 2D image has one plane; expected views=single for it"
        )
    target = next(checkpoint.model.parameters()).device
    if device is not None:
        target = resolve_device(device)
    bf16_auto = all(info.bf16_auto for info, _ in infos)
    inferer = SliceInferer(
        target,
        batch_size=batch_size,
        seed=seed,
        should_stop=should_stop,
        precision=resolve_precision(precision, target, bf16_auto=bf16_auto),
    )

    # the model's own axis first (its slice scores are kept), then any other views; one
    # foreground and normalisation for every axis not prepared beforehand
    axes = list(dict.fromkeys(a for _, p in infos for a in view_axes(p, spec.axis)))
    to_cut = axes if prepared is None else axes[1:]
    stacks = to_view_slices(volume, spec, to_cut) if to_cut else {}
    views = {spec.axis: prepared} if prepared is not None else {}
    views.update({a: _prepared(stacks[a], replace(spec, axis=a)) for a in to_cut})
    primary, view_maps = _run_views(
        inferer, checkpoint.models, views, infos, reference=reference, progress=progress
    )

    stack, scored = views[spec.axis].stack, views[spec.axis].slices.indices
    n_slices = stack.images.shape[0]
    is_scored = np.zeros(n_slices, bool)
    is_scored[scored] = True
    out = []
    for (info, params), result, maps in zip(infos, primary, view_maps, strict=True):
        volume_map = combine_views(maps) * stack.foreground if maps else None
        slice_scores = np.zeros(n_slices, np.float32)
        slice_scores[scored] = result.scores
        out.append(
            VolumeScore(
                scorer=info.name,
                params=params,
                map=volume_map,
                slice_scores=slice_scores,
                volume_score=volume_score_of(
                    volume_score, result.scores, volume_map, stack.foreground
                ),
                aggregate=volume_score,
                foreground=stack.foreground,
                scored=is_scored,
                precision=inferer.precision,
            )
        )
    return out


def _score_members(
    volume: Volume,
    checkpoint: Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    *,
    prepared: PreparedVolume | None,
    progress: Callable[[int, int], None] | None,
    **options: Any,
) -> list[VolumeScore]:
    """:func:`score_volume` of each member of a restoration ensemble, combined
    (:mod:`.members`); ``prepared`` serves the member that reads slices of its size."""
    members = member_checkpoints(checkpoint)
    results = []
    for k, member in enumerate(members):
        own = prepared if member.preprocessing == checkpoint.preprocessing else None
        step = member_progress(progress, k, len(members))
        results.append(
            score_volume(volume, member, scorers, progress=step, prepared=own, **options)
        )
    return combine_members(results, ensemble_config(checkpoint), volume_score_of)


def stacked_maps(
    maps: torch.Tensor, rows: np.ndarray, mask: np.ndarray, params: dict[str, Any]
) -> torch.Tensor:
    """A scorer's maps of the scored slices at ``rows`` of a run of ``len(mask)`` slices,
    as that run's ``(N, H, W)`` stack (zeros elsewhere), smoothed across its slices as the
    scorer's ``through`` parameter says (``mask``: the slices' ``(N, H, W)`` foreground)."""
    stack = torch.zeros(len(mask), *maps.shape[1:])
    stack[torch.from_numpy(np.asarray(rows))] = maps
    sigma = params.get(THROUGH_PLANE.name, 0.0)
    return through_plane_blur(stack, torch.from_numpy(mask), sigma)


def _run_views(
    inferer: SliceInferer,
    models: dict[str, Any],
    views: dict[str, PreparedVolume],
    infos: Sequence[tuple[Any, dict[str, Any]]],
    *,
    reference: bool,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[Any], list[list[np.ndarray]]]:
    """Run each scorer over the prepared ``views`` it asks for (:func:`view_axes`).

    Returns, per scorer, its result on the first view (the model's own axis) and its
    maps of every view on the scan's grid (empty for slice-only scorers).
    """
    axis = next(iter(views))
    total, done = sum(len(v.slices) for v in views.values()), 0
    primary: list[Any] = [None] * len(infos)
    view_maps: list[list[np.ndarray]] = [[] for _ in infos]
    for view_axis, view in views.items():
        members = [k for k, (_, p) in enumerate(infos) if view_axis in view_axes(p, axis)]
        run = replace(inferer, progress=_offset_progress(progress, done, total))
        fns = [(infos[k][0].reference if reference else infos[k][0].fn, infos[k][1])
               for k in members]  # fmt: skip
        done += len(view.slices)
        for k, result in zip(members, run(models, view.slices, fns), strict=True):
            if primary[k] is None:
                primary[k] = result
            if result.maps is not None:
                maps = stacked_maps(result.maps, view.slices.indices, view.stack.mask, infos[k][1])
                view_maps[k].append(slices_to_volume(maps, view.stack.geometry))
    return primary, view_maps


def is_multi_view(params: dict[str, Any]) -> bool:
    """Whether a scorer's ``views`` parameter asks for more than the model's own axis."""
    return params.get(VIEWS.name, "single") == "orthogonal"


def view_axes(params: dict[str, Any], axis: str) -> tuple[str, ...]:
    """The slicing axes a scorer's ``views`` parameter asks for, the model's ``axis`` first."""
    if is_multi_view(params):
        return (axis, *(a for a in get_args(Axis) if a != axis))
    return (axis,)


def combine_views(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Voxel-wise geometric mean of the views' maps (negative values count as 0): high
    only where every view is high. One map comes back as it is."""
    if len(maps) == 1:
        return maps[0]
    product = np.ones_like(maps[0])
    for m in maps:
        product *= np.clip(m, 0.0, None)
    return product ** (1.0 / len(maps))


def _offset_progress(
    progress: Callable[[int, int], None] | None, done: int, total: int
) -> Callable[[int, int], None] | None:
    """``progress`` of one view's slices as a part of all views' ``total`` slices."""
    if progress is None:
        return None
    return lambda n, _: progress(done + n, total)


def check_model_takes(volume: Volume, checkpoint: Checkpoint) -> None:
    """Refuse a scan the checkpoint's model cannot take (a 2D image for a model of 3D
    scans or the reverse, another number of channels, another DICOM modality), before
    registration, brain extraction or preprocessing spend time on it
    (:func:`~..preprocessing.check_scan_fits`)."""
    modality = trained_modality(checkpoint.records.training)
    check_scan_fits(volume, checkpoint.preprocessing, model_in_channels(checkpoint), modality)


def model_in_channels(checkpoint: Checkpoint) -> int:
    """Channels per slice the checkpoint's first model takes (1 for configs without any)."""
    return int(getattr(checkpoint.model.config, "in_channels", 1))
