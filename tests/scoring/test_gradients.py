"""Tests of the input-gradient scorers (seed 000) and the ceVAE combination (seed 003)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import get_scorer
from anomaly_maps.scoring import gradients as _gradients  # noqa: F401 (registers)

N_SMOOTH = 3
NOISE = 0.1


def _score(name, models, x, pos, seed=0, **params):
    info = get_scorer(name)
    return info(
        models,
        x,
        position=pos,
        generator=torch.Generator().manual_seed(seed),
        **info.resolve_params(params),
    )


def _reference_gradients(model, x, term, seed, posterior="sample"):
    """|d term / d x| per slice and noisy copy, one slice at a time: (n, B, H, W) signed."""
    n, batch = N_SMOOTH, x.shape[0]
    g = torch.Generator().manual_seed(seed)
    eps_in = torch.randn((n, *x.shape), generator=g)
    eps_z = torch.randn((n * batch, model.config.latent_dim), generator=g)
    grads = torch.zeros(n, batch, *x.shape[-2:])
    for b in range(batch):
        span = x[b].max() - x[b].min()
        for k in range(n):
            xk = (x[b : b + 1] + NOISE * span * eps_in[k, b]).detach().requires_grad_(True)
            mu, logvar = model.encode(xk)
            kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()
            if term == "kl":
                loss = kl
            else:
                z = (
                    mu + torch.exp(0.5 * logvar) * eps_z[k * batch + b]
                    if posterior == "sample"
                    else mu
                )
                rec = model.reconstruction_loss(xk, model.decode(z)).sum()
                loss = rec if term == "rec" else rec + kl
            (grad,) = torch.autograd.grad(loss, xk)
            grads[k, b] = grad[0, 0]
    return grads


def _blur(maps, sigma):
    return np.stack([gaussian_filter(m, sigma, mode="mirror") for m in maps.double().numpy()])


@pytest.mark.parametrize(
    ("name", "term", "posterior"),
    [
        ("rec_grad", "rec", "sample"),
        ("rec_grad", "rec", "mean"),
        ("kl_grad", "kl", None),
        ("elbo_grad", "elbo", "sample"),
    ],
)
@pytest.mark.parametrize("abs_first", [False, True])
def test_batched_equals_single_slice_autograd(
    tiny_models, tiny_batch, name, term, posterior, abs_first
):
    kind = "vae" if term != "kl" else "cevae"
    model = tiny_models[kind][kind]
    x, pos = tiny_batch
    params = {"n_smooth": N_SMOOTH, "noise": NOISE, "sigma": 1.0, "abs_first": abs_first}
    if posterior is not None:
        params["posterior"] = posterior
    result = _score(name, tiny_models[kind], x, pos, seed=7, **params)
    grads = _reference_gradients(model, x, term, seed=7, posterior=posterior or "sample")
    magnitude = grads.abs().mean(0) if abs_first else grads.mean(0).abs()
    expected = _blur(magnitude, 1.0)
    np.testing.assert_allclose(result.pixel.numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.slice_score.numpy(), expected.mean((1, 2)), rtol=1e-4)
    assert result.pixel.shape == (3, 16, 16)
    assert (result.pixel > 0).all()


def test_cevae_combined_equals_reference(tiny_models, tiny_batch):
    model = tiny_models["cevae"]["cevae"]
    x, pos = tiny_batch
    result = _score(
        "cevae_combined", tiny_models["cevae"], x, pos, seed=1, n_smooth=N_SMOOTH, noise=NOISE
    )
    grad = _reference_gradients(model, x, "kl", seed=1).mean(0).abs().double().numpy()
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
