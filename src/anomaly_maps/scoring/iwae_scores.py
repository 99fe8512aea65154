"""Importance-weighted (IWAE) slice scores of a VAE (seed 004, eqs. 8-10).

``iwae``, ``iwae_kl`` and ``iwae_rec`` replace the ELBO's mean over ``L`` posterior
samples ``z_l ~ q(z|x)`` by ``-log 1/L sum_l w_l`` of importance weights, computed from
the log-density terms of :func:`.sample_scores.log_weights` (see the table there);
higher = more anomalous. ``-iwae`` is the importance-weighted lower bound on
``log p(x)`` of Burda et al., at least the ELBO in expectation, tightening as ``L``
grows. Each scorer's naive reference (one slice, one sample at a time) is registered
next to it.

References
----------
.. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using Variational
   Autoencoder", seed 004, section 2.2 (eqs. 8-10, L = 15).
.. [2] Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import SliceGenerators
from ._registry import ScoreResult, register_reference, register_scorer
from .sample_scores import KINDS, N_SAMPLES, SEED, neg_log_mean_exp, per_slice_weights, weights

__all__ = ["iwae_kl_score", "iwae_rec_score", "iwae_score"]


@register_scorer(
    "iwae",
    description="Negative importance-weighted (IWAE) bound on log p(x) with L samples",
    seed=f"{SEED}, eq. 8",
    model_kinds=KINDS,
    params=[N_SAMPLES],
)
def iwae_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int = 15,
) -> ScoreResult:
    """``-log 1/L sum_l p(x|z_l) p(z_l) / q(z_l|x)`` per slice, ``s_iwae`` (seed 004, eq. 8).

    The negative IWAE bound: ``-iwae <= log p(x)``, and ``-iwae`` is at least the ELBO in
    expectation, tightening as ``L`` grows (so ``iwae`` <= ``elbo`` on average). With
    ``L = 1`` it is the single-sample negative ELBO with a Monte-Carlo KL. Higher = more
    anomalous.

    Parameters
    ----------
    models : dict
        Checkpoint models; uses ``"vae"`` or ``"cevae"``.
    x : torch.Tensor
        Slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Unused.
    generator : SliceGenerators
        Source of the posterior noise.
    n_samples : int
        ``L``; all ``L x B`` samples are decoded in one batch.

    Returns
    -------
    ScoreResult
        ``pixel=None``, ``slice_score`` ``(B,)`` in nats.

    References
    ----------
    .. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE" (seed 004).
    .. [2] Burda et al., "Importance Weighted Autoencoders", ICLR 2016.
    """
    w = weights(models, x, n_samples, generator)
    return ScoreResult(None, neg_log_mean_exp(w.log_likelihood + w.log_prior - w.log_posterior))


@register_scorer(
    "iwae_kl",
    description="Importance-weighted KL score -log mean p(z)/q(z|x) over L samples",
    seed=f"{SEED}, eq. 9",
    model_kinds=KINDS,
    params=[N_SAMPLES],
)
def iwae_kl_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int = 15,
) -> ScoreResult:
    """``-log 1/L sum_l p(z_l) / q(z_l|x)`` per slice, ``s_iwae^kl`` (seed 004, eq. 9).

    Parameters
    ----------
    models : dict
        Checkpoint models; uses ``"vae"`` or ``"cevae"``.
    x : torch.Tensor
        Slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Unused.
    generator : SliceGenerators
        Source of the posterior noise.
    n_samples : int
        ``L``.

    Returns
    -------
    ScoreResult
        ``pixel=None``, ``slice_score`` ``(B,)`` in nats; higher = more anomalous.

    References
    ----------
    .. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE" (seed 004).
    """
    w = weights(models, x, n_samples, generator)
    return ScoreResult(None, neg_log_mean_exp(w.log_prior - w.log_posterior))


@register_scorer(
    "iwae_rec",
    description="Importance-weighted reconstruction score -log mean p(x|z) over L samples",
    seed=f"{SEED}, eq. 10",
    model_kinds=KINDS,
    params=[N_SAMPLES],
)
def iwae_rec_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int = 15,
) -> ScoreResult:
    """``-log 1/L sum_l p(x|z_l)`` per slice, ``s_iwae^reconst`` (seed 004, eq. 10).

    Parameters
    ----------
    models : dict
        Checkpoint models; uses ``"vae"`` or ``"cevae"``.
    x : torch.Tensor
        Slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Unused.
    generator : SliceGenerators
        Source of the posterior noise.
    n_samples : int
        ``L``.

    Returns
    -------
    ScoreResult
        ``pixel=None``, ``slice_score`` ``(B,)`` in nats; higher = more anomalous.

    References
    ----------
    .. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE" (seed 004).
    """
    w = weights(models, x, n_samples, generator)
    return ScoreResult(None, neg_log_mean_exp(w.log_likelihood))


# --------------------------------------------------------------- naive references


@register_reference("iwae")
def iwae_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int,
) -> ScoreResult:
    """``iwae`` per slice and sample: ``-log 1/L sum_l p(x|z_l) p(z_l) / q(z_l|x)``
    (seed 004, eq. 8)."""
    return per_slice_weights(
        models, x, n_samples, generator,
        lambda w: neg_log_mean_exp(w.log_likelihood + w.log_prior - w.log_posterior),
    )  # fmt: skip


@register_reference("iwae_kl")
def iwae_kl_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int,
) -> ScoreResult:
    """``iwae_kl`` per slice and sample: ``-log 1/L sum_l p(z_l) / q(z_l|x)`` (seed 004,
    eq. 9)."""
    return per_slice_weights(
        models, x, n_samples, generator,
        lambda w: neg_log_mean_exp(w.log_prior - w.log_posterior),
    )  # fmt: skip


@register_reference("iwae_rec")
def iwae_rec_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int,
) -> ScoreResult:
    """``iwae_rec`` per slice and sample: ``-log 1/L sum_l p(x|z_l)`` (seed 004, eq. 10)."""
    return per_slice_weights(
        models, x, n_samples, generator, lambda w: neg_log_mean_exp(w.log_likelihood)
    )
