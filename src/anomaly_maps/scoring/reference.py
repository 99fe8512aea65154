"""Naive references of the scorers: one slice, one sample at a time.

Every scorer has a reference here, registered with :func:`register_reference` under its
name: the plain loop a paper's code would write, over the slices of a batch and, inside,
over each slice's samples (SmoothGrad copies, posterior samples, restorations), with
every forward and backward pass on one slice and one sample. A slice is encoded once
and its samples decoded one by one. Tests check each batched scorer against its
reference; ``anomaly-maps bench score`` times both.

Same draws: a reference draws the same noise tensors from ``generator``, in the same
order and shape, as its batched scorer, then indexes them by sample and slice, so both
agree within float tolerance. ``latent_restoration`` needs nothing of the kind:
:meth:`CodePrior.resample` draws its uniforms row by row, so one restoration at a time
gets the draws that the stacked call gives its row.

The references take the scorers' arguments without defaults: callers pass
:meth:`ScorerInfo.resolve_params`, as :func:`score_volume` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import sampling  # noqa: F401  (registers sample_std; it shares no helper here)
from ._ops import gaussian_blur, model_of
from ._registry import ScoreResult, register_reference
from .gradients import Posterior, Term, minmax_per_slice
from .latent_restoration import _prior_position, mean_filter, min_filter, restoration_weights
from .reconstruction import Norm, pixel_distance, reconstruct
from .restoration import restore
from .sample_scores import LogWeights, _neg_log_mean_exp

__all__: list[str] = []  # nothing to import: the references are reached via ScorerInfo

_VAE_KINDS = ("vae", "cevae")


def _cat(results: list[ScoreResult]) -> ScoreResult:
    """One result from per-slice results of one slice each."""
    pixel = None if results[0].pixel is None else torch.cat([r.pixel for r in results])
    return ScoreResult(pixel, torch.cat([r.slice_score for r in results]))


def _latent_noise(
    model: nn.Module, x: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """The ``(n, B, D)`` standard normals a batched scorer draws for ``n`` samples per slice.

    One call, as :meth:`VAE.reparameterize` on ``n * B`` stacked rows (row ``k * B + b``);
    ``[k, b]`` is sample ``k`` of slice ``b``.
    """
    shape = (n, x.shape[0], model.config.latent_dim)
    return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)


def _decode_sample(
    model: nn.Module, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One posterior sample ``z = mu + exp(logvar / 2) * eps`` of one slice and its decoding.

    ``mu``, ``logvar`` ``(1, D)``, ``eps`` ``(D,)`` or ``None`` for ``z = mu``. Returns
    ``z (1, D)`` and ``x_hat (1, C, H, W)``.
    """
    z = mu if eps is None else mu + torch.exp(0.5 * logvar) * eps
    return z, model.decode(z)


# ----------------------------------------------------------------- reconstruction


@register_reference("rec")
def rec(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    norm: Norm,
    sigma: float,
) -> ScoreResult:
    """``rec`` per slice: reconstruct, distance, smooth (seed 000, section 3; seed 001)."""
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            x1 = x[b : b + 1]
            error = pixel_distance(x1, reconstruct(models, x1), norm)
            results.append(ScoreResult.from_map(gaussian_blur(error, sigma)))
    return _cat(results)


# ----------------------------------------------------------------------- sampling


@register_reference("sample_std")
def sample_std(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
    sigma: float,
) -> ScoreResult:
    """``sample_std`` per slice and sample: encode once, decode each ``z_k`` alone, pixel
    standard deviation over the reconstructions (seed 000, section 3)."""
    model = model_of(models, *_VAE_KINDS)
    eps = _latent_noise(model, x, n_samples, generator)
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            mu, logvar = model.encode(x[b : b + 1])
            recs = [_decode_sample(model, mu, logvar, eps[k, b])[1] for k in range(n_samples)]
            pixel = torch.cat(recs).std(dim=0).mean(dim=0, keepdim=True)
            results.append(ScoreResult.from_map(gaussian_blur(pixel, sigma)))
    return _cat(results)


# ---------------------------------------------------------------------- gradients


