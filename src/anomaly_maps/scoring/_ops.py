"""Small batched tensor operations shared by scorers, and the sharing of model passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScorerError

__all__ = [
    "encode",
    "gaussian_blur",
    "model_of",
    "shared",
    "sharing_passes",
    "through_plane_blur",
    "through_plane_radius",
]

T = TypeVar("T")
_MEMO: ContextVar[dict[tuple, tuple[tuple, Any]] | None] = ContextVar("memo", default=None)


@contextmanager
def sharing_passes() -> Iterator[None]:
    """Within this block, :func:`shared` computes each deterministic pass once.

    :func:`~anomaly_maps.scoring.score_volume` opens one block per slice batch, so
    several scorers run on one batch (``rec`` and ``sample_std`` and ``elbo``, say)
    encode it once instead of once each.
    """
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def shared(key: str, compute: Callable[[], T], *inputs: Any) -> T:
    """``compute()``, reused for the same ``key`` and the same input objects.

    Only inside :func:`sharing_passes` and with gradients off: a pass that must be
    differentiated (gradient scorers, restoration) is never shared. Inputs are
    identified by object identity and kept alive by the memo, so an identity cannot
    be reused by a new tensor while the block is open.
    """
    memo = _MEMO.get()
    if memo is None or torch.is_grad_enabled():
        return compute()
    ident = (key, *map(id, inputs))
    if ident not in memo:
        memo[ident] = (inputs, compute())
    return memo[ident][1]


def encode(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A VAE's posterior ``(mu, logvar)`` of ``x``, shared between scorers of a batch."""
    return shared("encode", lambda: model.encode(x), model, x)


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


def through_plane_radius(sigma: float) -> int:
    """Slices on each side that :func:`through_plane_blur` reads (3 sigma; 0 when off)."""
    return int(3.0 * sigma + 0.5) if sigma > 0 else 0


def through_plane_blur(maps: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of a scan's ``(N, H, W)`` slice maps across slices, inside ``mask``.

    Normalised convolution: ``G * (m mask) / G * mask`` along the slice axis, 0 outside
    ``mask`` (``(N, H, W)`` bool, the slices' foreground), so the background and slices
    without tissue do not pull the brain's border down. ``sigma`` in slices; the kernel
    is cut at :func:`through_plane_radius` slices. Equals, per pixel,
    ``gaussian_filter1d(m * mask, sigma, axis=0, mode="constant", truncate=3) /
    gaussian_filter1d(mask, ...)``.
    """
    radius = through_plane_radius(sigma)
    if radius == 0:
        return maps
    t = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2).view(1, 1, -1)
    weight = mask.to(maps.dtype)
    stacked = torch.stack([maps * weight, weight])  # (2, N, H, W)
    columns = stacked.flatten(2).permute(0, 2, 1).reshape(-1, 1, maps.shape[0])
    smooth = F.conv1d(columns, kernel, padding=radius).view(2, -1, maps.shape[0])
    value, norm = smooth.permute(0, 2, 1).reshape(stacked.shape)
    return torch.where(mask, value / norm.clamp_min(1e-12), torch.zeros_like(maps))


def model_of(models: dict[str, nn.Module], *kinds: str) -> nn.Module:
    """The first model among ``kinds`` in a checkpoint's models."""
    for kind in kinds:
        if kind in models:
            return models[kind]
    raise ScorerError(f"expected a {' or '.join(kinds)} model, got {'+'.join(models)}")
