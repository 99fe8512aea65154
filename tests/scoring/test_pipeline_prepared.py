"""score_volume on a volume prepared beforehand (as the readers of many scans do)."""

import dataclasses

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.errors import ParameterError
from anomaly_maps.io import Volume
from anomaly_maps.scoring.pipeline import prepare_volume, score_volume

SCORERS = [("rec", {}), ("elbo_grad", {"n_smooth": 2})]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu")


def test_a_prepared_volume_gives_the_same_results(checkpoint, tiny_volume):
    prepared = prepare_volume(tiny_volume, checkpoint.preprocessing)
    assert len(prepared.slices) == int(prepared.stack.mask.any(axis=(1, 2)).sum()) > 0
    plain = score_volume(tiny_volume, checkpoint, SCORERS)
    given = score_volume(tiny_volume, checkpoint, SCORERS, prepared=prepared)
    for a, b in zip(plain, given, strict=True):
        assert np.array_equal(a.map, b.map) and np.array_equal(a.slice_scores, b.slice_scores)
        assert (a.volume_score, a.precision) == (b.volume_score, b.precision)


def test_a_volume_prepared_otherwise_is_refused(checkpoint, tiny_volume):
    other = dataclasses.replace(checkpoint.preprocessing, size=8)
    cropped = Volume(tiny_volume.data[:-1].copy(), tiny_volume.affine)
    for prepared in (prepare_volume(tiny_volume, other),
                     prepare_volume(cropped, checkpoint.preprocessing)):  # fmt: skip
        with pytest.raises(ParameterError, match="prepared: made from another volume"):
            score_volume(tiny_volume, checkpoint, SCORERS, prepared=prepared)
