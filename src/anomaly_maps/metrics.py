"""Detection metrics for anomaly maps and scores: AUROC, average precision, Dice.

Every metric is computed from :class:`ScoreCounts`: the number of positive and negative
items at each distinct score. Counting handles ties exactly as scikit-learn does (all
items with one score cross a threshold together), and counts from many volumes can be
pooled without keeping their voxels, which is what pooled-voxel metrics over a test set
of 256^3 volumes need.

The MOOD challenge [1]_ scores a submission by the average precision over all voxels of
all cases pooled, after reading each map as float16 and clipping it to [0, 1]
(MIC-DKFZ/mood ``scripts/evalresults.py``). ``mood=True`` reproduces that reading; a
float16 value in [0, 1] is then one of at most 15,361 bit patterns, which are ordered
like the values, so counting is one ``bincount`` per volume instead of a sort.

Undefined metrics are NaN, not errors, so that a table over subsets (e.g. only healthy
cases) still has a row: AUROC without both classes, AP and Dice without positives.
scikit-learn agrees for AUROC (NaN with a warning) but returns AP 0 without positives.

References
----------
.. [1] The MOOD challenge (Medical Out-of-Distribution Analysis), brain MRI track, as
   used by Marimont & Tarroni, ISBI 2021 (seed 002, section 3.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = [
    "ScoreCounts",
    "average_precision",
    "best_dice",
    "dice_at",
    "pool_counts",
    "pr_curve",
    "roc_auc",
    "roc_curve",
    "score_counts",
]

_FLOAT16_ONE = int(np.float16(1.0).view(np.uint16))  # 0x3C00: bit patterns 0..0x3C00 = [0, 1]


@dataclass(frozen=True, eq=False)
class ScoreCounts:
    """How many positive and negative items have each distinct score.

    Attributes
    ----------
    thresholds
        (K,) float64 distinct scores, highest first.
    positives, negatives
        (K,) int64 number of positive / negative items with that score.
    """

    thresholds: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    @property
    def n_positive(self) -> int:
        return int(self.positives.sum())

    @property
    def n_negative(self) -> int:
        return int(self.negatives.sum())

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """(tps, fps): positives and negatives scoring >= each threshold (sklearn's
        ``confusion_matrix_at_thresholds``)."""
        return np.cumsum(self.positives), np.cumsum(self.negatives)

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fpr, tpr, thresholds) as ``sklearn.metrics.roc_curve`` (collinear points
        dropped, a first point (0, 0) at threshold ``inf``); NaN rates for a missing class."""
        tps, fps = self._cumulative()
        thresholds = self.thresholds
        if len(fps) > 2:
            keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
            tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
        tps, fps = np.r_[0, tps], np.r_[0, fps]
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
        return fpr, tpr, np.r_[np.inf, thresholds]

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, thresholds) as ``sklearn.metrics.precision_recall_curve``:
        thresholds ascending, a last point (1, 0); recall NaN without positives."""
        tps, fps = self._cumulative()
        precision = tps / np.maximum(tps + fps, 1)
        recall = tps / tps[-1] if len(tps) and tps[-1] > 0 else np.full(tps.shape, np.nan)
        return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], self.thresholds[::-1]

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoids, ties counted half); NaN without both classes."""
        if self.n_positive == 0 or self.n_negative == 0:
            return float("nan")
        fpr, tpr, _ = self.roc_curve()
        return float((np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0).sum())  # np.trapezoid

    def average_precision(self) -> float:
        """Step-wise area under the precision-recall curve, as scikit-learn's
        ``average_precision_score`` (no interpolation); NaN without positives."""
        if self.n_positive == 0:
            return float("nan")
        precision, recall, _ = self.pr_curve()
        return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))

    def dice_curve(self) -> np.ndarray:
        """(K,) Dice of the segmentation ``score >= thresholds[k]`` for every threshold."""
        tps, fps = self._cumulative()
        denominator = tps + fps + self.n_positive
        return np.divide(
            2.0 * tps, denominator, out=np.full(len(tps), np.nan), where=denominator > 0
        )

    def best_dice(self) -> tuple[float, float]:
        """(Dice, threshold): the best Dice over all thresholds ``score >= t`` and the
        highest threshold reaching it; (NaN, NaN) without positives."""
        if self.n_positive == 0:
            return float("nan"), float("nan")
        dice = self.dice_curve()
        best = int(np.argmax(dice))
        return float(dice[best]), float(self.thresholds[best])

    def dice_at(self, threshold: float) -> float:
        """Dice of the segmentation ``score >= threshold``; NaN when both it and the
        label are empty."""
        above = self.thresholds >= threshold
        tp = int(self.positives[above].sum())
        denominator = tp + int(self.negatives[above].sum()) + self.n_positive
        return 2.0 * tp / denominator if denominator else float("nan")


