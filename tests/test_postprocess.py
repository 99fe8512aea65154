"""Normalisation, calibration, volume-score aggregates and cancelling of score_volume."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.errors import Cancelled, ParameterError, ScorerError
from anomaly_maps.scoring import score_volume
from anomaly_maps.scoring.calibration import (
    LEVELS,
    Calibration,
    calibrate,
    calibrate_scorers,
    calibrations_from_results,
    find_calibration,
    with_calibration,
)
from anomaly_maps.scoring.pipeline import VOLUME_SCORES, volume_score_of
from anomaly_maps.scoring.postprocess import NORMALIZATIONS, normalize_map, normalize_result


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def _calibration(pixel, slices=None) -> Calibration:
    pixel = np.asarray(pixel, np.float64)
    slices = pixel if slices is None else np.asarray(slices, np.float64)
    return Calibration(
        scorer="rec",
        params={"norm": "l1", "sigma": 0.0},
        levels=LEVELS,
        pixel_quantiles=tuple(np.quantile(pixel, LEVELS)),
        slice_quantiles=tuple(np.quantile(slices, LEVELS)),
        n_volumes=1,
    )


def test_every_method_keeps_the_ranking_and_zeroes_the_background():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, size=(6, 7, 8)).astype(np.float32)
    fg = rng.random(values.shape) < 0.7
    cal = _calibration(rng.gamma(2.0, size=1000))
    for method in NORMALIZATIONS:
        out = normalize_map(values, method, foreground=fg, calibration=cal)
        assert out.dtype == np.float32 and out.shape == values.shape
        assert np.all(out[~fg] == 0)
        order = np.argsort(values[fg], kind="stable")
        assert np.all(np.diff(out[fg][order]) >= 0), method  # monotone inside the brain


def test_volume_method_puts_median_at_0_and_p99_at_1():
    values = np.arange(1001, dtype=np.float32)  # quantiles are exact on a ramp
    out = normalize_map(values, "volume")
    assert out[500] == pytest.approx(0.0, abs=1e-6)
    assert out[990] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(out, (values - 500) / 490, rtol=1e-6, atol=1e-6)


def test_model_and_mood_use_the_healthy_statistics():
    healthy = np.arange(1001, dtype=np.float64)
    cal = _calibration(healthy)
    values = np.array([500.0, 990.0, 1480.0, 0.0], np.float32)
    np.testing.assert_allclose(normalize_map(values, "model", calibration=cal),
                               [0.0, 1.0, 2.0, -500 / 490], rtol=1e-5, atol=1e-6)  # fmt: skip
    mood = normalize_map(values, "mood", calibration=cal)
    below = 0.5 / (1 + 500 / 490)
    np.testing.assert_allclose(mood, [0.5, 0.75, 0.5 + 0.5 * 2 / 3, below], rtol=1e-5)
    # Every brain voxel stays above the background's 0, however low its value.
    brain = np.array([-1e6, 0.0], np.float32)
    low = normalize_map(brain, "mood", foreground=np.array([True, False]), calibration=cal)
    assert low[0] > 0 and low[1] == 0
    strong = normalize_map(np.array([1e4, 1e5], np.float32), "mood", calibration=cal)
    assert np.all(strong < 1) and strong[0] < strong[1]  # no saturation into ties


def test_normalisation_errors_say_what_to_do():
    with pytest.raises(ParameterError, match="anomaly-maps calibrate"):
        normalize_map(np.zeros(3), "model")
    with pytest.raises(ParameterError, match="expected one of"):
        normalize_map(np.zeros(3), "zscore")
    with pytest.raises(ParameterError, match="shape"):
        normalize_map(np.zeros(3), "none", foreground=np.ones(4, bool))


def test_volume_score_aggregates(checkpoint, tiny_volume):
    results = {
        agg: score_volume(tiny_volume, checkpoint, [("rec", {})], volume_score=agg)[0]
        for agg in VOLUME_SCORES
    }
    r = results["slice_mean"]
    inside = r.map[r.foreground]
    assert r.volume_score == pytest.approx(r.slice_scores[r.scored].mean(), rel=1e-6)
    assert results["slice_max"].volume_score == pytest.approx(r.slice_scores.max(), rel=1e-6)
    assert results["map_mean"].volume_score == pytest.approx(inside.mean(), rel=1e-5)
    assert results["map_p99"].volume_score == pytest.approx(np.percentile(inside, 99), rel=1e-5)
    assert r.scored.sum() == np.count_nonzero(r.slice_scores)
    with pytest.raises(ParameterError, match="needs a map"):
        score_volume(tiny_volume, checkpoint, [("kl", {})], volume_score="map_mean")
    with pytest.raises(ParameterError, match="expected one of"):
        volume_score_of("max", np.ones(3), None, np.ones(3, bool))


def test_calibration_quantiles_and_fpr_threshold(checkpoint, tiny_volume):
    cal = calibrate(checkpoint, "rec", {}, [tiny_volume, tiny_volume])
    assert cal.n_volumes == 2 and cal.params == {"norm": "l1", "sigma": 0.0}
    assert np.all(np.diff(cal.pixel_quantiles) >= 0)
    [r] = score_volume(tiny_volume, checkpoint, [("rec", {})])
    healthy = r.map[r.foreground]
    threshold = cal.threshold_for_fpr(0.05)
    assert threshold == pytest.approx(np.quantile(healthy, 0.95), rel=1e-3)  # 2 copies
    assert (healthy > threshold).mean() == pytest.approx(0.05, abs=2 / healthy.size + 1e-3)
    # Normalised by its own healthy statistics, the median goes to 0 and q99 to 1.
    model = normalize_result(r, "model", cal)
    assert model.normalization == "model"
    assert np.quantile(model.map[r.foreground], 0.99) == pytest.approx(1.0, abs=5e-3)
    assert np.median(model.slice_scores[r.scored]) == pytest.approx(0.0, abs=5e-3)
    mood = normalize_result(r, "mood", cal)
    assert mood.map.min() >= 0 and mood.map.max() < 1 and 0 < mood.volume_score < 1
    assert np.all(mood.map[r.foreground] > 0)
    with pytest.raises(ParameterError):
        cal.threshold_for_fpr(0.0)
    with pytest.raises(ScorerError, match="no pixel calibration"):
        calibrate(checkpoint, "kl", {}, [tiny_volume]).threshold_for_fpr(0.01)


def test_calibration_travels_with_the_checkpoint(checkpoint, tiny_volume, tmp_path):
    cal = calibrate(checkpoint, "rec", {"sigma": 1.0}, [tiny_volume])
    assert find_calibration(checkpoint, "rec", {"sigma": 1.0}) is None
    updated = with_calibration(with_calibration(checkpoint, cal), cal)  # replaced, not doubled
    assert len(updated.metrics["calibration"]) == 1
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        updated.models,
        preprocessing=updated.preprocessing,
        metrics=updated.metrics,
    )
    loaded = load_checkpoint(path)
    assert find_calibration(loaded, "rec", {"sigma": 1.0}) == cal
    assert find_calibration(loaded, "rec", {}) is None  # other parameters: no match


def test_a_calibration_from_before_a_parameter_existed_has_its_default(checkpoint):
    """``fpi`` calibrations stored before ``through`` (params {}) were made with through 0."""
    from dataclasses import replace

    old = replace(_calibration([0.1, 0.5, 0.9]), scorer="fpi", params={})
    restoration = with_calibration(checkpoint, old)
    assert find_calibration(restoration, "fpi", {}) == old
    assert find_calibration(restoration, "fpi", {"through": 0.0}) == old
    assert find_calibration(restoration, "fpi", {"through": 2.0}) is None
    new = replace(old, params={"through": 0.0}, n_volumes=2)
    [kept] = with_calibration(restoration, new).records.calibrations  # replaced, not doubled
    assert kept == new
    gone = replace(old, params={"removed_option": 1})  # a parameter the scorer lost
    stale = replace(checkpoint, records=checkpoint.records.with_calibration(gone))
    assert find_calibration(stale, "fpi", {}) is None


def test_should_stop_cancels_after_a_batch(checkpoint, tiny_volume):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return True

    with pytest.raises(Cancelled, match="stopped after 2 of"):
        score_volume(tiny_volume, checkpoint, [("rec", {})], batch_size=2, should_stop=stop)
    assert len(calls) == 1


def test_calibration_finds_the_best_dice_threshold(checkpoint, tiny_volume):
    [r] = score_volume(tiny_volume, checkpoint, [("rec", {})])
    # A label equal to the map's top 2 % of voxels: its best threshold reproduces it.
    cut = np.quantile(r.map[r.foreground], 0.98)
    label = r.map >= cut
    cal = calibrate(checkpoint, "rec", {}, [tiny_volume], labelled=[(tiny_volume, label)])
    assert cal.dice == pytest.approx(1.0)
    assert cal.dice_threshold == pytest.approx(float(r.map[label].min()))
    assert calibrate(checkpoint, "rec", {}, [tiny_volume]).dice_threshold is None


def test_calibrating_scorers_together_equals_one_by_one(checkpoint, tiny_volume):
    scorers = [("rec", {"sigma": 1.0}), ("kl", {})]
    together = calibrate_scorers(checkpoint, scorers, [tiny_volume])
    assert together == [calibrate(checkpoint, n, p, [tiny_volume]) for n, p in scorers]
    assert together[1].pixel_quantiles is None  # kl rates slices only


def test_calibration_from_results_checks_they_match_the_scorers(checkpoint, tiny_volume):
    results = score_volume(tiny_volume, checkpoint, [("rec", {})])
    assert calibrations_from_results([("rec", {})], [results]) == [
        calibrate(checkpoint, "rec", {}, [tiny_volume])
    ]
    with pytest.raises(ScorerError, match="expected results of"):
        calibrations_from_results([("rec", {"sigma": 2.0})], [results])
