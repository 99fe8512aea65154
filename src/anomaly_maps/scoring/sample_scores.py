"""Slice-level anomaly scores from a VAE's evidence bounds (seed 004, section 2.2).

Every score here estimates ``-log p(x)`` or one of its parts, so **higher = more
anomalous** throughout:

========== ====================================================== =============
name       score                                                  seed 004
========== ====================================================== =============
elbo       ``KL(q(z|x) || p(z)) - 1/L sum_l log p(x|z_l)``         eq. 4
kl         ``KL(q(z|x) || p(z))`` (analytic, no sampling)         eq. 5
rec_nll    ``-1/L sum_l log p(x|z_l)``                            eq. 6
iwae       ``-log 1/L sum_l p(x|z_l) p(z_l) / q(z_l|x)``           eq. 8
iwae_kl    ``-log 1/L sum_l p(z_l) / q(z_l|x)``                    eq. 9
iwae_rec   ``-log 1/L sum_l p(x|z_l)``                             eq. 10
========== ====================================================== =============

with ``z_l ~ q(z|x)``, ``l = 1..L``. ``-iwae`` is the importance-weighted lower bound on
``log p(x)`` of Burda et al., which is at least the ELBO in expectation and tightens as
``L`` grows, so ``iwae <= elbo`` (in expectation) for the scores. All ``L * B`` posterior
samples of a batch are drawn together (each slice's from its own generator) and decoded
as one stacked batch; the sum over samples is a ``logsumexp``. Log-densities are
normalised (nats), see :mod:`anomaly_maps.models.vae`. These scorers rate whole slices:
``pixel`` is ``None``. This module holds the ELBO, KL and reconstruction scores and the
log-weights all of them share; the importance-weighted ones are in :mod:`.iwae_scores`.
Each scorer's naive reference (one slice, one sample at a time) is registered next to it.

References
----------
.. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using Variational
   Autoencoder", seed 004, section 2.2 (eqs. 4-10, L = 15).
.. [2] Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..models import Generators, SliceGenerators
from ._naive import decode_sample, latent_noise
from ._ops import encode, model_of
from ._registry import ParamSpec, ScoreResult, register_reference, register_scorer

__all__ = [
    "KINDS",
    "N_SAMPLES",
    "SEED",
    "LogWeights",
    "elbo_score",
    "kl_score",
    "log_weights",
    "neg_log_mean_exp",
    "per_slice_weights",
    "rec_nll_score",
    "register_sampled_score",
    "weights",
]

KINDS = ("vae", "cevae")
SEED = "004, section 2.2"
N_SAMPLES = ParamSpec(
    "n_samples",
    int,
    15,
    (1, 4096),
    "posterior samples L per slice (seed 004 uses 15); all L x B are decoded in one batch",
)


class LogWeights(NamedTuple):
    """Per-sample log-density terms of ``L`` posterior samples for ``B`` slices.

    Attributes
    ----------
    log_likelihood, log_prior, log_posterior : torch.Tensor
        ``(L, B)``: ``log p(x|z_l)``, ``log p(z_l)``, ``log q(z_l|x)`` in nats.
    kl : torch.Tensor
        ``(B,)`` analytic ``KL(q(z|x) || p(z))``.
    """

    log_likelihood: torch.Tensor
    log_prior: torch.Tensor
    log_posterior: torch.Tensor
    kl: torch.Tensor


def log_weights(
    model: nn.Module, x: torch.Tensor, n_samples: int, generator: Generators
) -> LogWeights:
    """Log-density terms of ``n_samples`` posterior samples per slice, batched.

    The noise is one ``(L, B, D)`` draw (through :meth:`VAE.reparameterize`, slice
    ``b``'s ``(L, D)`` from its own generator), so sample ``l`` of slice ``b`` uses
    ``eps[l, b]``; the ``L * B`` codes are decoded as one batch.

    Parameters
    ----------
    model : VAE
        A VAE or ceVAE in eval mode.
    x : torch.Tensor
        Slices ``(B, C, H, W)``.
    n_samples : int
        ``L`` >= 1.
    generator : SliceGenerators, torch.Generator or None
        Source of the posterior noise, on ``x.device``.

    Returns
    -------
    LogWeights
        ``(L, B)`` terms and the ``(B,)`` analytic KL.
    """
    batch = x.shape[0]
    mu, logvar = encode(model, x)
    shape = (n_samples, *mu.shape)
    z = model.reparameterize(mu.expand(shape), logvar.expand(shape), generator=generator)
    x_hat = model.decode(z.reshape(n_samples * batch, -1))
    stacked = x.expand(n_samples, *x.shape).reshape(n_samples * batch, *x.shape[1:])
    log_likelihood = model.log_likelihood(stacked, x_hat).view(n_samples, batch)
    return LogWeights(
        log_likelihood=log_likelihood,
        log_prior=model.log_prior(z),
        log_posterior=model.log_posterior(z, mu, logvar),
        kl=model.kl_loss(mu, logvar),
    )


def neg_log_mean_exp(terms: torch.Tensor) -> torch.Tensor:
    """``-log(1/L sum_l exp(terms[l]))`` over the sample axis 0: ``(L, B) -> (B,)``."""
    return math.log(terms.shape[0]) - torch.logsumexp(terms, dim=0)


@torch.no_grad()
def weights(
    models: dict[str, nn.Module], x: torch.Tensor, n_samples: int, generator: Generators
) -> LogWeights:
    """:func:`log_weights` with the checkpoint's VAE, without gradients."""
    return log_weights(model_of(models, *KINDS), x, n_samples, generator)


def _slice_weights(model: nn.Module, x1: torch.Tensor, eps: torch.Tensor) -> LogWeights:
    """Log-density terms of one slice ``(1, C, H, W)``: encoded once, each of its ``L``
    posterior samples (noise ``eps`` ``(L, D)``) decoded alone; ``(L, 1)`` terms."""
    mu, logvar = model.encode(x1)
    terms = []
    for e in eps:
        z, x_hat = decode_sample(model, mu, logvar, e)
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


def per_slice_weights(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    n_samples: int,
    generator: SliceGenerators,
    score: Callable[[LogWeights], torch.Tensor],
) -> ScoreResult:
    """The naive references' ``score(LogWeights)`` of each slice, one sample per decode;
    slice ``b``'s ``(L, D)`` noise from ``generator[b]``, as :func:`log_weights` draws."""
    model = model_of(models, *KINDS)
    with torch.no_grad():
        scores = [
            score(
                _slice_weights(
                    model, x[b : b + 1], latent_noise(model, generator[b], n_samples, x)
                )
            )
            for b in range(len(x))
        ]
    return ScoreResult(None, torch.cat(scores))


#: Parameters, Returns and References of every sampled slice score (here and in
#: :mod:`.iwae_scores`), appended to each one's summary by :func:`register_sampled_score`.
_SAMPLED_DOC = """
    Parameters
    ----------
    models : dict
        Checkpoint models; uses ``"vae"`` or ``"cevae"``.
    x : torch.Tensor
        Slices ``(B, 1, H, W)``.
    position : torch.Tensor
        ``(B,)`` slice positions (unused).
    generator : SliceGenerators
        Source of the posterior noise, slice ``b``'s from its own generator.
    n_samples : int
        ``L``; all ``L x B`` samples are decoded in one batch.

    Returns
    -------
    ScoreResult
        ``pixel=None``, ``slice_score`` ``(B,)`` in nats; higher = more anomalous.

    References
    ----------
    .. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE" (seed 004).
"""


def register_sampled_score(
    name: str,
    *,
    description: str,
    equation: str,
    score: Callable[[LogWeights], torch.Tensor],
    summary: str,
) -> Callable[..., ScoreResult]:
    """Register the slice score ``score(log_weights(...))`` and its naive reference.

    The sampled scores differ only in their function of the log-weights: the batched
    scorer applies it to one stacked pass (:func:`weights`), the reference slice by slice
    and sample by sample (:func:`per_slice_weights`). ``equation`` cites seed 004;
    ``summary`` opens the docstring. Returns the batched scorer.
    """

    @register_scorer(
        name,
        description=description,
        seed=f"{SEED}, {equation}",
        model_kinds=KINDS,
        params=[N_SAMPLES],
    )
    def scorer(
        models: dict[str, nn.Module],
        x: torch.Tensor,
        *,
        position: torch.Tensor,
        generator: SliceGenerators,
        n_samples: int = 15,
    ) -> ScoreResult:
        return ScoreResult(None, score(weights(models, x, n_samples, generator)))

    @register_reference(name)
    def reference(
        models: dict[str, nn.Module],
        x: torch.Tensor,
        *,
        position: torch.Tensor,
        generator: SliceGenerators,
        n_samples: int,
    ) -> ScoreResult:
        return per_slice_weights(models, x, n_samples, generator, score)

    scorer.__name__ = scorer.__qualname__ = f"{name}_score"
    scorer.__doc__ = summary + _SAMPLED_DOC
    reference.__name__ = reference.__qualname__ = f"{name}_reference"
    reference.__doc__ = f"``{name}`` per slice and sample (seed 004, {equation})."
    return scorer


elbo_score = register_sampled_score(
    "elbo",
    description="Negative ELBO: analytic KL plus mean reconstruction NLL over L samples",
    equation="eq. 4",
    score=lambda w: w.kl - w.log_likelihood.mean(0),
    summary="""Negative evidence lower bound per slice, ``s_vae`` of seed 004 (eq. 4).

    ``KL(q(z|x) || N(0, I)) - 1/L sum_l log p(x|z_l)`` with ``z_l ~ q(z|x)``; higher =
    less likely under the model = more anomalous.
""",
)


@register_scorer(
    "kl",
    description="KL divergence of the posterior from the prior (analytic)",
    seed=f"{SEED}, eq. 5",
    model_kinds=KINDS,
)
def kl_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
) -> ScoreResult:
    """``KL(q(z|x) || N(0, I))`` per slice, ``s_vae^kl`` of seed 004 (eq. 5).

    Deterministic (no sampling); higher = more anomalous. ``position`` and ``generator``
    are unused; returns ``pixel=None`` and the ``(B,)`` KL in nats of the ``(B, 1, H, W)``
    slices ``x``, with the checkpoint's ``"vae"`` or ``"cevae"`` model.

    References
    ----------
    .. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE" (seed 004).
    """
    model = model_of(models, *KINDS)
    with torch.no_grad():
        return ScoreResult(None, model.kl_loss(*encode(model, x)))


@register_reference("kl")
def kl_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
) -> ScoreResult:
    """``kl`` per slice: analytic ``KL(q(z|x) || N(0, I))`` (seed 004, eq. 5)."""
    model = model_of(models, *KINDS)
    with torch.no_grad():
        scores = [model.kl_loss(*model.encode(x[b : b + 1])) for b in range(len(x))]
    return ScoreResult(None, torch.cat(scores))


rec_nll_score = register_sampled_score(
    "rec_nll",
    description="Reconstruction negative log-likelihood, mean over L posterior samples",
    equation="eq. 6",
    score=lambda w: -w.log_likelihood.mean(0),
    summary="""``-1/L sum_l log p(x|z_l)`` per slice, ``s_vae^reconst`` of seed 004 (eq. 6).

    The normalised likelihood of the model (Gaussian or Laplace with its fixed scale);
    higher = worse reconstructed = more anomalous.
""",
)
