"""Shared pieces of the convolutional auto-encoders: geometry config, conv stacks, checks.

The VAE, the ceVAE and the DAE use one architecture, built here once: the fully
convolutional encoder/decoder of Zimmerer et al. [1]_ (seed 000, section 3: "a 5-layer fully
convolutional neural network with LeakyReLUs and a latent size of 1024" at 64x64). Layer
details follow the authors' reference code (MIC-DKFZ/vae-anomaly-experiments,
``models/enc_dec.py``): 4x4 convolutions with stride 2 and padding 1, LeakyReLU, no
normalisation layer, and a last convolution whose kernel covers the whole bottleneck so the
latent code is a vector. We keep the convolution biases (the reference code drops them).

Without normalisation layers every slice in a batch is processed independently, so a
batch may hold several copies of one slice (SmoothGrad or IWAE samples) and gives exactly
the per-slice result.

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients", seed 000, section 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import torch
from torch import nn

from .._config import is_int
from ..errors import ParameterError
from ._base import ModelConfig

__all__ = [
    "RECON_CHOICES",
    "ConvAEConfig",
    "Recon",
    "ResBlock",
    "check_latent",
    "check_slices",
    "conv_decoder",
    "conv_encoder",
    "group_norm",
    "pixel_error",
]

Recon = Literal["l2", "l1"]
RECON_CHOICES: tuple[str, ...] = ("l2", "l1")


@dataclass(frozen=True)
class ConvAEConfig(ModelConfig):
    """Geometry and reconstruction term shared by the VAE, ceVAE and DAE configs.

    Parameters
    ----------
    size : int
        In-plane resolution of the (square) slices, a power of two >= 16 and at least
        ``2 ** (len(widths) + 1)`` so that the bottleneck feature map is at least 2x2.
    in_channels : int
        Channels per slice (e.g. 1 for T2 only).
    widths : tuple of int
        Feature maps per stride-2 stage, from the input towards the bottleneck. The
        encoder has ``len(widths) + 1`` convolutions, the decoder as many transposed
        convolutions: four stages give the 5-layer network of seed 000.
    latent_dim : int
        Size ``D`` of the latent code.
    recon : {"l2", "l1"}
        Pixel reconstruction term: squared or absolute error (for the VAE: a Gaussian or
        a Laplace likelihood).
    """

    size: int = 64
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 256)
    latent_dim: int = 1024
    recon: Recon = "l2"

    @property
    def bottleneck(self) -> int:
        """Side of the feature map after the last stride-2 stage (``size / 2**len(widths)``)."""
        return self.size >> len(self.widths)

    def validate(self) -> None:
        """Check the geometry; raise ``ParameterError`` naming the first bad field."""
        if not (is_int(self.size) and self.size >= 16 and self.size & (self.size - 1) == 0):
            raise self._invalid("size", "an int that is a power of two >= 16")
        if not (is_int(self.in_channels) and self.in_channels >= 1):
            raise self._invalid("in_channels", "an int >= 1")
        if not (
            isinstance(self.widths, tuple)
            and self.widths
            and all(is_int(w) and w >= 1 for w in self.widths)
        ):
            raise self._invalid("widths", "a non-empty tuple of ints >= 1")
        if self.size < 2 ** (len(self.widths) + 1):
            raise ParameterError(
                f"size={self.size} for model '{self.kind}' is too small for "
                f"{len(self.widths)} stages (widths={self.widths}): expected size >= "
                f"{2 ** (len(self.widths) + 1)} so that the bottleneck is at least 2x2"
            )
        if not (is_int(self.latent_dim) and self.latent_dim >= 1):
            raise self._invalid("latent_dim", "an int >= 1")
        if self.recon not in RECON_CHOICES:
            raise self._invalid("recon", f"one of {list(RECON_CHOICES)}")


def conv_encoder(config: ConvAEConfig, out_features: int) -> nn.Sequential:
    """Fully convolutional encoder: ``(B, in_channels, size, size) -> (B, out_features)``.

    ``len(widths)`` stride-2 4x4 convolutions with LeakyReLU, then one convolution whose
    kernel spans the ``bottleneck x bottleneck`` map, giving a 1x1 map that is flattened.
    """
    channels = (config.in_channels, *config.widths)
    layers: list[nn.Module] = []
    for c_in, c_out in pairwise(channels):
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU()]
    layers += [nn.Conv2d(channels[-1], out_features, config.bottleneck), nn.Flatten()]
    return nn.Sequential(*layers)


def conv_decoder(config: ConvAEConfig) -> nn.Sequential:
    """Mirror of :func:`conv_encoder`: ``(B, latent_dim) -> (B, in_channels, size, size)``.

    A transposed convolution expands the 1x1 code to the bottleneck map, then
    ``len(widths)`` stride-2 4x4 transposed convolutions double the resolution. The
    output is linear (no activation), so it can be the mean of a Gaussian or the
    location of a Laplace likelihood on intensities of any range.
    """
    channels = tuple(reversed(config.widths))
    layers: list[nn.Module] = [
        nn.Unflatten(1, (config.latent_dim, 1, 1)),
        nn.ConvTranspose2d(config.latent_dim, channels[0], config.bottleneck),
        nn.LeakyReLU(),
    ]
    for c_in, c_out in pairwise(channels):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU()]
    layers.append(nn.ConvTranspose2d(channels[-1], config.in_channels, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


def check_slices(x: torch.Tensor, config: ConvAEConfig) -> None:
    """Raise ``ParameterError`` unless ``x`` is a float batch ``(B, in_channels, size, size)``."""
    expected = (config.in_channels, config.size, config.size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected or not x.is_floating_point():
        raise ParameterError(
            f"input of shape {tuple(x.shape)} and dtype {x.dtype} for model "
            f"'{config.kind}': expected float slices of shape (B, {', '.join(map(str, expected))})"
        )


def check_latent(z: torch.Tensor, config: ConvAEConfig) -> None:
    """Raise ``ParameterError`` unless ``z`` is a float batch of codes ``(B, latent_dim)``."""
    if z.ndim != 2 or z.shape[1] != config.latent_dim or not z.is_floating_point():
        raise ParameterError(
            f"latent code of shape {tuple(z.shape)} and dtype {z.dtype} for model "
            f"'{config.kind}': expected float codes of shape (B, {config.latent_dim})"
        )


def pixel_error(x: torch.Tensor, x_hat: torch.Tensor, recon: Recon) -> torch.Tensor:
    """Element-wise ``(x - x_hat) ** 2`` (``"l2"``) or ``|x - x_hat|`` (``"l1"``), same shape."""
    diff = x - x_hat
    return diff.square() if recon == "l2" else diff.abs()


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm of up to 32 groups."""
    # GroupNorm, not BatchNorm: independent of batch composition (S stacked copies of a
    # slice at scoring time) and needs no SyncBatchNorm under DDP.
    return nn.GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(drop(act(norm(conv(act(norm(x))))))).``"""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            group_norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            group_norm(channels),
            nn.SiLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
