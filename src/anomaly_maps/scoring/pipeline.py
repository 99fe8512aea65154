"""Score a whole volume: preprocess as the model was trained, score slice batches on the
device, mask the background, and put the maps back on the scan's voxel grid.

This is the one function the CLI (``anomaly-maps score``) and the napari widgets call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..device import resolve_device
from ..errors import Cancelled, ParameterError, ScorerError
from ..io import Volume
from ..preprocessing import slices_to_volume, to_slices
from ._ops import sharing_passes
from ._registry import ScorerInfo, get_scorer

__all__ = [
    "VOLUME_SCORES",
    "VolumeScore",
    "iter_batches_adaptive",
    "score_volume",
    "volume_score_of",
]

log = logging.getLogger(__name__)


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


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def iter_batches_adaptive(
    n: int, batch_size: int, run: Callable[[slice], Any], device: torch.device
) -> Iterator[tuple[slice, Any]]:
    """Yield ``(batch_slice, run(batch_slice))`` over ``range(n)``.

    On a CUDA out-of-memory error the batch is halved and retried (down to one slice),
    and the smaller size is kept for the rest of the volume.
    """
    start = 0
    while start < n:
        stop = min(n, start + batch_size)
        try:
            result = run(slice(start, stop))
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if device.type != "cuda" or not _is_oom(err) or stop - start == 1:
                raise
            torch.cuda.empty_cache()
            batch_size = max(1, (stop - start) // 2)
            log.warning("out of GPU memory: retrying with batches of %d slices", batch_size)
            continue
        yield slice(start, stop), result
        start = stop


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
        Slices per call (halved automatically on CUDA out-of-memory).
    seed
        Seeds each scorer's random draws (SmoothGrad noise, samples, restorations).
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

    Returns
    -------
    list of VolumeScore
        One per scorer, in order.
    """
    check_volume_score(volume_score)  # before any work
    infos: list[tuple[ScorerInfo, dict[str, Any]]] = []
    for name, params in scorers:
        info = get_scorer(name)
        info.check_fits(checkpoint.kinds)
        if reference and info.reference is None:
            raise ScorerError(f"scorer {name!r} has no registered reference implementation")
        infos.append((info, info.resolve_params(params)))
    fns = [info.reference if reference else info.fn for info, _ in infos]
    target = (
        resolve_device(device)
        if device is not None
        else next(checkpoint.model.parameters()).device
    )
    models = {kind: m.to(target).eval() for kind, m in checkpoint.models.items()}

    stack = to_slices(volume, checkpoint.preprocessing)
    scored = np.flatnonzero(stack.mask.any(axis=(1, 2)))
    images = torch.from_numpy(stack.images[scored])[:, None]
    masks = torch.from_numpy(stack.mask[scored])
    positions = torch.from_numpy(stack.positions[scored])
    n_slices, size = stack.images.shape[0], stack.images.shape[-1]
    maps = [torch.zeros(n_slices, size, size) for _ in infos]
    slice_scores = [np.zeros(n_slices, np.float32) for _ in infos]
    has_map = [False] * len(infos)
    # One generator per scorer: a scorer's draws (and so its map) do not depend on
    # which other scorers run alongside it.
    generators = [torch.Generator(device=target).manual_seed(seed) for _ in infos]

    def run(batch: slice) -> list:
        x = images[batch].to(target)
        position = positions[batch].to(target)
        with torch.no_grad(), sharing_passes():
            return [
                fn(models, x, position=position, generator=g, **params)
                for fn, g, (_, params) in zip(fns, generators, infos, strict=True)
            ]

    for batch, results in iter_batches_adaptive(len(scored), batch_size, run, target):
        rows = scored[batch]
        for i, result in enumerate(results):
            if result.pixel is not None:
                maps[i][rows] = result.pixel.float().cpu() * masks[batch]
                has_map[i] = True
            slice_scores[i][rows] = result.slice_score.float().cpu().numpy()
        if progress is not None:
            progress(batch.stop, len(scored))
        if should_stop is not None and should_stop():
            raise Cancelled(f"scoring stopped after {batch.stop} of {len(scored)} slices")

    is_scored = np.zeros(n_slices, bool)
    is_scored[scored] = True
    out = []
    for i, (info, params) in enumerate(infos):
        volume_map = (
            slices_to_volume(maps[i], stack.geometry) * stack.foreground if has_map[i] else None
        )
        out.append(
            VolumeScore(
                scorer=info.name,
                params=params,
                map=volume_map,
                slice_scores=slice_scores[i],
                volume_score=volume_score_of(
                    volume_score, slice_scores[i][scored], volume_map, stack.foreground
                ),
                aggregate=volume_score,
                foreground=stack.foreground,
                scored=is_scored,
            )
        )
    return out
