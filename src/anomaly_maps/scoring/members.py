"""Scoring with a restoration ensemble: every member over the whole scan, then the maximum.

:func:`~.pipeline.score_volume` hands a ``restoration_ensemble`` checkpoint here. Each
member scores the scan as a checkpoint of its own would (its slice size, every view and
the through-plane smoothing the scorer's parameters ask for), its map and slice scores
are divided by its unit (``RestorationEnsembleConfig.units``: its healthy 99th
percentile, ``scales``, or its own map's 90th percentile over the scan's foreground),
and the ensemble keeps the voxel-wise (and slice-wise) maximum. Combining the members' final
maps, not their per-slice maps inside the network, keeps each member's view agreement
(the geometric mean of ``views=orthogonal``) its own: on the benchmark and on Colin27 the
per-slice maximum let one member's single-view false positives through
(``docs/results.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint import Checkpoint
from ..models.restoration_ensemble import SCAN_QUANTILE, RestorationEnsembleConfig

if TYPE_CHECKING:
    from .pipeline import VolumeScore

__all__ = [
    "ENSEMBLE_KIND",
    "combine_members",
    "ensemble_config",
    "is_ensemble",
    "member_checkpoints",
    "member_progress",
]

ENSEMBLE_KIND = RestorationEnsembleConfig.kind


def member_checkpoints(checkpoint: Checkpoint) -> list[Checkpoint]:
    """One checkpoint per member of an ensemble checkpoint: its network and the
    ensemble's preprocessing at the member's slice size (the rest is shared)."""
    ensemble = checkpoint.models[ENSEMBLE_KIND]
    return [
        replace(
            checkpoint,
            models={"restoration": net},
            preprocessing=replace(checkpoint.preprocessing, size=net.config.size),
        )
        for net in ensemble.members
    ]


def member_progress(
    progress: Callable[[int, int], None] | None, index: int, count: int
) -> Callable[[int, int], None] | None:
    """``progress`` of member ``index``'s slices as a part of all ``count`` members' (each
    scores the same slices)."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, count * total)


def member_unit(result: VolumeScore, scale: float, units: str) -> float:
    """What member ``result``'s map and slice scores are divided by: ``scale`` (its
    healthy 99th percentile) or, under ``units="scan"``, its map's 90th percentile over
    the scan's foreground (``scale`` when that is not positive, a map of zeros)."""
    if units != "scan" or result.map is None or not result.foreground.any():
        return scale
    unit = float(np.quantile(result.map[result.foreground], SCAN_QUANTILE))
    return unit if unit > 0 else scale


def combine_members(
    results: list[list[VolumeScore]],
    config: RestorationEnsembleConfig,
    volume_score_of: Callable,
) -> list[VolumeScore]:
    """Per scorer, the members' results divided by their units, combined by maximum.

    ``results[m][s]`` is member ``m``'s result for scorer ``s``; ``volume_score_of`` is
    :func:`~.pipeline.volume_score_of` (passed in to keep the import one-way).
    """
    combined = []
    for per_member in zip(*results, strict=True):
        first = per_member[0]
        units = [
            member_unit(r, s, config.units) for r, s in zip(per_member, config.scales, strict=True)
        ]
        maps = [r.map / u for r, u in zip(per_member, units, strict=True) if r.map is not None]
        volume_map = np.maximum.reduce(maps).astype(np.float32) if maps else None
        slices = np.maximum.reduce(
            [r.slice_scores / u for r, u in zip(per_member, units, strict=True)]
        ).astype(np.float32)
        combined.append(
            replace(
                first,
                map=volume_map,
                slice_scores=slices,
                volume_score=volume_score_of(
                    first.aggregate, slices[first.scored], volume_map, first.foreground
                ),
            )
        )
    return combined


def is_ensemble(checkpoint: Checkpoint) -> bool:
    """Whether ``checkpoint`` holds a restoration ensemble."""
    return ENSEMBLE_KIND in checkpoint.models


def ensemble_config(checkpoint: Checkpoint) -> RestorationEnsembleConfig:
    """The ensemble's members, scales and units."""
    return checkpoint.models[ENSEMBLE_KIND].config
