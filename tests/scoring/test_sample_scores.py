"""ELBO / KL / reconstruction / IWAE slice scores (seed 004) against torch.distributions.

Batched vs. the per-slice, per-sample reference with the same draws: test_references.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import Normal

from anomaly_maps.scoring import iwae_scores as iw
from anomaly_maps.scoring import sample_scores as ss

KINDS = ["vae", "cevae"]
SCORERS = {
    "elbo": ss.elbo_score,
    "rec_nll": ss.rec_nll_score,
    "iwae": iw.iwae_score,
    "iwae_kl": iw.iwae_kl_score,
    "iwae_rec": iw.iwae_rec_score,
}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _naive(model, x, n_samples: int, seed: int) -> dict[str, list[float]]:
    """Per-slice, per-sample loop with torch.distributions densities and the same noise."""
    eps = torch.randn((n_samples, x.shape[0], model.config.latent_dim), generator=_gen(seed))
    scale = model.config.likelihood_scale
    out: dict[str, list[float]] = {name: [] for name in [*SCORERS, "kl"]}
    with torch.no_grad():
        for b in range(x.shape[0]):
            mu, logvar = model.encode(x[b : b + 1])
            mu, std = mu[0], torch.exp(0.5 * logvar[0])
            kl = torch.distributions.kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum().item()
            lik, pri, post = [], [], []
            for sample in range(n_samples):
                z = mu + std * eps[sample, b]
                x_hat = model.decode(z[None])[0]
                lik.append(Normal(x_hat, scale).log_prob(x[b]).sum().item())
                pri.append(Normal(0.0, 1.0).log_prob(z).sum().item())
                post.append(Normal(mu, std).log_prob(z).sum().item())

            def nlme(values: list[float]) -> float:
                top = max(values)
                return -(top + math.log(sum(math.exp(v - top) for v in values) / len(values)))

            out["kl"].append(kl)
            out["elbo"].append(kl - sum(lik) / n_samples)
            out["rec_nll"].append(-sum(lik) / n_samples)
            out["iwae"].append(nlme([a + p - q for a, p, q in zip(lik, pri, post, strict=True)]))
            out["iwae_kl"].append(nlme([p - q for p, q in zip(pri, post, strict=True)]))
            out["iwae_rec"].append(nlme(lik))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_naive_loop(tiny_models, tiny_batch, kind):
    models = tiny_models[kind]
    x, position = tiny_batch
    naive = _naive(models[kind], x, n_samples=4, seed=7)
    for name, fn in SCORERS.items():
        result = fn(models, x, position=position, generator=_gen(7), n_samples=4)
        assert result.pixel is None
        assert result.slice_score.shape == (3,)
        torch.testing.assert_close(
            result.slice_score, torch.tensor(naive[name]), rtol=1e-4, atol=1e-3, msg=name
        )
    kl = ss.kl_score(models, x, position=position, generator=_gen(7))
    torch.testing.assert_close(kl.slice_score, torch.tensor(naive["kl"]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_iwae_with_one_sample_is_single_sample_elbo(tiny_models, tiny_batch, kind):
    models = tiny_models[kind]
    model = models[kind]
    x, position = tiny_batch
    iwae = iw.iwae_score(models, x, position=position, generator=_gen(3), n_samples=1)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar, generator=_gen(3))
        # Single-sample ELBO with a Monte-Carlo KL: log p(x|z) + log p(z) - log q(z|x).
        elbo = (
            model.log_likelihood(x, model.decode(z))
            + model.log_prior(z)
            - model.log_posterior(z, mu, logvar)
        )
    torch.testing.assert_close(iwae.slice_score, -elbo)
    # Its expectation is the analytic-KL negative ELBO (the "elbo" scorer).
    many = (
        iw.iwae_score(
            models,
            x.repeat(400, 1, 1, 1),
            position=position.repeat(400),
            generator=_gen(4),
            n_samples=1,
        )
        .slice_score.view(400, 3)
        .mean(0)
    )
    elbo_score = ss.elbo_score(models, x, position=position, generator=_gen(5), n_samples=400)
    torch.testing.assert_close(many, elbo_score.slice_score, rtol=0.02, atol=0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_iwae_bound_tightens_with_samples(tiny_models, tiny_batch, kind):
    """Nested groups of one draw: log-mean-exp is concave, so the mean bound is monotone."""
    models = tiny_models[kind]
    x, _ = tiny_batch
    with torch.no_grad():
        w = ss.log_weights(models[kind], x, 1024, _gen(11))
    log_w = w.log_likelihood + w.log_prior - w.log_posterior  # (1024, B)
    bounds = []
    for n in (1, 2, 8, 64, 1024):
        groups = log_w.view(1024 // n, n, -1)
        bounds.append((torch.logsumexp(groups, 1) - math.log(n)).mean(0))  # lower bounds
    for lower, tighter in itertools.pairwise(bounds):
        assert bool((tighter >= lower - 1e-4).all())
    # L = 1 averages to the ELBO (analytic KL), up to Monte-Carlo error.
    elbo = (w.log_likelihood.mean(0) - w.kl).double()
    torch.testing.assert_close(bounds[0].double(), elbo, rtol=0.02, atol=0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_iwae_score_below_elbo_score(tiny_models, tiny_batch, kind):
    models = tiny_models[kind]
    x, position = tiny_batch
    iwae = iw.iwae_score(models, x, position=position, generator=_gen(1), n_samples=256)
    elbo = ss.elbo_score(models, x, position=position, generator=_gen(2), n_samples=256)
    assert bool((iwae.slice_score <= elbo.slice_score).all())


def test_scores_are_registered_and_work_under_no_grad(tiny_models, tiny_batch):
    from anomaly_maps.scoring import get_scorer

    x, position = tiny_batch
    for name in ["elbo", "kl", "rec_nll", "iwae", "iwae_kl", "iwae_rec"]:
        info = get_scorer(name)
        assert info.fits(["vae"]) and info.fits(["cevae"]) and not info.fits(["dae"])
        params = info.resolve_params()
        with torch.no_grad():
            result = info(tiny_models["vae"], x, position=position, generator=_gen(), **params)
        assert result.pixel is None and result.slice_score.shape == (3,)
        assert bool(torch.isfinite(result.slice_score).all())
