"""Histogram standardisation of MR intensities (Nyúl & Udupa), learnt from training scans.

MR intensities have no fixed unit: the same tissue differs between scanners, sequences and
sessions, and a min-max or percentile rescaling aligns only the two ends of the histogram.
Nyúl & Udupa [1]_ (section 2) align several landmarks: the foreground's percentiles
``p_lo, 10, 20, ..., 90, p_hi`` of every training scan are mapped linearly onto a common
scale (``p_lo -> 0``, ``p_hi -> 1`` here; the paper uses ``[s1, s2]``), and their means
form the *standard scale*. A new scan's own landmarks are then mapped piecewise linearly
onto the standard scale, so its grey and white matter land where the training scans'
did, whatever its contrast.

This is the "percentile" normalisation with nine more landmarks: both share the
checkpoint's ``percentiles`` as the ends and clip to [0, 1] beyond them, so a model can be
trained with either and its maps stay in the same range. The reference implementation
(the ``intensity-normalization`` package, ``NyulNormalizer``) extrapolates its end
segments instead; after the clip to [0, 1] the two agree (a test checks it where the
package is installed; it needs Python >= 3.11 and scikit-fuzzy, so it is not a runtime
dependency here).

References
----------
.. [1] L. G. Nyúl, J. K. Udupa, X. Zhang, "New variants of a method of MRI scale
   standardization", IEEE TMI 19(2), 143-150, 2000, section II.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import ParameterError, VolumeError

__all__ = ["landmark_levels", "scan_landmarks", "standard_scale", "standardize"]

_DECILES = tuple(float(p) for p in range(10, 100, 10))


def landmark_levels(percentiles: tuple[float, float]) -> tuple[float, ...]:
    """Percentile levels of the landmarks: the ends ``percentiles`` and the deciles
    strictly between them."""
    lo, hi = percentiles
    return (float(lo), *(p for p in _DECILES if lo < p < hi), float(hi))


def scan_landmarks(foreground: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """The landmarks of one scan's foreground intensities (1-D array of its voxels)."""
    values = np.asarray(foreground, dtype=np.float64).ravel()
    if values.size == 0:
        raise VolumeError("no foreground voxels to take histogram landmarks from")
    return np.percentile(values, landmark_levels(percentiles))


def standard_scale(landmarks: Iterable[np.ndarray]) -> tuple[float, ...]:
    """The mean of the scans' landmarks, each mapped linearly from its ends to [0, 1]."""
    scaled = []
    for marks in landmarks:
        marks = np.asarray(marks, dtype=np.float64)
        span = marks[-1] - marks[0]
        if not span > 0:
            raise VolumeError(
                "a training scan's foreground has equal lower and upper percentiles: "
                "expected a scan with contrast"
            )
        scaled.append((marks - marks[0]) / span)
    if not scaled:
        raise ParameterError("histogram standardisation needs at least one training scan")
    return tuple(float(v) for v in np.mean(scaled, axis=0))


def standardize(
    data: np.ndarray,
    foreground: np.ndarray,
    scale: tuple[float, ...],
    percentiles: tuple[float, float],
) -> np.ndarray:
    """``data`` mapped piecewise linearly from its foreground's landmarks onto ``scale``
    (a :func:`standard_scale`), clipped to [0, 1]; float32.

    Landmarks that coincide (a scan with few grey levels) keep the first of them, as
    ``np.interp`` needs increasing abscissae.
    """
    marks = scan_landmarks(foreground, percentiles)
    if len(marks) != len(scale):
        raise ParameterError(
            f"histogram standard scale has {len(scale)} landmarks, expected {len(marks)} "
            f"for percentiles {percentiles}"
        )
    keep = np.concatenate([[True], np.diff(marks) > 0])
    if keep.sum() < 2:
        raise VolumeError("the foreground has one intensity: expected a scan with contrast")
    mapped = np.interp(np.asarray(data, np.float64), marks[keep], np.asarray(scale)[keep])
    return np.clip(mapped, 0.0, 1.0).astype(np.float32)
