"""Tests of the sampling-deviation scorer ``sample_std`` (vs. its reference: test_references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import get_scorer
from anomaly_maps.scoring import sampling as _sampling  # noqa: F401 (registers)


def _score(models, x, pos, seed=0, **params):
    info = get_scorer("sample_std")
    return info(
        models,
        x,
        position=pos,
        generator=torch.Generator().manual_seed(seed),
        **info.resolve_params(params),
    )


def test_one_decode_call(tiny_models, tiny_batch):
    model = tiny_models["vae"]["vae"]
    x, pos = tiny_batch
    calls = []
    handle = model.decoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        _score(tiny_models["vae"], x, pos, n_samples=4)
    finally:
        handle.remove()
    assert calls == [4 * x.shape[0]]


def test_smoothing_equals_scipy_mirror(tiny_models, tiny_batch):
    x, pos = tiny_batch
    raw = _score(tiny_models["vae"], x, pos).pixel
    smooth = _score(tiny_models["vae"], x, pos, sigma=2.0).pixel
    for b in range(x.shape[0]):
        expected = gaussian_filter(raw[b].double().numpy(), 2.0, mode="mirror")
        np.testing.assert_allclose(smooth[b].numpy(), expected, atol=1e-6)


def test_reproducible_with_seed_and_under_no_grad(tiny_models, tiny_batch):
    x, pos = tiny_batch
    first = _score(tiny_models["vae"], x, pos, seed=3)
    with torch.no_grad():
        second = _score(tiny_models["vae"], x, pos, seed=3)
    other = _score(tiny_models["vae"], x, pos, seed=4)
    torch.testing.assert_close(first.pixel, second.pixel, rtol=0, atol=0)
    assert not torch.allclose(first.pixel, other.pixel)
    assert (first.pixel > 0).all()


@pytest.mark.parametrize(
    "params", [{"n_samples": 1}, {"n_samples": 1000}, {"n_samples": 2.5}, {"sigma": -1.0}]
)
def test_params_out_of_range_rejected(params):
    with pytest.raises(ParameterError):
        get_scorer("sample_std").resolve_params(params)


def test_registry_entry():
    info = get_scorer("sample_std")
    assert info.fits(["cevae"])
    assert not info.fits(["dae"])
    assert info.resolve_params() == {"n_samples": 8, "sigma": 0.0}