def _smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    term: Term,
    generator: torch.Generator,
    *,
    n_smooth: int,
    noise: float,
    abs_first: bool,
    posterior: Posterior = "sample",
) -> list[torch.Tensor]:
    """SmoothGrad ``|d term / d x|`` of each slice, one noisy copy per backward pass.

    The loss of a copy is the KL, ``-log p(x|z)`` or their sum (the negative ELBO,
    seed 000 eq. 1); the likelihood's constant does not change the gradient. Draws as
    :func:`~.gradients.input_gradient`: the ``(n, B, C, H, W)`` input noise, then, for a
    sampled reconstruction term, the ``(n, B, D)`` posterior noise. Returns ``B`` maps
    ``(1, H, W)``.
    """
    eps = torch.randn((n_smooth, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    sampled = term != "kl" and posterior == "sample"
    eps_z = _latent_noise(model, x, n_smooth, generator) if sampled else None
    maps = []
    with torch.inference_mode(False), torch.enable_grad():
        for b in range(x.shape[0]):
            x1 = x[b : b + 1]
            scale = noise * (x1.max() - x1.min())
            grads = []
            for k in range(n_smooth):
                copy = (x1 + scale * eps[k, b]).detach().requires_grad_(True)
                mu, logvar = model.encode(copy)
                loss = model.kl_loss(mu, logvar)
                if term != "kl":
                    z_noise = None if eps_z is None else eps_z[k, b]
                    _, x_hat = _decode_sample(model, mu, logvar, z_noise)
                    nll = -model.log_likelihood(copy, x_hat)
                    loss = nll if term == "rec" else nll + loss
                (grad,) = torch.autograd.grad(loss.sum(), copy)
                grads.append(grad)
            stacked = torch.cat(grads)  # (n, C, H, W)
            magnitude = stacked.abs().mean(0) if abs_first else stacked.mean(0).abs()
            maps.append(magnitude.mean(0, keepdim=True))
    return maps


def _gradient_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    term: Term,
    generator: torch.Generator,
    *,
    sigma: float,
    **smoothgrad: object,
) -> ScoreResult:
    maps = _smoothgrad(model_of(models, *_VAE_KINDS), x, term, generator, **smoothgrad)
    return _cat([ScoreResult.from_map(gaussian_blur(m, sigma)) for m in maps])


@register_reference("rec_grad")
def rec_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
    posterior: Posterior,
) -> ScoreResult:
    """``rec_grad`` per slice and SmoothGrad copy (seed 000, section 3)."""
    return _gradient_reference(
        models, x, "rec", generator,
        n_smooth=n_smooth, noise=noise, sigma=sigma, abs_first=abs_first, posterior=posterior,
    )  # fmt: skip


@register_reference("kl_grad")
def kl_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
) -> ScoreResult:
    """``kl_grad`` per slice and SmoothGrad copy (seed 000, section 3)."""
    return _gradient_reference(
        models, x, "kl", generator,
        n_smooth=n_smooth, noise=noise, sigma=sigma, abs_first=abs_first,
    )  # fmt: skip


@register_reference("elbo_grad")
def elbo_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
    posterior: Posterior,
) -> ScoreResult:
    """``elbo_grad`` per slice and SmoothGrad copy (seed 000, eq. 2 and section 3)."""
    return _gradient_reference(
        models, x, "elbo", generator,
        n_smooth=n_smooth, noise=noise, sigma=sigma, abs_first=abs_first, posterior=posterior,
    )  # fmt: skip


@register_reference("cevae_combined")
def cevae_combined(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    norm: Norm,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
) -> ScoreResult:
    """``cevae_combined`` per slice: smoothed, normalised SmoothGrad KL gradient (one copy
    per backward pass) times the error of the posterior-mean reconstruction (seed 003,
    eq. 8)."""
    model = model_of(models, *_VAE_KINDS)
    grads = _smoothgrad(
        model, x, "kl", generator, n_smooth=n_smooth, noise=noise, abs_first=abs_first
    )
    results = []
    with torch.no_grad():
        for b, grad in enumerate(grads):
            x1 = x[b : b + 1]
            _, x_hat = _decode_sample(model, *model.encode(x1), None)
            pixel = gaussian_blur(minmax_per_slice(grad), sigma) * pixel_distance(x1, x_hat, norm)
            results.append(ScoreResult.from_map(pixel))
    return _cat(results)


# -------------------------------------------------------------------- restoration


@register_reference("vae_tv_restoration")
def vae_tv_restoration(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_steps: int,
    lr: float,
    tv_weight: float,
) -> ScoreResult:
    """``vae_tv_restoration`` per slice: each slice restored by its own gradient steps
    (seed 001, Methods: Restoration; Chen et al.)."""
    model = model_of(models, *_VAE_KINDS)
    results = []
    for b in range(x.shape[0]):
        x1 = x[b : b + 1]
        restored = restore(model, x1, n_steps=n_steps, lr=lr, tv_weight=tv_weight)
        results.append(ScoreResult.from_map((x1 - restored).abs().mean(1)))
    return _cat(results)


# ------------------------------------------------------------- latent restoration


@register_reference("latent_restoration")
def latent_restoration(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    lambda_p: float,
    n_restorations: int,
    k: float,
    min_pool: int,
    avg_pool: int,
) -> ScoreResult:
    """``latent_restoration`` per slice and restoration (seed 002, section 2.4).

    Each slice's codes and redraw mask are computed once; each restoration is one
    :meth:`CodePrior.resample` call on that slice's codes alone, decoded alone; the
    prior's draws follow the rows, so they are the batched scorer's.
    """
    vqvae = model_of(models, "vqvae")
    prior = model_of(models, "prior")
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            y, pos = x[b : b + 1], _prior_position(prior, position[b : b + 1])
            codes = vqvae.codes(y)
            mask = prior.nll(codes, pos) > lambda_p
            residuals = []
            for _ in range(n_restorations):
                restored = prior.resample(codes, mask, pos, generator)
                residuals.append((y - vqvae.decode_codes(restored)).abs().mean(1))
            stacked = torch.stack(residuals, dim=1)  # (1, S, H, W)
            weights = restoration_weights(stacked, k)
            pixel = (weights[:, :, None, None] * stacked).sum(1)
            results.append(
                ScoreResult.from_map(mean_filter(min_filter(pixel, min_pool), avg_pool))
            )
    return _cat(results)


