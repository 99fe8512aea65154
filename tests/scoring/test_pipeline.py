"""score_volume: geometry, background, batching, errors (the inferer: test_inferer)."""

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.errors import ParameterError, ScorerError
from anomaly_maps.preprocessing import foreground_mask
from anomaly_maps.scoring import (
    reconstruction,  # noqa: F401  (registers "rec")
    score_volume,
)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def test_map_on_scan_grid_with_zero_background(checkpoint, tiny_volume):
    [result] = score_volume(tiny_volume, checkpoint, [("rec", {})])
    assert result.map.shape == tiny_volume.shape
    assert result.map.dtype == np.float32
    fg = foreground_mask(tiny_volume.data, checkpoint.preprocessing.foreground_fraction)
    assert np.all(result.map[~fg] == 0)
    assert result.map[fg].mean() > 0
    assert result.slice_scores.shape == (tiny_volume.shape[2],)  # axial, RAS-ish oblique file
    scored = result.slice_scores[result.slice_scores != 0]
    assert result.volume_score == pytest.approx(scored.mean(), rel=1e-6)
    assert result.params == {"norm": "l1", "sigma": 0.0}


def test_batch_size_does_not_change_results(checkpoint, tiny_volume):
    [a] = score_volume(tiny_volume, checkpoint, [("rec", {"sigma": 1.0})], batch_size=1)
    [b] = score_volume(tiny_volume, checkpoint, [("rec", {"sigma": 1.0})], batch_size=64)
    np.testing.assert_allclose(a.map, b.map, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.slice_scores, b.slice_scores, rtol=1e-5, atol=1e-7)


def test_errors_name_the_problem(checkpoint, tiny_volume):
    with pytest.raises(ScorerError, match="unknown scorer 'nope'"):
        score_volume(tiny_volume, checkpoint, [("nope", {})])
    with pytest.raises(ParameterError, match=r"sigma=-1\.0 for scorer 'rec'"):
        score_volume(tiny_volume, checkpoint, [("rec", {"sigma": -1.0})])
    with pytest.raises(ParameterError, match="unknown parameter"):
        score_volume(tiny_volume, checkpoint, [("rec", {"sigmaa": 1.0})])
