"""Sampling-deviation scorer: pixel-wise spread of reconstructions from ``q(z|x)``.

Seed 000 (section 3) rates pixels by "the standard deviation of multiple MC samples":
decode ``n`` posterior samples ``z_k ~ q(z|x)`` and take the per-pixel standard deviation
of the reconstructions; regions the model cannot place in its learned distribution vary
more across samples. The ``n`` samples of all ``B`` slices are stacked into one batch and
decoded in one call.

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients" (seed 000), section 3 ("sampling variances",
   appendix table 1).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Generators, SliceGenerators
from ._naive import cat_results, decode_sample, latent_noise
from ._ops import encode, gaussian_blur, model_of
from ._registry import ParamSpec, ScoreResult, register_reference, register_scorer

__all__ = ["posterior_samples", "sample_std"]


def posterior_samples(
    model: nn.Module, x: torch.Tensor, n_samples: int, generator: Generators
) -> torch.Tensor:
    """``n_samples`` reconstructions per slice from ``z ~ q(z|x)``: ``(n, B, C, H, W)``.

    ``x`` is encoded once; ``mu`` and ``logvar`` are repeated sample-major (row
    ``k * B + b`` is sample ``k`` of slice ``b``) and ``model.reparameterize`` draws the
    ``(n * B, D)`` standard normals, slice ``b``'s ``(n, D)`` from its own generator,
    before one decode.
    """
    mu, logvar = encode(model, x)
    z = model.reparameterize(
        mu.repeat(n_samples, 1), logvar.repeat(n_samples, 1), generator=generator
    )
    x_hat = model.decode(z)
    return x_hat.view(n_samples, *x.shape)


@register_scorer(
    "sample_std",
    description="Standard deviation of reconstructions decoded from posterior samples",
    seed="000, section 3",
    model_kinds=("vae", "cevae"),
    bf16_auto=False,  # measured outside BF16_TOLERANCE: scripts/bf16_tolerance.py
    params=[
        ParamSpec(
            "n_samples",
            int,
            8,
            (2, 256),
            "Posterior samples z ~ q(z|x) per slice (decoded in one batch)",
        ),
        ParamSpec(
            "sigma",
            float,
            0.0,
            (0.0, 32.0),
            "Gaussian smoothing of the map in pixels; 0 = none",
        ),
    ],
)
def sample_std(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int = 8,
    sigma: float = 0.0,
) -> ScoreResult:
    """Pixel-wise standard deviation over sampled VAE reconstructions.

    Parameters
    ----------
    models : dict of str to nn.Module
        Checkpoint models; uses the ``vae`` or ``cevae`` one.
    x : torch.Tensor
        Preprocessed slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Slice positions ``(B,)``; unused.
    generator : SliceGenerators
        Source of the posterior noise (see :func:`posterior_samples`).
    n_samples : int
        Number of samples ``n >= 2``; seed 000 does not state it, 8 is our default.
    sigma : float
        Gaussian smoothing in pixels (scipy ``mode="mirror"``); 0 keeps the raw map.

    Returns
    -------
    ScoreResult
        ``pixel (B, H, W)``: the unbiased (``n - 1``) standard deviation over samples,
        averaged over channels; ``slice_score (B,)`` the mean of the map.

    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3.
    """
    model = model_of(models, "vae", "cevae")
    with torch.no_grad():
        samples = posterior_samples(model, x, n_samples, generator)
        pixel = gaussian_blur(samples.std(dim=0).mean(dim=1), sigma)
    return ScoreResult.from_map(pixel)


@register_reference("sample_std")
def sample_std_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_samples: int,
    sigma: float,
) -> ScoreResult:
    """``sample_std`` per slice and sample: encode once, decode each ``z_k`` alone, pixel
    standard deviation over the reconstructions (seed 000, section 3)."""
    model = model_of(models, "vae", "cevae")
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            eps = latent_noise(model, generator[b], n_samples, x)
            mu, logvar = model.encode(x[b : b + 1])
            recs = [decode_sample(model, mu, logvar, eps[k])[1] for k in range(n_samples)]
            pixel = torch.cat(recs).std(dim=0).mean(dim=0, keepdim=True)
            results.append(ScoreResult.from_map(gaussian_blur(pixel, sigma)))
    return cat_results(results)
