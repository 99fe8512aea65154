"""Reconstruction-error scorer: ``|x - x_hat|`` or its square, optionally smoothed.

The baseline of every auto-encoder family: a model trained on healthy slices is assumed
not to reproduce anomalies, so the pixel-wise distance between a slice and its
reconstruction marks them (seed 000, section 3: "reconstruction error" and "smoothed
reconstruction error" of the VAE and the DAE; seed 001: the VQ-VAE L1 baseline).

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients" (seed 000), section 3 and appendix table 1.
.. [2] Naval-Marimont & Tarroni, slides on unsupervised anomaly detection (seed 001),
   "Reconstruction error (vanilla)" and the VQ-VAE L1 reconstruction baseline.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..models import SliceGenerators
from ..models.vae import VAE
from ._naive import cat_results
from ._ops import encode, gaussian_blur, model_of, shared
from ._registry import ParamSpec, ScoreResult, register_reference, register_scorer

__all__ = ["pixel_distance", "reconstruct", "reconstruction_error"]

Norm = Literal["l1", "l2"]


def reconstruct(models: dict[str, nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Deterministic reconstruction ``x_hat`` of ``x``, ``(B, 1, H, W) -> (B, 1, H, W)``.

    VAE and ceVAE decode the posterior mean ``mu`` (no sampling, so the map is
    deterministic); the DAE reconstructs the clean input (no corruption); the VQ-VAE
    decodes the quantised codes.
    """
    model = model_of(models, "vae", "cevae", "dae", "vqvae")
    if isinstance(model, VAE):  # the ceVAE is a VAE subclass
        return shared("decode_mean", lambda: model.decode(encode(model, x)[0]), model, x)
    return shared("reconstruct", lambda: model(x), model, x)


def pixel_distance(x: torch.Tensor, x_hat: torch.Tensor, norm: Norm) -> torch.Tensor:
    """``|x - x_hat|`` (``"l1"``) or ``(x - x_hat)**2`` (``"l2"``), channel mean: ``(B, H, W)``."""
    diff = x - x_hat
    error = diff.abs() if norm == "l1" else diff.square()
    return error.mean(dim=1)


@register_scorer(
    "rec",
    description="Reconstruction error |x - x_hat| (L1) or squared (L2), optionally smoothed",
    seed="000, section 3; 001, VQ-VAE L1 baseline",
    model_kinds=("vae", "cevae", "dae", "vqvae"),
    params=[
        ParamSpec(
            "norm",
            str,
            "l1",
            ("l1", "l2"),
            "Pixel distance: absolute (l1) or squared (l2) difference",
        ),
        ParamSpec(
            "sigma",
            float,
            0.0,
            (0.0, 32.0),
            "Gaussian smoothing of the map in pixels; 0 = none, > 0 = smoothed "
            "reconstruction error (seed 000)",
        ),
    ],
)
def reconstruction_error(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    norm: Norm = "l1",
    sigma: float = 0.0,
) -> ScoreResult:
    """Pixel-wise reconstruction error, optionally Gaussian-smoothed.

    Parameters
    ----------
    models : dict of str to nn.Module
        Checkpoint models; uses the ``vae``, ``cevae``, ``dae`` or ``vqvae`` one.
    x : torch.Tensor
        Preprocessed slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Slice positions ``(B,)``; unused.
    generator : SliceGenerators
        Unused: the reconstruction is deterministic (posterior mean for VAEs).
    norm : {"l1", "l2"}
        Absolute (default, the L1 baseline of seed 001) or squared difference.
    sigma : float
        Gaussian smoothing in pixels (scipy ``mode="mirror"``, truncate 4); 0 keeps the
        raw error. The paper's "smoothed reconstruction error" uses a positive value
        (seed 000 states none).

    Returns
    -------
    ScoreResult
        ``pixel (B, H, W)``; ``slice_score (B,)`` the mean of the map.

    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3.
    .. [2] Naval-Marimont & Tarroni, slides (seed 001), VQ-VAE L1 reconstruction.
    """
    with torch.no_grad():
        x_hat = reconstruct(models, x)
        pixel = gaussian_blur(pixel_distance(x, x_hat, norm), sigma)
    return ScoreResult.from_map(pixel)


@register_reference("rec")
def reconstruction_error_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
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
    return cat_results(results)