def _as_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened boolean labels and real scores; errors name what is wrong."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.shape != scores.shape:
        raise ParameterError(
            f"labels have shape {labels.shape} but scores {scores.shape}: expected the same"
        )
    if labels.dtype != bool:
        if not (np.issubdtype(labels.dtype, np.number) and np.isin(labels, (0, 1)).all()):
            raise ParameterError(
                f"labels of dtype {labels.dtype} hold values other than 0 and 1: "
                "expected a binary label (bool or 0/1)"
            )
        labels = labels != 0
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise ParameterError(f"scores have dtype {scores.dtype}: expected real numbers")
    if np.issubdtype(scores.dtype, np.floating) and not np.isfinite(scores).all():
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        raise ParameterError(f"{bad} score(s) are NaN or infinite: expected finite scores")
    return labels.ravel(), scores.ravel()


def _mood_counts(labels: np.ndarray, scores: np.ndarray) -> ScoreCounts:
    """Counts of ``clip(float16(scores), 0, 1)`` by bit pattern: no sort needed."""
    with np.errstate(over="ignore"):  # beyond float16 range -> inf -> clipped to 1, as MOOD
        values = np.clip(scores.astype(np.float16), 0, 1) + np.float16(0)  # -0.0 -> +0.0
    bits = values.view(np.uint16)
    total = np.bincount(bits, minlength=_FLOAT16_ONE + 1)
    positives = np.bincount(bits[labels], minlength=_FLOAT16_ONE + 1)
    present = np.flatnonzero(total)[::-1]
    thresholds = present.astype(np.uint16).view(np.float16).astype(np.float64)
    return ScoreCounts(thresholds, positives[present], (total - positives)[present])


def score_counts(labels: np.ndarray, scores: np.ndarray, *, mood: bool = False) -> ScoreCounts:
    """Count positives and negatives at each distinct score.

    Parameters
    ----------
    labels
        Binary ground truth (bool or 0/1), any shape.
    scores
        Finite real scores, same shape; higher = more anomalous.
    mood
        Read the scores as MOOD's evaluator does: cast to float16 and clip to [0, 1].
        Exact for what MOOD scores, and fast: counts by float16 bit pattern.

    Raises
    ------
    ParameterError
        Shapes differ, labels are not binary, or scores are not finite.
    """
    labels, scores = _as_pair(labels, scores)
    if mood:
        return _mood_counts(labels, scores)
    values, inverse = np.unique(scores, return_inverse=True)
    total = np.bincount(inverse, minlength=len(values))
    positives = np.bincount(inverse[labels], minlength=len(values))
    return ScoreCounts(values[::-1].astype(np.float64), positives[::-1], (total - positives)[::-1])


def pool_counts(counts: Iterable[ScoreCounts]) -> ScoreCounts:
    """Counts of the union of the items behind several :class:`ScoreCounts` (e.g. all
    voxels of all volumes of a test set)."""
    counts = list(counts)
    if not counts:
        empty = np.zeros(0, np.int64)
        return ScoreCounts(np.zeros(0), empty, empty)
    values, inverse = np.unique(
        np.concatenate([c.thresholds for c in counts]), return_inverse=True
    )
    positives = np.bincount(
        inverse, weights=np.concatenate([c.positives for c in counts]), minlength=len(values)
    )
    total = np.bincount(
        inverse,
        weights=np.concatenate([c.positives + c.negatives for c in counts]),
        minlength=len(values),
    )
    positives, total = positives.astype(np.int64), total.astype(np.int64)  # exact < 2**53
    return ScoreCounts(values[::-1], positives[::-1], (total - positives)[::-1])


def roc_auc(labels: np.ndarray, scores: np.ndarray, *, mood: bool = False) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (pooled items).

    Equals ``sklearn.metrics.roc_auc_score``; NaN when only one class is present. With
    ``mood=True`` the scores are first read as MOOD does (see :func:`score_counts`).
    """
    return score_counts(labels, scores, mood=mood).roc_auc()


def average_precision(labels: np.ndarray, scores: np.ndarray, *, mood: bool = False) -> float:
    """Average precision, equal to ``sklearn.metrics.average_precision_score``.

    With ``mood=True`` this is the MOOD challenge's pixel-level metric when ``labels``
    and ``scores`` are all voxels of all cases (seed 002, section 3); NaN without positives.
    """
    return score_counts(labels, scores, mood=mood).average_precision()


def dice_at(
    labels: np.ndarray, scores: np.ndarray, threshold: float, *, mood: bool = False
) -> float:
    """Dice of the segmentation ``scores >= threshold`` against ``labels``."""
    return score_counts(labels, scores, mood=mood).dice_at(threshold)


def best_dice(
    labels: np.ndarray, scores: np.ndarray, *, mood: bool = False
) -> tuple[float, float]:
    """(best Dice over all thresholds, the threshold giving it), from the sorted scores
    at once: the oracle operating point, an upper bound for any chosen threshold."""
    return score_counts(labels, scores, mood=mood).best_dice()


def roc_curve(
    labels: np.ndarray, scores: np.ndarray, *, mood: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for plotting; see :meth:`ScoreCounts.roc_curve`."""
    return score_counts(labels, scores, mood=mood).roc_curve()


def pr_curve(
    labels: np.ndarray, scores: np.ndarray, *, mood: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) for plotting; see :meth:`ScoreCounts.pr_curve`."""
    return score_counts(labels, scores, mood=mood).pr_curve()
