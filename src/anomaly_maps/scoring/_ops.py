"""Small batched tensor operations shared by scorers and post-processing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScorerError

__all__ = ["gaussian_blur", "model_of"]


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (B, H, W) maps, separable, reflect-padded, on their device.

    ``sigma`` in pixels; 0 returns the input. Equals
    ``scipy.ndimage.gaussian_filter(m, sigma, mode="mirror", truncate=4.0)`` per map.
    """
    if sigma <= 0:
        return maps
    radius = max(1, int(4.0 * sigma + 0.5))  # scipy's truncation
    radius = min(radius, min(maps.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x[:, 0]


def model_of(models: dict[str, nn.Module], *kinds: str) -> nn.Module:
    """The first model among ``kinds`` in a checkpoint's models."""
    for kind in kinds:
        if kind in models:
            return models[kind]
    raise ScorerError(f"expected a {' or '.join(kinds)} model, got {'+'.join(models)}")
