"""VAE + TV restoration (seed 001, Chen et al.) against a per-slice optimisation."""

from __future__ import annotations

import itertools

import pytest
import torch

from anomaly_maps.scoring import restoration as rs

KINDS = ["vae", "cevae"]
PARAMS = {"n_steps": 10, "lr": 5e-3, "tv_weight": 1.8}


def _naive_restore(model, y, n_steps, lr, tv_weight):
    """One slice: explicit ELBO and TV, gradient steps via .backward()."""
    x = y.clone()
    for _ in range(n_steps):
        x = x.detach().requires_grad_(True)
        mu, logvar = model.encode(x)
        x_hat = model.decode(mu)
        log_lik = torch.distributions.Normal(x_hat, model.config.likelihood_scale).log_prob(x)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum()
        d = x - y
        tv = (d[..., 1:, :] - d[..., :-1, :]).abs().sum() + (d[..., 1:] - d[..., :-1]).abs().sum()
        loss = -(log_lik.sum() - kl) + tv_weight * tv
        model.zero_grad(set_to_none=True)
        loss.backward()
        x = x - lr * model.config.likelihood_scale**2 * x.grad  # Gaussian: step lr * s^2
    model.zero_grad(set_to_none=True)
    return x.detach()


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_per_slice_optimisation(tiny_models, tiny_batch, kind):
    models = tiny_models[kind]
    x, position = tiny_batch
    with torch.no_grad():  # the scorer must enable gradients itself
        result = rs.vae_tv_restoration(
            models, x, position=position, generator=torch.Generator(), **PARAMS
        )
    assert all(p.grad is None for p in models[kind].parameters())
    naive = torch.cat([_naive_restore(models[kind], x[b : b + 1], **PARAMS) for b in range(3)])
    torch.testing.assert_close(result.pixel, (x - naive).abs()[:, 0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(result.slice_score, result.pixel.flatten(1).mean(1))
    assert float(result.pixel.max()) > 0


def test_zero_steps_gives_zero_map(tiny_models, tiny_batch):
    x, position = tiny_batch
    result = rs.vae_tv_restoration(
        tiny_models["vae"], x, position=position, generator=torch.Generator(), n_steps=0
    )
    assert result.pixel.shape == (3, 16, 16)
    assert bool((result.pixel == 0).all()) and bool((result.slice_score == 0).all())


@pytest.mark.parametrize("kind", KINDS)
def test_more_steps_lower_the_objective(tiny_models, tiny_batch, kind):
    model = tiny_models[kind][kind]
    y, _ = tiny_batch
    losses = []
    for n_steps in (0, 2, 5, 20):
        restored = rs.restore(model, y, n_steps=n_steps, lr=5e-3, tv_weight=1.8)
        with torch.no_grad():
            losses.append(rs.restoration_loss(model, restored, y, 1.8))
    for before, after in itertools.pairwise(losses):
        assert bool((after < before).all())


def test_total_variation_matches_definition():
    d = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    # horizontal: |1-0|+|3-1|+0+0 = 3; vertical: |2-0|+|2-1|+|2-3| = 4
    torch.testing.assert_close(rs.total_variation(d), torch.tensor([7.0]))


def test_registered(tiny_models, tiny_batch):
    from anomaly_maps.scoring import get_scorer

    info = get_scorer("vae_tv_restoration")
    assert info.fits(["cevae"]) and not info.fits(["dae"])
    x, position = tiny_batch
    params = info.resolve_params({"n_steps": 3})
    result = info(tiny_models["vae"], x, position=position, generator=torch.Generator(), **params)
    assert result.pixel.shape == (3, 16, 16)


@pytest.mark.parametrize(("recon", "expected"), [("l2", 0.25**2), ("l1", 0.25)])
def test_step_scale_undoes_the_likelihood_scale(recon, expected):
    """The ELBO's input gradient grows as 1/s^2 (Gaussian) or 1/s (Laplace)."""
    from anomaly_maps.models.vae import VAE, VAEConfig

    config = VAEConfig(size=16, widths=(8, 16), latent_dim=4, recon=recon, likelihood_scale=0.25)
    assert rs.step_scale(VAE(config)) == pytest.approx(expected)