@register_reference("latent_nll")
def latent_nll(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    lambda_s: float,
) -> ScoreResult:
    """``latent_nll`` per slice: sum of the code NLLs above ``lambda_s`` (seed 002, 2.3)."""
    vqvae = model_of(models, "vqvae")
    prior = model_of(models, "prior")
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            y = x[b : b + 1]
            nll = prior.nll(vqvae.codes(y), _prior_position(prior, position[b : b + 1]))
            kept = torch.where(nll > lambda_s, nll, torch.zeros_like(nll))
            pixel = F.interpolate(kept[:, None], size=y.shape[-2:], mode="nearest")[:, 0]
            results.append(ScoreResult(pixel, kept.flatten(1).sum(1)))
    return _cat(results)


# ------------------------------------------------------------------ sample scores


def _slice_weights(model: nn.Module, x1: torch.Tensor, eps: torch.Tensor) -> LogWeights:
    """Log-density terms of one slice ``(1, C, H, W)``: encoded once, each of its ``L``
    posterior samples (noise ``eps`` ``(L, D)``) decoded alone; ``(L, 1)`` terms."""
    mu, logvar = model.encode(x1)
    terms = []
    for e in eps:
        z, x_hat = _decode_sample(model, mu, logvar, e)
        terms.append(
            torch.cat(
                [
                    model.log_likelihood(x1, x_hat),
                    model.log_prior(z),
                    model.log_posterior(z, mu, logvar),
                ]
            )
        )
    log_likelihood, log_prior, log_posterior = torch.stack(terms, dim=1)[..., None]
    return LogWeights(log_likelihood, log_prior, log_posterior, model.kl_loss(mu, logvar))


def _per_slice_weights(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    score: Callable[[LogWeights], torch.Tensor],
) -> ScoreResult:
    """``score(LogWeights)`` of each slice, drawing as :func:`~.sample_scores.log_weights`:
    one ``(L, B, D)`` standard normal tensor."""
    model = model_of(models, *_VAE_KINDS)
    eps = _latent_noise(model, x, n_samples, generator)
    with torch.no_grad():
        scores = [score(_slice_weights(model, x[b : b + 1], eps[:, b])) for b in range(len(x))]
    return ScoreResult(None, torch.cat(scores))


@register_reference("elbo")
def elbo(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
) -> ScoreResult:
    """``elbo`` per slice and sample: ``KL - 1/L sum_l log p(x|z_l)`` (seed 004, eq. 4)."""
    return _per_slice_weights(
        models, x, n_samples, generator, lambda w: w.kl - w.log_likelihood.mean(0)
    )


@register_reference("kl")
def kl(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
) -> ScoreResult:
    """``kl`` per slice: analytic ``KL(q(z|x) || N(0, I))`` (seed 004, eq. 5)."""
    model = model_of(models, *_VAE_KINDS)
    with torch.no_grad():
        scores = [model.kl_loss(*model.encode(x[b : b + 1])) for b in range(len(x))]
    return ScoreResult(None, torch.cat(scores))


@register_reference("rec_nll")
def rec_nll(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
) -> ScoreResult:
    """``rec_nll`` per slice and sample: ``-1/L sum_l log p(x|z_l)`` (seed 004, eq. 6)."""
    return _per_slice_weights(models, x, n_samples, generator, lambda w: -w.log_likelihood.mean(0))


@register_reference("iwae")
def iwae(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
) -> ScoreResult:
    """``iwae`` per slice and sample: ``-log 1/L sum_l p(x|z_l) p(z_l) / q(z_l|x)``
    (seed 004, eq. 8)."""
    return _per_slice_weights(
        models, x, n_samples, generator,
        lambda w: _neg_log_mean_exp(w.log_likelihood + w.log_prior - w.log_posterior),
    )  # fmt: skip


@register_reference("iwae_kl")
def iwae_kl(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
) -> ScoreResult:
    """``iwae_kl`` per slice and sample: ``-log 1/L sum_l p(z_l) / q(z_l|x)`` (seed 004,
    eq. 9)."""
    return _per_slice_weights(
        models, x, n_samples, generator,
        lambda w: _neg_log_mean_exp(w.log_prior - w.log_posterior),
    )  # fmt: skip


@register_reference("iwae_rec")
def iwae_rec(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_samples: int,
) -> ScoreResult:
    """``iwae_rec`` per slice and sample: ``-log 1/L sum_l p(x|z_l)`` (seed 004, eq. 10)."""
    return _per_slice_weights(
        models, x, n_samples, generator, lambda w: _neg_log_mean_exp(w.log_likelihood)
    )
