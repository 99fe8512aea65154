"""Tests of the input-gradient scorers (seed 000) and the ceVAE combination (seed 003).

SmoothGrad draws are checked against the per-copy reference in test_references.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch.distributions import Normal, kl_divergence

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import get_scorer
from anomaly_maps.scoring import gradients as _gradients  # noqa: F401 (registers)


def _score(name, models, x, pos, seed=0, **params):
    info = get_scorer(name)
    return info(
        models,
        x,
        position=pos,
        generator=torch.Generator().manual_seed(seed),
        **info.resolve_params(params),
    )


def _plain_gradient(model, x, term):
    """|d term / d x| of each slice alone: torch.distributions densities, z = mu, autograd."""
    grads = []
    for b in range(x.shape[0]):
        x1 = x[b : b + 1].clone().requires_grad_(True)
        mu, logvar = model.encode(x1)
        kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum()
        nll = -Normal(model.decode(mu), model.config.likelihood_scale).log_prob(x1).sum()
        loss = {"kl": kl, "rec": nll, "elbo": nll + kl}[term]
        (grad,) = torch.autograd.grad(loss, x1)
        grads.append(grad[0, 0].abs())
    return torch.stack(grads).double().numpy()


def _blur(maps, sigma):
    return np.stack([gaussian_filter(m, sigma, mode="mirror") for m in maps])


PLAIN = {"n_smooth": 1, "noise": 0.0}  # one copy without noise: the plain gradient


@pytest.mark.parametrize(
    ("name", "term", "kind"),
    [("rec_grad", "rec", "vae"), ("kl_grad", "kl", "cevae"), ("elbo_grad", "elbo", "vae")],
)
def test_plain_gradient_equals_single_slice_autograd(tiny_models, tiny_batch, name, term, kind):
    x, pos = tiny_batch
    params = {**PLAIN, "sigma": 1.0} | ({} if term == "kl" else {"posterior": "mean"})
    result = _score(name, tiny_models[kind], x, pos, **params)
    expected = _blur(_plain_gradient(tiny_models[kind][kind], x, term), 1.0)
    np.testing.assert_allclose(result.pixel.numpy(), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.slice_score.numpy(), expected.mean((1, 2)), rtol=1e-4)
    assert (result.pixel > 0).all()


def test_cevae_combined_is_error_times_normalised_gradient(tiny_models, tiny_batch):
    model = tiny_models["cevae"]["cevae"]
    x, pos = tiny_batch
    result = _score("cevae_combined", tiny_models["cevae"], x, pos, **PLAIN)
    grad = _plain_gradient(model, x, "kl")
    with torch.no_grad():
        rec = ((x - model.decode(model.encode(x)[0])) ** 2)[:, 0].double().numpy()
    for b in range(x.shape[0]):
        norm = (grad[b] - grad[b].min()) / (grad[b].max() - grad[b].min())
        expected = gaussian_filter(norm, 3.0, mode="mirror") * rec[b]
        np.testing.assert_allclose(result.pixel[b].numpy(), expected, rtol=1e-4, atol=1e-7)


def test_one_forward_over_stacked_copies(tiny_models, tiny_batch):
    """All SmoothGrad copies go through the encoder in one batch of n * B."""
    model = tiny_models["vae"]["vae"]
    x, pos = tiny_batch
    calls = []
    handle = model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        _score("elbo_grad", tiny_models["vae"], x, pos, n_smooth=4)
    finally:
        handle.remove()
    assert calls == [4 * x.shape[0]]


@pytest.mark.parametrize("name", ["rec_grad", "kl_grad", "elbo_grad", "cevae_combined"])
def test_reproducible_and_works_without_grad_mode(tiny_models, tiny_batch, name):
    x, pos = tiny_batch
    models = tiny_models["vae"]
    first = _score(name, models, x, pos, seed=5, n_smooth=2)
    with torch.no_grad():
        second = _score(name, models, x, pos, seed=5, n_smooth=2)
    with torch.inference_mode():
        third = _score(name, models, x, pos, seed=5, n_smooth=2)
    other = _score(name, models, x, pos, seed=6, n_smooth=2)
    torch.testing.assert_close(first.pixel, second.pixel, rtol=0, atol=0)
    torch.testing.assert_close(first.pixel, third.pixel, rtol=0, atol=0)
    assert not torch.equal(first.pixel, other.pixel)
    assert not first.pixel.requires_grad
    assert all(p.grad is None for p in models["vae"].parameters())


def test_plain_gradient_without_noise_ignores_seed(tiny_models, tiny_batch):
    x, pos = tiny_batch
    a = _score("kl_grad", tiny_models["vae"], x, pos, seed=1, n_smooth=1, noise=0.0)
    b = _score("kl_grad", tiny_models["vae"], x, pos, seed=2, n_smooth=1, noise=0.0)
    torch.testing.assert_close(a.pixel, b.pixel, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("kl_grad", {"n_smooth": 0}),
        ("kl_grad", {"n_smooth": 500}),
        ("kl_grad", {"noise": -0.1}),
        ("kl_grad", {"noise": 1.5}),
        ("kl_grad", {"posterior": "mean"}),  # KL is analytic, no z
        ("rec_grad", {"posterior": "mode"}),
        ("elbo_grad", {"sigma": -1.0}),
        ("elbo_grad", {"abs_first": "yes"}),
        ("cevae_combined", {"norm": "l0"}),
    ],
)
def test_params_out_of_range_rejected(name, params):
    with pytest.raises(ParameterError):
        get_scorer(name).resolve_params(params)


def test_registry_entries():
    for name in ("rec_grad", "kl_grad", "elbo_grad", "cevae_combined"):
        info = get_scorer(name)
        assert info.fits(["vae"])
        assert info.fits(["cevae"])
        assert not info.fits(["dae"])
    assert get_scorer("cevae_combined").seed.startswith("003")
    assert get_scorer("elbo_grad").resolve_params()["n_smooth"] == 20
