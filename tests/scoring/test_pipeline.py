"""score_volume: geometry, background, batching, OOM back-off, errors."""

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.errors import ParameterError, ScorerError
from anomaly_maps.preprocessing import foreground_mask
from anomaly_maps.scoring import (
    reconstruction,  # noqa: F401  (registers "rec")
    score_volume,
)
from anomaly_maps.scoring.pipeline import iter_batches_adaptive


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


def test_out_of_memory_halves_the_batch():
    seen = []

    def run(batch):
        seen.append(batch.stop - batch.start)
        if batch.stop - batch.start > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return batch.start

    done = list(iter_batches_adaptive(10, 16, run, torch.device("cuda")))
    assert seen[:3] == [10, 5, 2]
    assert [b.start for b, _ in done] == [0, 2, 4, 6, 8]
    with pytest.raises(RuntimeError, match="boom"):  # other errors are not swallowed
        list(iter_batches_adaptive(4, 4, lambda b: (_ for _ in ()).throw(RuntimeError("boom")),
                                   torch.device("cuda")))  # fmt: skip
    with pytest.raises(torch.cuda.OutOfMemoryError):  # on the CPU, OOM is not retried
        list(iter_batches_adaptive(10, 16, run, torch.device("cpu")))
