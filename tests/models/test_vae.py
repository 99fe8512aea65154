"""Tests of the convolutional VAE (seed 000) and its log-densities (seed 004)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import distributions as D

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import build_model, config_from_dict, model_presets
from anomaly_maps.models.vae import VAE, VAEConfig, VAEOutput

TINY = {"size": 16, "widths": (8, 16), "latent_dim": 8}


def blobs(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth Gaussian blobs in [0, 1] with random centres and radii, ``(n, 1, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, 1, 1, generator=g) * 0.5 + 0.25
    radius = torch.rand(n, 1, 1, generator=g) * 0.15 + 0.15
    axis = (torch.arange(size) + 0.5) / size
    d2 = (axis[:, None] - centre[:, 0]) ** 2 + (axis[None, :] - centre[:, 1]) ** 2
    return torch.exp(-d2 / (2 * radius**2)).unsqueeze(1)


@pytest.fixture
def model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(**TINY, likelihood_scale=0.1))


def test_shapes_of_all_parts(model: VAE) -> None:
    x = blobs(3)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 8)
    z = model.reparameterize(mu, logvar)
    assert z.shape == (3, 8)
    assert model.decode(z).shape == x.shape
    out = model(x)
    assert isinstance(out, VAEOutput)
    assert out.x_hat.shape == x.shape and out.z.shape == (3, 8)
    assert model.reconstruction_loss(x, out.x_hat).shape == x.shape
    for per_slice in (
        model.kl_loss(mu, logvar),
        model.log_likelihood(x, out.x_hat),
        model.log_prior(z),
        model.log_posterior(z, mu, logvar),
        model.elbo(x),
    ):
        assert per_slice.shape == (3,)


def test_multichannel_128() -> None:
    model = VAE(VAEConfig(size=128, in_channels=2, widths=(4, 4, 4), latent_dim=4))
    out = model(torch.rand(2, 2, 128, 128), sample=False)
    assert out.x_hat.shape == (2, 2, 128, 128)


def test_preset_is_the_five_layer_64px_network() -> None:
    config = model_presets("vae")["zimmerer2019"]
    assert (config.size, config.latent_dim, config.beta) == (64, 1024, 1.0)
    model = build_model(config)
    assert isinstance(model, VAE)
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == len(deconvs) == 5
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in model.encoder) == 4
    mu, _ = model.encode(torch.rand(1, 1, 64, 64))
    assert mu.shape == (1, 1024)


def test_config_round_trip_through_json() -> None:
    config = VAEConfig(**TINY, beta=0.5, recon="l1", likelihood_scale=0.2)
    data = json.loads(json.dumps(config.to_dict()))
    assert VAEConfig.from_dict(data) == config
    assert config_from_dict("vae", data) == config


def test_config_unknown_key_is_an_error() -> None:
    with pytest.raises(ParameterError, match=r"vae.*\['z_dim'\]"):
        VAEConfig.from_dict({**VAEConfig().to_dict(), "z_dim": 4})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 48}, r"size=48 for model 'vae': expected an int that is a power of two"),
        ({"size": 8, "widths": (4,)}, r"size=8 .*power of two >= 16"),
        ({"size": 16, "widths": (4, 4, 4, 4)}, r"size=16 .*too small for 4 stages.*size >= 32"),
        ({"widths": ()}, r"widths=\(\) for model 'vae': expected a non-empty tuple"),
        ({"widths": (8, 0)}, r"widths=\(8, 0\)"),
        ({"in_channels": 0}, r"in_channels=0 for model 'vae': expected an int >= 1"),
        ({"latent_dim": 0}, r"latent_dim=0 for model 'vae': expected an int >= 1"),
        ({"latent_dim": 2.5}, r"latent_dim=2.5"),
        ({"beta": -0.1}, r"beta=-0.1 for model 'vae': expected a finite float >= 0"),
        ({"beta": math.nan}, r"beta=nan"),
        ({"recon": "l3"}, r"recon='l3' for model 'vae': expected one of \['l2', 'l1'\]"),
        ({"likelihood_scale": 0.0}, r"likelihood_scale=0.0 .*expected a finite float > 0"),
    ],
)
def test_bad_config_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        VAEConfig(**{**TINY, **changes})


def test_wrong_input_shape_is_refused(model: VAE) -> None:
    with pytest.raises(
        ParameterError, match=r"shape \(2, 1, 32, 32\).*expected .*\(B, 1, 16, 16\)"
    ):
        model.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ParameterError, match=r"expected float codes of shape \(B, 8\)"):
        model.decode(torch.rand(2, 7))


def test_training_loss_falls(model: VAE) -> None:
    x = blobs(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.training_loss(x)
        optimiser.zero_grad()
        loss.total.backward()
        optimiser.step()
        losses.append(loss.total.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]


def test_training_loss_is_rec_plus_beta_kl() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(**TINY, beta=0.3))
    x = blobs(4)
    loss = model.training_loss(x)
    assert set(loss.terms) == {"rec", "kl"}
    assert all(t.ndim == 0 and not t.requires_grad for t in loss.terms.values())
    torch.testing.assert_close(loss.total.detach(), loss.terms["rec"] + 0.3 * loss.terms["kl"])
    # Same noise, same sample: the total is the batch mean of -log p(x|z) + beta KL - const.
    torch.manual_seed(1)
    total = model.training_loss(x).total
    torch.manual_seed(1)
    out = model(x)
    expected = -model.log_likelihood(x, out.x_hat) + 0.3 * model.kl_loss(out.mu, out.logvar)
    torch.testing.assert_close(total, (expected - x[0].numel() * model.log_norm).mean())


@pytest.mark.parametrize(("recon", "dist"), [("l2", D.Normal), ("l1", D.Laplace)])
def test_log_likelihood_is_a_proper_density(recon: str, dist: type) -> None:
    model = VAE(VAEConfig(**TINY, recon=recon, likelihood_scale=0.3))
    x, x_hat = blobs(3), torch.randn(3, 1, 16, 16)
    expected = dist(x_hat, 0.3).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(model.log_likelihood(x, x_hat), expected)
    # reconstruction_loss is the per-pixel NLL without its constant.
    nll = -dist(x_hat, 0.3).log_prob(x)
    torch.testing.assert_close(
        model.reconstruction_loss(x, x_hat), nll - model.log_norm, rtol=1e-5, atol=1e-5
    )


def test_log_prior_and_posterior_match_torch_distributions(model: VAE) -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    z = torch.randn(5, 8, generator=g)
    prior = D.Normal(0.0, 1.0).log_prob(z).sum(-1)
    posterior = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(model.log_prior(z), prior)
    torch.testing.assert_close(model.log_posterior(z, mu, logvar), posterior)
    kl = D.kl_divergence(D.Normal(mu, (0.5 * logvar).exp()), D.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(model.kl_loss(mu, logvar), kl)


def test_kl_matches_monte_carlo_of_log_posterior_minus_log_prior(model: VAE) -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 8, generator=g), torch.rand(4, 8, generator=g) * 2 - 1.5
    n = 20_000
    z = model.reparameterize(mu.expand(n, 4, 8), logvar.expand(n, 4, 8), generator=g)
    log_ratio = model.log_posterior(z, mu, logvar) - model.log_prior(z)  # (n, 4)
    estimate, stderr = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n)
    assert torch.all((estimate - model.kl_loss(mu, logvar)).abs() < 4 * stderr)


def test_reparameterize_is_reproducible_with_a_generator(model: VAE) -> None:
    mu, logvar = torch.zeros(2, 8), torch.zeros(2, 8)
    a = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(3))
    b = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(3))
    c = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stacked_samples_of_one_slice_equal_the_single_slice_result(model: VAE) -> None:
    x = blobs(2)
    stacked = x.repeat_interleave(5, dim=0)  # 5 copies of each slice
    mu, logvar = model.encode(stacked)
    mu_1, logvar_1 = model.encode(x)
    torch.testing.assert_close(mu, mu_1.repeat_interleave(5, dim=0))
    torch.testing.assert_close(logvar, logvar_1.repeat_interleave(5, dim=0))
    z = model.reparameterize(mu, logvar)
    assert not torch.equal(z[0], z[1])  # independent posterior samples per copy
    x_hat = model.decode(z)
    torch.testing.assert_close(x_hat[:1], model.decode(z[:1]))


@pytest.mark.parametrize("term", ["rec", "kl", "elbo"])
def test_input_gradients_exist(model: VAE, term: str) -> None:
    x = blobs(3).requires_grad_(True)
    out = model(x, sample=False)
    value = {
        "rec": lambda: model.reconstruction_loss(x, out.x_hat).sum(),
        "kl": lambda: model.kl_loss(out.mu, out.logvar).sum(),
        "elbo": lambda: model.elbo(x, sample=False).sum(),
    }[term]()
    (grad,) = torch.autograd.grad(value, x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all() and (grad.abs().flatten(1).sum(1) > 0).all()


def test_elbo_is_log_likelihood_minus_kl(model: VAE) -> None:
    x = blobs(3)
    out = model(x, sample=False)
    expected = model.log_likelihood(x, out.x_hat) - model.kl_loss(out.mu, out.logvar)
    torch.testing.assert_close(model.elbo(x, sample=False), expected)
