import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from anomaly_maps.errors import ParameterError
from anomaly_maps.metrics import (
    average_precision,
    best_dice,
    dice_at,
    pool_counts,
    pr_curve,
    roc_auc,
    roc_curve,
    score_counts,
)


def random_case(seed: int, n: int = 3000, levels: int | None = 40):
    """Labels and scores with some signal; ``levels`` distinct values make many ties."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    scores = rng.normal(size=n) + 1.2 * labels
    if levels is not None:
        scores = np.round(scores * levels / 8) / (levels / 8)
    return labels, scores


def mood_reference(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """What MOOD's evaluator feeds sklearn: float16, clipped to [0, 1]."""
    with np.errstate(over="ignore"):
        return labels, np.clip(np.asarray(scores).astype(np.float16), 0, 1)


@pytest.mark.parametrize(("seed", "levels"), [(0, 40), (1, 7), (2, None)])
def test_auroc_ap_and_curves_match_sklearn_with_ties(seed, levels):
    labels, scores = random_case(seed, levels=levels)
    assert roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(
        sk.average_precision_score(labels, scores), abs=1e-12
    )
    for ours, theirs in zip(roc_curve(labels, scores), sk.roc_curve(labels, scores), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    for ours, theirs in zip(
        pr_curve(labels, scores), sk.precision_recall_curve(labels, scores), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_mood_reading_matches_sklearn_on_float16_clipped_scores(seed):
    labels, scores = random_case(seed, levels=None)
    scores = (scores + 1) / 4  # partly outside [0, 1]: clipped like MOOD
    scores[:5] = [-0.0, 70000.0, 1e-6, 1.0 + 1e-9, -3.0]  # -0, float16 overflow, subnormal
    ref_labels, ref_scores = mood_reference(labels, scores)
    assert roc_auc(labels, scores, mood=True) == pytest.approx(
        sk.roc_auc_score(ref_labels, ref_scores), abs=1e-12
    )
    assert average_precision(labels, scores, mood=True) == pytest.approx(
        sk.average_precision_score(ref_labels, ref_scores), abs=1e-12
    )
    # the bincount path and the sort path agree on the float16 values
    fast = score_counts(labels, scores, mood=True)
    slow = score_counts(ref_labels, ref_scores)
    np.testing.assert_array_equal(fast.thresholds, slow.thresholds)
    np.testing.assert_array_equal(fast.positives, slow.positives)
    np.testing.assert_array_equal(fast.negatives, slow.negatives)


def test_pooled_counts_equal_counts_of_the_concatenation():
    cases = [random_case(s, n=500 + 100 * s) for s in range(4)]
    pooled = pool_counts(score_counts(lab, sc, mood=True) for lab, sc in cases)
    labels = np.concatenate([c[0] for c in cases])
    scores = np.concatenate([c[1] for c in cases])
    assert pooled.average_precision() == pytest.approx(
        sk.average_precision_score(*mood_reference(labels, scores)), abs=1e-12
    )
    assert pooled.roc_auc() == pytest.approx(roc_auc(labels, scores, mood=True), abs=1e-12)
    assert pooled.n_positive == labels.sum()
    assert pooled.n_negative == (~labels).sum()


def brute_force_dice(labels, scores, threshold):
    pred = scores >= threshold
    return 2 * np.sum(pred & labels) / (pred.sum() + labels.sum())


def test_best_dice_is_the_best_over_every_threshold():
    labels, scores = random_case(5, n=800, levels=20)
    dice, threshold = best_dice(labels, scores)
    candidates = np.unique(scores)
    brute = np.array([brute_force_dice(labels, scores, t) for t in candidates])
    assert dice == pytest.approx(brute.max(), abs=1e-12)
    assert threshold == candidates[brute == brute.max()].max()  # highest of equal bests
    assert dice_at(labels, scores, threshold) == pytest.approx(dice, abs=1e-12)
    for t in (-10.0, 0.3, float(np.median(scores)), 99.0):
        assert dice_at(labels, scores, t) == pytest.approx(
            brute_force_dice(labels, scores, t), abs=1e-12
        )


def test_hand_made_values():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.35])
    # ranks: 0.8 (+), 0.4 (-,-), 0.35 (+,+), 0.1 (-); precision at each recall step:
    # recall 1/3 at precision 1, recall 1 at precision 3/5  -> AP = 1/3 + 2/3 * 3/5
    assert average_precision(labels, scores) == pytest.approx(1 / 3 + 2 / 3 * 3 / 5)
    # pairs (pos, neg): 0.8 beats all 3; each 0.35 beats 0.1 only: (3 + 1 + 1) / 9
    assert roc_auc(labels, scores) == pytest.approx(5 / 9)
    assert best_dice(labels, scores) == pytest.approx((2 * 3 / (5 + 3), 0.35))
    perfect = labels.astype(float)
    assert roc_auc(labels, perfect) == 1.0
    assert average_precision(labels, perfect) == 1.0
    assert best_dice(labels, perfect) == (1.0, 1.0)
    assert roc_auc(labels, -perfect) == 0.0


def test_undefined_metrics_are_nan():
    negatives = np.zeros(10, bool)
    scores = np.linspace(0, 1, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(sk.roc_auc_score(negatives, scores))  # sklearn agrees for AUROC
    assert np.isnan(roc_auc(negatives, scores))
    assert np.isnan(roc_auc(~negatives, scores))
    assert np.isnan(average_precision(negatives, scores))
    assert all(np.isnan(best_dice(negatives, scores)))
    assert dice_at(negatives, scores, 0.5) == 0.0  # 5 false positives, no positives
    assert np.isnan(dice_at(negatives, scores, 2.0))  # both empty
    fpr, tpr, _ = roc_curve(negatives, scores)
    assert np.isnan(tpr).all() and fpr[-1] == 1.0


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ParameterError, match=r"shape \(3,\) but scores \(4,\)"):
        roc_auc(np.zeros(3), np.zeros(4))
    with pytest.raises(ParameterError, match="values other than 0 and 1"):
        roc_auc(np.array([0, 2]), np.zeros(2))
    with pytest.raises(ParameterError, match="1 score"):
        average_precision(np.array([0, 1]), np.array([0.5, np.nan]))
