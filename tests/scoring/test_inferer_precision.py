"""The inferer's bf16 autocast (within the stated tolerance of float32) and its CUDA path."""

import numpy as np
import pytest
import torch

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import SliceInferer, Slices, get_scorer
from anomaly_maps.scoring.inferer import BF16_TOLERANCE

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _slices(tiny_batch) -> Slices:
    x, position = tiny_batch
    return Slices(x, position, torch.ones(x.shape[0], *x.shape[-2:], dtype=torch.bool),
                  np.arange(x.shape[0]))  # fmt: skip


def _run(models, slices, device="cpu", **kwargs):
    scorers = [(get_scorer(name).fn, {}) for name in ("rec", "kl")]
    return SliceInferer(torch.device(device), batch_size=2, seed=1, **kwargs)(
        models, slices, scorers
    )


def _assert_within(results, reference, **tolerance) -> None:
    for got, want in zip(results, reference, strict=True):
        if want.maps is not None:
            torch.testing.assert_close(got.maps.cpu(), want.maps, **tolerance)
        torch.testing.assert_close(torch.from_numpy(got.scores), torch.from_numpy(want.scores),
                                   **tolerance)  # fmt: skip


def test_bf16_autocast_stays_within_the_stated_tolerance(tiny_models, tiny_batch):
    models, slices = tiny_models["vae"], _slices(tiny_batch)
    reference = _run(models, slices)
    bf16 = _run(models, slices, precision="bf16")
    _assert_within(bf16, reference, **BF16_TOLERANCE)
    assert not torch.equal(bf16[0].maps, reference[0].maps)  # autocast really ran


def test_unknown_precision_is_refused():
    with pytest.raises(ParameterError, match="precision='fp8'"):
        SliceInferer(torch.device("cpu"), precision="fp8")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_cuda_maps_match_the_cpu(tiny_models, tiny_batch, precision):
    """Pinned memory and non-blocking copies give the CPU's maps (float rounding aside;
    bf16 within its stated tolerance)."""
    models, slices = tiny_models["vae"], _slices(tiny_batch)
    reference = _run(models, slices)
    tolerance = BF16_TOLERANCE if precision == "bf16" else {"rtol": 1e-4, "atol": 1e-4}
    try:
        _assert_within(_run(models, slices, "cuda", precision=precision), reference, **tolerance)
    finally:
        for model in models.values():  # the session's models stay on the CPU
            model.cpu()
