"""Tests of the reconstruction-error scorer ``rec`` (batched vs. reference: test_references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import get_scorer
from anomaly_maps.scoring import reconstruction as _reconstruction  # noqa: F401 (registers)

KINDS = ["vae", "cevae", "dae", "vqvae+prior"]


def _score(models, x, pos, **params):
    info = get_scorer("rec")
    return info(
        models,
        x,
        position=pos,
        generator=torch.Generator().manual_seed(0),
        **info.resolve_params(params),
    )


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_map_is_the_distance_to_the_mean_reconstruction(tiny_models, tiny_batch, norm):
    """VAEs decode the posterior mean; the DAE reconstructs the uncorrupted input."""
    x, pos = tiny_batch
    vae, dae = tiny_models["vae"]["vae"], tiny_models["dae"]["dae"]
    with torch.no_grad():
        for models, x_hat in [
            (tiny_models["vae"], vae.decode(vae.encode(x)[0])),
            (tiny_models["dae"], dae(x)),
        ]:
            diff = (x - x_hat)[:, 0]
            expected = diff.abs() if norm == "l1" else diff**2
            result = _score(models, x, pos, norm=norm)
            torch.testing.assert_close(result.pixel, expected, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(result.slice_score, expected.mean((1, 2)))


def test_smoothing_equals_scipy_mirror(tiny_models, tiny_batch):
    x, pos = tiny_batch
    raw = _score(tiny_models["vae"], x, pos).pixel
    smooth = _score(tiny_models["vae"], x, pos, sigma=1.5).pixel
    for b in range(x.shape[0]):
        expected = gaussian_filter(raw[b].double().numpy(), 1.5, mode="mirror")
        np.testing.assert_allclose(smooth[b].numpy(), expected, atol=1e-6)
    assert not torch.allclose(raw, smooth)


@pytest.mark.parametrize(
    "params", [{"norm": "l3"}, {"sigma": -0.5}, {"sigma": 100.0}, {"n_samples": 4}]
)
def test_params_out_of_range_rejected(params):
    with pytest.raises(ParameterError):
        get_scorer("rec").resolve_params(params)


def test_registry_entry():
    info = get_scorer("rec")
    assert info.fits(["dae"])
    assert info.fits(["vqvae", "prior"])
    assert info.seed.startswith("000")
    assert info.resolve_params() == {"norm": "l1", "sigma": 0.0}


def test_deterministic_and_under_no_grad(tiny_models, tiny_batch):
    x, pos = tiny_batch
    first = _score(tiny_models["vae"], x, pos, sigma=1.0)
    with torch.no_grad():
        second = _score(tiny_models["vae"], x, pos, sigma=1.0)
    torch.testing.assert_close(first.pixel, second.pixel, rtol=0, atol=0)
    assert not first.pixel.requires_grad


@pytest.mark.parametrize("kind", KINDS)
def test_lesion_raises_map_inside_square(tiny_models, tiny_batch, kind):
    """A bright square raises the error inside it: the untrained model cannot follow it."""
    x, pos = tiny_batch
    lesion = x.clone()
    lesion[0, 0, 5:10, 5:10] += 2.0
    clean = _score(tiny_models[kind], x, pos).pixel[0]
    sick = _score(tiny_models[kind], lesion, pos).pixel[0]
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[5:10, 5:10] = True
    gain = sick - clean
    assert gain[inside].mean() > 0.5
    assert gain[inside].mean() > 5 * gain[~inside].abs().mean()
    # the map ranks the lesion first
    assert sick[inside].mean() > sick[~inside].mean()
