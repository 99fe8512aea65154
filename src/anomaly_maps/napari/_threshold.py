"""Threshold an anomaly map fast enough for a slider (no Qt here).

No sort: the brain's values and their histogram bins are kept (built in linear time,
about 0.07 s for a 4.5-million-voxel brain), so every question the threshold widget asks
while the slider moves is exact and cheap: the flagged volume is one vectorised count,
a percentile's value a selection inside one histogram bin. Against a label image, true
and false positives are binary searches in :class:`LabelStats`. A voxel is flagged when
its value is at or above the threshold, the convention of :mod:`anomaly_maps.metrics`
and of the calibration's thresholds. Only the overlay itself touches every voxel, with
one vectorised comparison written into the Labels layer's existing buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import score_counts

__all__ = ["LabelStats", "OperatingPoint", "ThresholdIndex"]

_BINS = 1 << 16
"""Histogram bins: a bin holds ~n / 65536 voxels of a smooth map (a few hundred)."""


class ThresholdIndex:
    """A map's brain values with a fine histogram, for exact threshold statistics.

    Parameters
    ----------
    values
        The anomaly map (any shape), kept by reference.
    foreground
        Brain mask of the same shape (what "fraction of the brain" and percentiles refer
        to); ``None``: every voxel counts.
    voxel_ml
        Volume of one voxel in millilitres (``|det(affine[:3, :3])| / 1000``).
    """

    def __init__(
        self, values: np.ndarray, foreground: np.ndarray | None = None, voxel_ml: float = 1e-3
    ) -> None:
        self.values = values
        self.foreground = foreground
        self.voxel_ml = float(voxel_ml)
        inside = values[foreground] if foreground is not None else values.ravel()
        self.inside = inside.astype(np.float32, copy=False)
        if self.inside.size == 0:
            raise ValueError("the map has no foreground voxels to threshold")
        self.size = self.inside.size
        lo, hi = self.inside.min(), self.inside.max()
        self._range = float(lo), float(hi)
        per_unit = np.float32(_BINS / (float(hi) - float(lo)) if hi > lo else 0.0)
        # a monotone function of the value: the k-th smallest value is in the bin where
        # the cumulative count passes k
        scaled = np.floor((self.inside - lo) * per_unit)
        self._bins = np.minimum(scaled, _BINS - 1).astype(np.uint16)
        counts = np.bincount(self._bins, minlength=_BINS)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        # background above a threshold must be masked out of the overlay (one more pass)
        self._background_max = (
            -np.inf
            if foreground is None or foreground.all()
            else float(np.max(values, where=~foreground, initial=-np.inf))
        )
        self._last: tuple[np.float32, int] | None = None

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest brain value."""
        return self._range

    def percentile(self, threshold: float) -> float:
        """Percent of brain voxels below ``threshold`` (those not flagged)."""
        return 100.0 * float(self.size - self.flagged(threshold)) / self.size

    def value(self, percentile: float) -> float:
        """Map value at ``percentile`` (0-100) of the brain voxels (nearest rank)."""
        rank = round(float(np.clip(percentile, 0, 100)) / 100 * (self.size - 1))
        b = int(np.searchsorted(self._starts, rank, side="right")) - 1
        members = self.inside[self._bins == b]
        local = rank - int(self._starts[b])
        return float(np.partition(members, local)[local])

    def flagged(self, threshold: float) -> int:
        """Brain voxels at or above ``threshold`` (compared in float32, as the overlay)."""
        needle = np.float32(threshold)
        if self._last is None or self._last[0] != needle:
            self._last = (needle, int(np.count_nonzero(self.inside >= needle)))
        return self._last[1]

    def flagged_ml(self, threshold: float) -> float:
        return self.flagged(threshold) * self.voxel_ml

    def brain_fraction(self, threshold: float) -> float:
        return self.flagged(threshold) / self.size

    def apply(
        self, threshold: float, out: np.ndarray, where: tuple[int | slice, ...] = ()
    ) -> np.ndarray:
        """Write ``values >= threshold`` (brain only) into ``out`` (bool or uint8 0/1).

        ``where`` (basic indexing, e.g. one plane) limits the work to part of the volume.
        """
        view = (out.view(bool) if out.dtype == np.uint8 else out)[where]
        np.greater_equal(self.values[where], threshold, out=view)
        if self.foreground is not None and threshold <= self._background_max:
            view &= self.foreground[where]
        return out


@dataclass(frozen=True)
class OperatingPoint:
    """Voxel counts and rates of the segmentation ``map >= threshold`` against labels."""

    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def sensitivity(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def specificity(self) -> float:
        return self.tn / max(self.tn + self.fp, 1)

    @property
    def fpr(self) -> float:
        return 1.0 - self.specificity

    @property
    def dice(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)


class LabelStats:
    """A map scored against a label image, counted once, queried per slider move.

    Positives are the voxels labelled > 0; negatives the unlabelled brain voxels (all
    unlabelled voxels without a brain mask), so specificity is about tissue, not about
    the empty field of view. Counting is :func:`anomaly_maps.metrics.score_counts`, so
    AUROC, AP and best Dice equal what ``anomaly-maps evaluate`` reports.
    """

    def __init__(
        self, values: np.ndarray, labels: np.ndarray, foreground: np.ndarray | None = None
    ) -> None:
        if labels.shape != values.shape:
            raise ValueError(f"labels have shape {labels.shape}: expected {values.shape}")
        lesion = np.asarray(labels) > 0
        counted = lesion if foreground is None else lesion | foreground
        self.counts = score_counts(lesion[counted], values[counted])
        self._ascending = self.counts.thresholds[::-1]
        self._tps, self._fps = np.cumsum(self.counts.positives), np.cumsum(self.counts.negatives)

    def at(self, threshold: float) -> OperatingPoint:
        """Counts of ``map >= threshold`` (a binary search)."""
        above = self._ascending.size - np.searchsorted(self._ascending, threshold, side="left")
        tp = int(self._tps[above - 1]) if above else 0
        fp = int(self._fps[above - 1]) if above else 0
        positives, negatives = self.counts.n_positive, self.counts.n_negative
        return OperatingPoint(threshold, tp, fp, positives - tp, negatives - fp)

    def roc(self, max_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """``(fpr, tpr)`` of the ROC curve, thinned to at most ``max_points`` for plotting."""
        fpr, tpr, _ = self.counts.roc_curve()
        keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, max_points)).astype(int))
        return fpr[keep], tpr[keep]

    def auroc(self) -> float:
        return self.counts.roc_auc()

    def average_precision(self) -> float:
        return self.counts.average_precision()

    def best_dice(self) -> OperatingPoint:
        """The operating point with the highest Dice (the oracle threshold)."""
        _, threshold = self.counts.best_dice()
        return self.at(threshold)
