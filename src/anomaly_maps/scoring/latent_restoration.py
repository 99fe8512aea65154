"""Latent-space restoration and latent NLL with a VQ-VAE and its prior (seed 002).

``latent_restoration`` (pixel map, section 2.4): codes whose prior NLL exceeds
``lambda_p`` are redrawn from the autoregressive prior, ``S`` times per slice; each
restored code grid is decoded to ``X_j`` and the residuals ``|Y - X_j|`` are combined
with weights ``w = softmax_j(k / mean|Y - X_j|)`` (restorations far from the input count
less), then smoothed by a min-pool and an average pool.

``latent_nll`` (slice score, section 2.3): the sum of the per-code NLLs above
``lambda_s``; its pixel map is that thresholded NLL grid upsampled to the image.

Both are batched: the ``S`` restorations of all ``B`` slices are stacked into one
``(S * B, h, w)`` batch (row ``j * B + b`` is restoration ``j`` of slice ``b``), given to
:meth:`CodePrior.resample` once with the repeated slice positions (slice ``b``'s draws
from its own generator), and decoded at once. Each scorer's naive reference (one slice,
one restoration at a time) is registered next to it.

References
----------
.. [1] Marimont & Tarroni, "Anomaly detection through latent space restoration using
   vector-quantized variational autoencoders", ISBI 2021 (seed 002), sections 2.3-2.4,
   3.2; reference code snavalm/lsr_mood_challenge_2020 ``docker/scripts/pred.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Generators, SliceGenerators
from ._naive import cat_results
from ._ops import model_of, shared
from ._registry import ParamSpec, ScoreResult, register_reference, register_scorer

__all__ = [
    "codes_and_nll",
    "latent_nll",
    "latent_restoration",
    "mean_filter",
    "min_filter",
    "restoration_weights",
    "restore_codes",
]

_KINDS = ("vqvae+prior",)


def _pads(size: int) -> tuple[int, int]:
    """Left/right padding keeping the shape for a window of ``size`` (odd: centred)."""
    return (size - 1) // 2, size // 2


def min_filter(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``size x size`` minimum filter of ``(B, H, W)`` maps, stride 1, same shape.

    Windows are clipped at the border (padding with ``+inf``); ``size=1`` is the identity.
    """
    if size <= 1:
        return maps
    lo, hi = _pads(size)
    padded = F.pad(maps[:, None], (lo, hi, lo, hi), value=float("inf"))
    return -F.max_pool2d(-padded, size, stride=1)[:, 0]


