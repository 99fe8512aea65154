"""Calibration: what a scorer's values look like on healthy scans, stored with the model.

A raw anomaly map is in the scorer's own units (intensity error, gradient magnitude,
nats), which differ between scorers, models and training runs. Running a scorer over
healthy validation volumes once and storing quantiles of its values in the checkpoint
gives every later map a common yardstick: "model" normalisation (see
:mod:`.postprocess`) maps the healthy median to 0 and the healthy 99th percentile to 1,
a threshold for a target false-positive rate on healthy voxels is a quantile lookup, and
the MOOD submission format's [0, 1] range (seed 002, section 3; DESIGN.md, "Benchmark and
evaluation") follows from it. A best-Dice threshold found on labelled validation
volumes is stored next to the quantiles.

Calibrations live in the checkpoint header under ``metrics["calibration"]``, one entry
per (scorer, parameters), so a checkpoint can carry several; the record itself,
:class:`~anomaly_maps.records.Calibration`, is read and written with the other records
in :mod:`anomaly_maps.records` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checkpoint import Checkpoint
from ..errors import ParameterError, ScorerError
from ..io import Volume
from ..records import Calibration
from ._registry import ScorerInfo, get_scorer

if TYPE_CHECKING:
    from .pipeline import VolumeScore

__all__ = [
    "LEVELS",
    "Calibration",
    "calibrate",
    "calibrate_scorers",
    "calibrations_from_results",
    "find_calibration",
    "with_calibration",
]

#: Quantile levels stored for healthy values: dense in the upper tail, where thresholds
#: for low false-positive rates are read.
LEVELS: tuple[float, ...] = (
    0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999,
    0.9995, 0.9999, 1.0,
)  # fmt: skip


def _quantiles(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(q) for q in np.quantile(values.astype(np.float64), LEVELS))


def calibrate(
    checkpoint: Checkpoint,
    scorer: str,
    params: dict[str, Any] | None,
    healthy: Iterable[Volume],
    **options: Any,
) -> Calibration:
    """:func:`calibrate_scorers` for one scorer."""
    return calibrate_scorers(checkpoint, [(scorer, params)], healthy, **options)[0]


def calibrate_scorers(
    checkpoint: Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any] | None]],
    healthy: Iterable[Volume],
    *,
    labelled: Iterable[tuple[Volume, np.ndarray]] = (),
    device: str | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[Calibration]:
    """Run scorers over healthy volumes and keep quantiles of their values.

    All scorers run in one pass over each volume (sharing the model's passes), so
    calibrating several scorers costs little more than calibrating one.

    Parameters
    ----------
    checkpoint
        The model to calibrate.
    scorers
        ``(name, params)`` pairs; parameters are checked against each spec.
    healthy
        Healthy volumes the model did not train on (a validation split).
    labelled
        Optional ``(volume, voxel label)`` validation pairs with anomalies: the map
        threshold with the best Dice over all their voxels pooled is stored too.
    device, batch_size, seed
        As for :func:`~anomaly_maps.scoring.score_volume`.
    progress
        Called with the number of volumes done after each volume.

    Returns
    -------
    list of Calibration
        One per scorer, in order.
    """
    from .pipeline import score_volume

    resolved = [(name, get_scorer(name).resolve_params(params)) for name, params in scorers]
    done = 0

    def run(volume: Volume) -> list[VolumeScore]:
        nonlocal done
        results = score_volume(
            volume, checkpoint, resolved, device=device, batch_size=batch_size, seed=seed
        )
        done += 1
        if progress is not None:
            progress(done)
        return results

    return calibrations_from_results(
        resolved,
        (run(volume) for volume in healthy),
        ((run(volume), label) for volume, label in labelled),
    )


def calibrations_from_results(
    scorers: Sequence[tuple[str, dict[str, Any] | None]],
    healthy: Iterable[Sequence[VolumeScore]],
    labelled: Iterable[tuple[Sequence[VolumeScore], np.ndarray]] = (),
) -> list[Calibration]:
    """Calibrations from raw (unnormalised) results that were already computed.

    For callers that score the healthy volumes anyway (e.g. to write their predictions)
    and should not score them twice. ``healthy`` yields, per volume, the results of
    :func:`~anomaly_maps.scoring.score_volume` for ``scorers`` in order; ``labelled``
    yields such results with the volume's voxel label. Only the foreground values are
    kept, so the iterables may be lazy.
    """
    from ..metrics import pool_counts, score_counts

    resolved = [(name, get_scorer(name).resolve_params(params)) for name, params in scorers]
    pixels: list[list[np.ndarray]] = [[] for _ in resolved]
    slices: list[list[np.ndarray]] = [[] for _ in resolved]
    volumes: list[dict[str, list[float]]] = [{} for _ in resolved]
    for results in healthy:
        for i, result in enumerate(_aligned(results, resolved)):
            if result.map is not None:
                pixels[i].append(result.map[result.foreground])
            slices[i].append(result.slice_scores[result.scored])
            for aggregate, value in _volume_scores(result).items():
                volumes[i].setdefault(aggregate, []).append(value)
    if not slices[0]:
        raise ParameterError("calibration needs at least one healthy volume; got none")
    counts: list[list] = [[] for _ in resolved]
    for results, label in labelled:
        for i, result in enumerate(_aligned(results, resolved)):
            if result.map is not None:
                counts[i].append(score_counts(np.asarray(label) > 0, result.map))
    calibrations = []
    for (name, params), pixel, slice_, count, volume in zip(
        resolved, pixels, slices, counts, volumes, strict=True
    ):
        dice, threshold = pool_counts(count).best_dice() if count else (None, None)
        calibrations.append(
            Calibration(
                scorer=name,
                params=params,
                levels=LEVELS,
                pixel_quantiles=_quantiles(np.concatenate(pixel)) if pixel else None,
                slice_quantiles=_quantiles(np.concatenate(slice_)),
                n_volumes=len(slice_),
                dice_threshold=None if threshold is None or np.isnan(threshold) else threshold,
                dice=None if dice is None or np.isnan(dice) else dice,
                volume_scores={k: tuple(v) for k, v in volume.items()},
            )
        )
    return calibrations


def _volume_scores(result: VolumeScore) -> dict[str, float]:
    """The raw volume score of ``result`` under every aggregate that applies to it (map
    aggregates need a map), so a scan scored with any ``--volume-score`` can be ranked."""
    from .pipeline import VOLUME_SCORES, volume_score_of

    return {
        aggregate: volume_score_of(
            aggregate, result.slice_scores[result.scored], result.map, result.foreground
        )
        for aggregate in VOLUME_SCORES
        if result.map is not None or not aggregate.startswith("map_")
    }


def _aligned(
    results: Sequence[VolumeScore], scorers: Sequence[tuple[str, dict[str, Any]]]
) -> Sequence[VolumeScore]:
    """``results`` after checking they are those of ``scorers``, in order."""
    got = [(r.scorer, r.params) for r in results]
    if got != list(scorers):
        raise ScorerError(f"results of {got}: expected results of {list(scorers)}, in order")
    return results


def find_calibration(
    checkpoint: Checkpoint, scorer: str, params: dict[str, Any] | None = None
) -> Calibration | None:
    """The checkpoint's calibration of ``scorer`` with exactly these parameters, if any.

    Both sides are compared with the scorer's defaults filled in: a calibration stored
    before a parameter existed (``fpi`` before ``through``) was made with its default.
    """
    info = get_scorer(scorer)
    resolved = info.resolve_params(params)
    for calibration in checkpoint.records.calibrations:
        if _calibrates(calibration, info, resolved):
            return calibration
    return None


def _calibrates(calibration: Calibration, info: ScorerInfo, resolved: dict[str, Any]) -> bool:
    """Whether ``calibration`` is of scorer ``info`` with the ``resolved`` parameters, its
    own parameters taken with the defaults filled in (none that no longer fit)."""
    if calibration.scorer != info.name:
        return False
    try:
        return info.resolve_params(calibration.params) == resolved
    except ParameterError:
        return False


def with_calibration(checkpoint: Checkpoint, calibration: Calibration) -> Checkpoint:
    """A copy of ``checkpoint`` whose metrics hold ``calibration`` (replacing the old one,
    also one stored before a parameter existed that matches with its default)."""
    info = get_scorer(calibration.scorer)
    same = info.resolve_params(calibration.params)
    records = checkpoint.records
    kept = tuple(c for c in records.calibrations if not _calibrates(c, info, same))
    records = replace(records, calibrations=(*kept, calibration))
    return replace(checkpoint, records=records)
