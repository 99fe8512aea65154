"""Several scorers on one batch share the model's deterministic passes."""

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.scoring import score_volume
from anomaly_maps.scoring._ops import shared, sharing_passes

SCORERS = [("rec", {}), ("sample_std", {"n_samples": 3}), ("kl", {}), ("elbo", {"n_samples": 2})]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def _encoder_calls(checkpoint, run) -> int:
    calls = []
    handle = checkpoint.model.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        run()
    finally:
        handle.remove()
    return len(calls)


def test_one_encoder_pass_per_batch_for_all_scorers(checkpoint, tiny_volume):
    together = []
    n = _encoder_calls(
        checkpoint,
        lambda: together.extend(score_volume(tiny_volume, checkpoint, SCORERS, batch_size=4)),
    )
    n_batches = -(-int(together[0].scored.sum()) // 4)
    assert n == n_batches
    # Sharing changes nothing, and each scorer draws from its own generator: alone,
    # every scorer gives the same maps and scores.
    for result, (name, params) in zip(together, SCORERS, strict=True):
        [alone] = score_volume(tiny_volume, checkpoint, [(name, params)], batch_size=4)
        np.testing.assert_array_equal(result.slice_scores, alone.slice_scores)
        if alone.map is not None:
            np.testing.assert_array_equal(result.map, alone.map)


def test_nothing_is_shared_outside_the_block_or_with_gradients():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    x = torch.zeros(1)
    assert (shared("k", compute, x), shared("k", compute, x)) == (1, 2)
    with sharing_passes(), torch.no_grad():
        assert shared("k", compute, x) == shared("k", compute, x) == 3
        assert shared("k", compute, torch.zeros(1)) == 4  # another tensor: recomputed
        assert shared("other", compute, x) == 5
    with sharing_passes(), torch.enable_grad():
        assert shared("k", compute, x) != shared("k", compute, x)