def mean_filter(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``size x size`` mean filter of ``(B, H, W)`` maps, stride 1, same shape.

    Windows are clipped at the border: each output is the mean over the pixels of its
    window that lie inside the image (no zero padding counted); ``size=1`` is the identity.
    """
    if size <= 1:
        return maps
    lo, hi = _pads(size)
    padded = F.pad(maps[:, None], (lo, hi, lo, hi))
    ones = F.pad(torch.ones_like(maps[:1, None]), (lo, hi, lo, hi))
    return (F.avg_pool2d(padded, size, stride=1) / F.avg_pool2d(ones, size, stride=1))[:, 0]


def _prior_position(prior: nn.Module, position: torch.Tensor) -> torch.Tensor | None:
    return position if prior.config.conditioned else None


def codes_and_nll(
    vqvae: nn.Module, prior: nn.Module, x: torch.Tensor, position: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``(B, h, w)`` of ``x`` and their NLL under the prior, in nats (seed 002,
    section 2.3); shared between ``latent_restoration`` and ``latent_nll`` of a batch."""

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        codes = vqvae.codes(x)
        return codes, prior.nll(codes, _prior_position(prior, position))

    return shared("codes_and_nll", compute, vqvae, prior, x, position)


def restore_codes(
    vqvae: nn.Module,
    prior: nn.Module,
    x: torch.Tensor,
    position: torch.Tensor,
    generator: Generators,
    lambda_p: float,
    n_restorations: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes of ``x`` and ``S`` prior restorations of each, stacked.

    The redraw mask is fixed from the NLL of the input's codes (``nll > lambda_p``);
    :meth:`CodePrior.resample` is called once on the ``(S * B, h, w)`` stack (row
    ``j * B + b``: restoration ``j`` of slice ``b``) with the positions repeated likewise;
    it runs no prior pass when no code exceeds ``lambda_p``.

    Returns
    -------
    codes : torch.Tensor
        ``(B, h, w)`` long codes of ``x``.
    mask : torch.Tensor
        ``(B, h, w)`` bool, True where codes were redrawn.
    restored : torch.Tensor
        ``(S * B, h, w)`` long restored codes.
    """
    codes, nll = codes_and_nll(vqvae, prior, x, position)
    mask = nll > lambda_p
    stacked = prior.resample(
        codes.repeat(n_restorations, 1, 1),
        mask.repeat(n_restorations, 1, 1),
        _prior_position(prior, position.repeat(n_restorations)),
        generator,
    )
    return codes, mask, stacked


def restoration_weights(residuals: torch.Tensor, k: float) -> torch.Tensor:
    """Seed 002 weights ``softmax_j(k / mean_pixels |Y - X_j|)`` of ``(B, S, H, W)`` residuals.

    The mean (not the sum of the paper's formula) follows the reference code; a
    restoration identical to the input gets all the weight. Returns ``(B, S)``.
    """
    distance = residuals.flatten(2).mean(2).clamp_min(torch.finfo(residuals.dtype).tiny)
    return torch.softmax(k / distance, dim=1)


@register_scorer(
    "latent_restoration",
    description="VQ-VAE latent space restoration with the prior: weighted |x - restoration|",
    seed="002, section 2.4",
    model_kinds=_KINDS,
    params=[
        ParamSpec("lambda_p", float, 5.0, (0.0, None), "redraw codes with prior NLL above this"),
        ParamSpec("n_restorations", int, 15, (1, 256), "restorations S per slice"),
        ParamSpec("k", float, 3.0, (0.0, None), "softmax temperature of the weights"),
        ParamSpec("min_pool", int, 3, (1, 31), "min-pooling window (1: off)"),
        ParamSpec("avg_pool", int, 7, (1, 63), "average-pooling window (1: off)"),
    ],
)
def latent_restoration(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    lambda_p: float = 5.0,
    n_restorations: int = 15,
    k: float = 3.0,
    min_pool: int = 3,
    avg_pool: int = 7,
) -> ScoreResult:
    """Pixel-wise anomaly score by latent space restoration (seed 002, section 2.4).

    1. Encode ``Y = x`` to codes; compute each code's prior NLL (conditioned on the slice
       position when the prior is); mark codes with NLL > ``lambda_p``.
    2. Make ``S = n_restorations`` copies per slice, redraw the marked codes from the
       prior in raster order (one stacked :meth:`CodePrior.resample` call), decode each
       to ``X_j``.
    3. ``AS = sum_j w_j |Y - X_j|`` with ``w = softmax_j(k / mean |Y - X_j|)``.
    4. Min-pool ``min_pool x min_pool``, then average-pool ``avg_pool x avg_pool``
       (stride 1, windows clipped at the border).

    The mask is fixed from the input's codes; the reference code re-evaluates the NLL
    of each code given the already redrawn earlier codes. With ``lambda_p`` above every
    NLL nothing is redrawn and the map is the pooled VQ-VAE reconstruction error.

    Parameters
    ----------
    models : dict
        Checkpoint models ``"vqvae"`` and ``"prior"`` (eval mode).
    x : torch.Tensor
        Slices ``(B, C, H, W)``.
    position : torch.Tensor
        ``(B,)`` slice positions in ``[0, 1]``, passed to a conditioned prior.
    generator : SliceGenerators
        Source of the prior draws.
    lambda_p : float
        NLL threshold in nats (paper: 5, the 90th percentile on validation).
    n_restorations : int
        ``S`` (paper: 15).
    k : float
        Softmax temperature (paper: 3).
    min_pool, avg_pool : int
        Smoothing windows (paper: 3 and 7).

    Returns
    -------
    ScoreResult
        ``pixel`` ``(B, H, W)`` (residual units, channel mean), higher = more anomalous;
        ``slice_score`` ``(B,)``, the mean of the map.

    References
    ----------
    .. [1] Marimont & Tarroni, "Anomaly detection through latent space restoration
       using VQ-VAEs", ISBI 2021 (seed 002), section 2.4.
    """
    vqvae = model_of(models, "vqvae")
    prior = model_of(models, "prior")
    batch, s = x.shape[0], n_restorations
    with torch.no_grad():
        _, _, restored = restore_codes(vqvae, prior, x, position, generator, lambda_p, s)
        x_j = vqvae.decode_codes(restored).view(s, batch, *x.shape[1:]).transpose(0, 1)
        residuals = (x[:, None] - x_j).abs().mean(2)  # (B, S, H, W)
        weights = restoration_weights(residuals, k)
        pixel = (weights[:, :, None, None] * residuals).sum(1)
        pixel = mean_filter(min_filter(pixel, min_pool), avg_pool)
    return ScoreResult.from_map(pixel)


@register_scorer(
    "latent_nll",
    description="Sum of the prior NLL of the VQ-VAE codes above lambda_s",
    seed="002, section 2.3",
    model_kinds=_KINDS,
    params=[
        ParamSpec("lambda_s", float, 7.0, (0.0, None), "count only codes with NLL above this"),
    ],
)
def latent_nll(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    lambda_s: float = 7.0,
) -> ScoreResult:
    """Sample-wise score ``AS = sum_i xi(p(c_i))`` of seed 002, section 2.3.

    ``xi = -log p(c_i | c_<i)`` where that exceeds ``lambda_s``, else 0. Deterministic.

    Parameters
    ----------
    models : dict
        Checkpoint models ``"vqvae"`` and ``"prior"`` (eval mode).
    x : torch.Tensor
        Slices ``(B, C, H, W)``.
    position : torch.Tensor
        ``(B,)`` slice positions in ``[0, 1]``, passed to a conditioned prior.
    generator : SliceGenerators
        Unused.
    lambda_s : float
        NLL threshold in nats (paper: 7, the 98th percentile on validation).

    Returns
    -------
    ScoreResult
        ``slice_score`` ``(B,)`` in nats, higher = more anomalous; ``pixel`` ``(B, H, W)``:
        the thresholded per-code NLL, each code's value spread over the pixels of its
        cell (nearest-neighbour upsampling of the ``(h, w)`` grid to ``(H, W)``); not
        a map from the paper.

    References
    ----------
    .. [1] Marimont & Tarroni, "Anomaly detection through latent space restoration
       using VQ-VAEs", ISBI 2021 (seed 002), section 2.3.
    """
    vqvae = model_of(models, "vqvae")
    prior = model_of(models, "prior")
    with torch.no_grad():
        _, nll = codes_and_nll(vqvae, prior, x, position)
        kept = torch.where(nll > lambda_s, nll, torch.zeros_like(nll))
        pixel = F.interpolate(kept[:, None], size=x.shape[-2:], mode="nearest")[:, 0]
    return ScoreResult(pixel, kept.flatten(1).sum(1))


# --------------------------------------------------------------- naive references


@register_reference("latent_restoration")
def latent_restoration_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    lambda_p: float,
    n_restorations: int,
    k: float,
    min_pool: int,
    avg_pool: int,
) -> ScoreResult:
    """``latent_restoration`` per slice and restoration (seed 002, section 2.4).

    Each slice's codes and redraw mask are computed once; each restoration is one
    :meth:`CodePrior.resample` call on that slice's codes alone, with that slice's
    generator, decoded alone. The prior draws its uniforms row by row, so restoration
    ``j`` gets what the batched scorer's row ``j * B + b`` gets.
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
                restored = prior.resample(codes, mask, pos, generator[b])
                residuals.append((y - vqvae.decode_codes(restored)).abs().mean(1))
            stacked = torch.stack(residuals, dim=1)  # (1, S, H, W)
            weights = restoration_weights(stacked, k)
            pixel = (weights[:, :, None, None] * stacked).sum(1)
            results.append(
                ScoreResult.from_map(mean_filter(min_filter(pixel, min_pool), avg_pool))
            )
    return cat_results(results)


@register_reference("latent_nll")
def latent_nll_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
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
    return cat_results(results)
