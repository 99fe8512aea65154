"""Post-processing shared by every scorer: normalisation of maps and scores.

Raw maps are in each scorer's own units, so one threshold cannot serve two scorers, two
models or, for scorers whose scale drifts with the scan's contrast, two volumes. All
normalisations here are monotone (they never change a ranking inside one map, so a
single map's AUROC and AP are unchanged) and put "typical" at 0 and "unusual" at 1:

========= ===================================================================
method    value
========= ===================================================================
none      the raw map
volume    ``(v - q50) / (q99 - q50)`` with quantiles of *this* volume's
          foreground voxels: comparable across volumes without calibration,
          but a large lesion raises its own q99
model     the same with quantiles of *healthy* volumes stored in the checkpoint
          (:mod:`.calibration`): 1 = the healthy 99th percentile, so a threshold
          of 1 flags 1 % of healthy tissue
mood      the ``model`` value ``m`` mapped monotonically into (0, 1):
          ``0.5 + 0.5 m / (1 + m)`` for ``m >= 0``, ``0.5 / (1 - m)`` below, as
          the MOOD evaluator expects (it clips to [0, 1] and reads float16; seed
          002, section 3): 0.5 = the healthy median, 0.75 = the healthy 99th
          percentile, no saturation into float16 ties below ``m`` ~ 1000, and
          every scored voxel above the background's 0
========= ===================================================================

Background voxels (outside the foreground the model scored) are 0 after every method.
For ``mood`` that keeps the background below every brain voxel (pooled-voxel metrics
over whole volumes, as MOOD computes them, need it); for ``volume`` and ``model``, 0 is
"typical tissue", so below-median brain voxels rank under the background there.
Smoothing is a scorer parameter (``sigma``) because it belongs on the slice grid the
model sees; foreground masking happens in :func:`~anomaly_maps.scoring.score_volume`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ParameterError
from .calibration import Calibration
from .pipeline import VolumeScore

__all__ = ["NORMALIZATIONS", "healthy_p99_value", "normalize_map", "normalize_result"]

#: Normalisation methods, with one line each for menus and ``--help``.
NORMALIZATIONS: dict[str, str] = {
    "none": "raw scorer units",
    "volume": "0 = this volume's median, 1 = its 99th percentile (foreground)",
    "model": "0 = healthy median, 1 = healthy 99th percentile (calibration in the model)",
    "mood": "model-normalised, mapped into (0, 1) for MOOD: 0.75 = healthy 99th percentile",
}

_LOW, _HIGH = 0.5, 0.99


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values - low) / max(high - low, np.finfo(np.float32).eps * max(1.0, abs(high)))


def _bounds(values: np.ndarray) -> tuple[float, float]:
    """This set's own (median, 99th percentile): the ``volume`` method's statistics."""
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.quantile(values, (_LOW, _HIGH))
    return float(low), float(high)


def _healthy_bounds(calibration: Calibration, *, pixel: bool) -> tuple[float, float]:
    """The healthy (median, 99th percentile) of a calibration: ``model`` and ``mood``."""
    return calibration.quantile(_LOW, pixel=pixel), calibration.quantile(_HIGH, pixel=pixel)


def _apply(values: np.ndarray, bounds: tuple[float, float], method: str) -> np.ndarray:
    """Scale to 0 at ``bounds[0]`` and 1 at ``bounds[1]``; ``mood`` then squashes."""
    out = _scale(values, *bounds)
    return _squash(out) if method == "mood" else out


def _squash(values: np.ndarray) -> np.ndarray:
    """Monotone map of the real line onto (0, 1), 0 -> 0.5, 1 -> 0.75 (see ``mood``)."""
    values = np.asarray(values, np.float64)
    positive = np.maximum(values, 0)
    return np.where(values >= 0, 0.5 + 0.5 * positive / (1 + positive),
                    0.5 / (1 - np.minimum(values, 0)))  # fmt: skip


def healthy_p99_value(method: str) -> float | None:
    """The value ``method`` gives the (healthy or own) 99th percentile, or None for ``none``.

    It is the natural first threshold to share across normalised maps (1 for ``volume``
    and ``model``, 0.75 for ``mood``), computed with the normalisation itself.
    """
    if method not in ("model", "mood"):  # these need no calibration to be placed
        _check(method, None)
    if method == "none":
        return None
    return float(_apply(np.float64(_HIGH), (_LOW, _HIGH), method))


def _check(method: str, calibration: Calibration | None) -> None:
    if method not in NORMALIZATIONS:
        raise ParameterError(f"normalisation {method!r}: expected one of {list(NORMALIZATIONS)}")
    if method in ("model", "mood") and calibration is None:
        raise ParameterError(
            f"normalisation {method!r} needs the scorer's healthy statistics stored in the "
            "checkpoint: run `anomaly-maps calibrate` on healthy validation scans first, "
            "or use 'volume'"
        )


def normalize_map(
    values: np.ndarray,
    method: str,
    *,
    foreground: np.ndarray | None = None,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Normalise a map (any shape) with ``method`` (see :data:`NORMALIZATIONS`).

    Parameters
    ----------
    values
        Raw map.
    method
        ``none``, ``volume``, ``model`` or ``mood``.
    foreground
        Bool mask of the scored voxels (same shape); ``volume`` takes its quantiles
        there, and every method sets the rest to 0. Default: the whole array.
    calibration
        The scorer's healthy statistics, needed by ``model`` and ``mood``.

    Returns
    -------
    numpy.ndarray
        float32, same shape.
    """
    _check(method, calibration)
    values = np.asarray(values, np.float32)
    mask = np.ones(values.shape, bool) if foreground is None else np.asarray(foreground, bool)
    if mask.shape != values.shape:
        raise ParameterError(f"foreground shape {mask.shape} != map shape {values.shape}")
    if method == "none":
        return np.where(mask, values, np.float32(0))
    if method == "volume":
        bounds = _bounds(values[mask])
    else:
        bounds = _healthy_bounds(calibration, pixel=True)
    return np.where(mask, _apply(values, bounds, method), 0).astype(np.float32)


def normalize_result(
    result: VolumeScore, method: str, calibration: Calibration | None = None
) -> VolumeScore:
    """A :class:`VolumeScore` with its map, slice scores and volume score normalised.

    Slice scores use the slice-score statistics (their own for ``volume``, the healthy
    ones for ``model``/``mood``); the volume score uses the statistics of what it
    aggregates (slice scores or the map). ``volume`` leaves the volume score raw: one
    number cannot be normalised by itself.
    """
    _check(method, calibration)
    if method == "none":
        return result
    volume_map = (
        None
        if result.map is None
        else normalize_map(
            result.map, method, foreground=result.foreground, calibration=calibration
        )
    )
    scored = result.scored
    raw = result.slice_scores
    if method == "volume":
        bounds = _bounds(raw[scored])
        volume_score = result.volume_score
    else:
        bounds = _healthy_bounds(calibration, pixel=False)
        on_map = result.aggregate.startswith("map_")
        volume_score = float(
            _apply(np.float64(result.volume_score), _healthy_bounds(calibration, pixel=on_map),
                   method)
        )  # fmt: skip
    slices = _apply(raw.astype(np.float64), bounds, method)
    return replace(
        result,
        map=volume_map,
        slice_scores=np.where(scored, slices, 0).astype(np.float32),
        volume_score=volume_score,
        normalization=method,
    )
