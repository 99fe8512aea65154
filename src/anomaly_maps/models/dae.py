"""Denoising auto-encoder: the seed 000 baseline, the VAE architecture made deterministic.

Zimmerer et al. compare their VAE scores with "a Denoising Autoencoder (DAE) with the same
architecture using the reconstruction error" (seed 000, section 3; pixel AUROC 0.808). The
encoder and decoder here are the VAE's (built by the same helpers in
:mod:`anomaly_maps.models._conv`), with a ``latent_dim`` code instead of ``mu``/``logvar``.

Training noise:

- ``"gaussian"``: i.i.d. ``N(0, noise_std**2)`` per pixel (Vincent et al. 2010, cited by
  seed 000; the seed does not give its noise level, 0.2 is our choice).
- ``"coarse"``: Gaussian noise drawn on a ``noise_resolution x noise_resolution`` grid,
  upsampled bilinearly to the slice and randomly translated (circular shift), as in
  Kascenas et al. 2022 (AntanasKascenas/DenoisingAE, ``src/denoising.py``: 16x16 grid,
  std 0.2, 128x128 slices). Difference: ``noise_std`` here is the per-pixel standard
  deviation of the noise actually added; Kascenas et al. quote the std of the coarse grid,
  which bilinear interpolation shrinks by up to a factor 2 between grid nodes. We divide
  by the known interpolation factor so the noise is stationary with exactly that std, and
  shift each slice independently. Kascenas et al. add noise to the foreground only; we
  add it everywhere (a foreground threshold needs an intensity convention).

References
----------
.. [1] Zimmerer et al., "A Case for the Score", seed 000, section 3 and Table 1.
.. [2] Kascenas, Pugeault & O'Neil, "Denoising Autoencoders for Unsupervised Anomaly
   Detection in Brain MRI", MIDL 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._config import is_int, is_real
from ._base import LossOutput, register_model
from ._conv import (
    ConvAEConfig,
    check_latent,
    check_slices,
    conv_decoder,
    conv_encoder,
    pixel_error,
)
from .draws import Generators, integers, normal

__all__ = ["DAE", "DAEConfig"]

Noise = Literal["gaussian", "coarse"]
_NOISE_CHOICES: tuple[str, ...] = ("gaussian", "coarse")


@dataclass(frozen=True)
class DAEConfig(ConvAEConfig):
    """Hyper-parameters of :class:`DAE`: the VAE geometry plus the training noise.

    Parameters
    ----------
    size, in_channels, widths, latent_dim, recon
        Geometry and reconstruction error (``"l2"`` squared, ``"l1"`` absolute), see
        :class:`~anomaly_maps.models._conv.ConvAEConfig`; defaults as the seed 000 VAE.
    noise : {"gaussian", "coarse"}
        Pixel-wise Gaussian noise or coarse (low-resolution, upsampled) Gaussian noise.
    noise_std : float
        Per-pixel standard deviation of the added noise, >= 0 (0 trains a plain AE).
    noise_resolution : int
        Side of the coarse noise grid, in [1, size]; used by ``noise="coarse"`` only.
    """

    kind: ClassVar[str] = "dae"

    noise: Noise = "gaussian"
    noise_std: float = 0.2
    noise_resolution: int = 16

    def validate(self) -> None:
        """Check all fields; raise ``ParameterError`` naming the first bad one."""
        super().validate()
        if self.noise not in _NOISE_CHOICES:
            raise self._invalid("noise", f"one of {list(_NOISE_CHOICES)}")
        if not (is_real(self.noise_std) and self.noise_std >= 0):
            raise self._invalid("noise_std", "a finite float >= 0")
        if not (is_int(self.noise_resolution) and 1 <= self.noise_resolution <= self.size):
            raise self._invalid("noise_resolution", f"an int in [1, size={self.size}]")


def _bilinear_std(resolution: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """Per-pixel std ``(size, size)`` of unit i.i.d. noise on a grid upsampled bilinearly.

    Bilinear upsampling with ``align_corners=True`` is separable, ``out = A N A^T`` with
    ``A`` of shape ``(size, resolution)``, so pixel ``(i, j)`` has variance
    ``(sum_k A_ik^2) * (sum_l A_jl^2)``. ``A``'s columns are the upsampled unit vectors.
    """
    eye = torch.eye(resolution, device=like.device, dtype=like.dtype).unsqueeze(1)
    weights = F.interpolate(eye, size=size, mode="linear", align_corners=True)  # (r, 1, size)
    row_var = weights.square().sum(dim=(0, 1))  # (size,)
    return (row_var[:, None] * row_var[None, :]).sqrt()


@register_model(
    DAEConfig,
    presets={
        "zimmerer2019": DAEConfig(
            size=64,
            in_channels=1,
            widths=(16, 32, 64, 256),
            latent_dim=1024,
            recon="l2",
            noise="gaussian",
            noise_std=0.2,
            noise_resolution=16,
        ),
    },
)
class DAE(nn.Module):
    """Deterministic conv auto-encoder trained to remove noise (seed 000 baseline).

    Preset ``"zimmerer2019"``: the VAE preset's architecture (64x64, latent 1024, widths
    ``(16, 32, 64, 256)``), L2 error, Gaussian noise of std 0.2 (the std is our choice,
    seed 000 does not report it). Its pixel score is the reconstruction error of a clean
    slice, ``reconstruction_loss(x, model(x))``.

    Parameters
    ----------
    config : DAEConfig
        Hyper-parameters, stored as ``self.config``.

    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score", seed 000, section 3.
    .. [2] Kascenas et al., "Denoising Autoencoders for Unsupervised Anomaly Detection in
       Brain MRI", MIDL 2022 (coarse noise).

    Examples
    --------
    >>> import torch
    >>> model = DAE(DAEConfig(size=16, widths=(8, 16), latent_dim=8, noise="coarse",
    ...                       noise_resolution=4))
    >>> x = torch.rand(2, 1, 16, 16)
    >>> tuple(model(model.corrupt(x)).shape)
    (2, 1, 16, 16)
    """

    def __init__(self, config: DAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = conv_encoder(config, config.latent_dim)
        self.decoder = conv_decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code ``(B, C, H, W) -> (B, D)``."""
        check_slices(x, self.config)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(B, D) -> (B, C, H, W)``."""
        check_latent(z, self.config)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x_hat`` of ``x`` (no noise added): ``(B, C, H, W) -> (B, C, H, W)``."""
        return self.decode(self.encode(x))

    def corrupt(self, x: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """Add the configured training noise.

        Parameters
        ----------
        x : torch.Tensor
            Slices ``(B, C, H, W)``.
        generator : torch.Generator or SliceGenerators, optional
            Source of the noise (on ``x.device``): same seed, same noise.

        Returns
        -------
        torch.Tensor
            ``x + noise``, ``(B, C, H, W)``; the noise has per-pixel std ``noise_std``
            (independent per pixel for ``"gaussian"``, spatially smooth for ``"coarse"``).
        """
        check_slices(x, self.config)
        cfg = self.config
        if cfg.noise == "gaussian":
            noise = normal(x.shape, generator, device=x.device, dtype=x.dtype)
            return x + cfg.noise_std * noise

        batch, channels, size, _ = x.shape
        res = cfg.noise_resolution
        grid = normal((batch, channels, res, res), generator, device=x.device, dtype=x.dtype)
        smooth = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)
        smooth = smooth / _bilinear_std(res, size, x)
        # Circular shift by a random offset per slice (rows, then columns).
        shift = integers(0, size, (2, batch, 1), generator, batch_dim=1, device=x.device)
        index = (torch.arange(size, device=x.device) - shift) % size  # (2, B, size)
        full = (batch, channels, size, size)
        smooth = smooth.gather(2, index[0][:, None, :, None].expand(full))
        smooth = smooth.gather(3, index[1][:, None, None, :].expand(full))
        return x + cfg.noise_std * smooth

    def reconstruction_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Per-pixel squared (``"l2"``) or absolute (``"l1"``) error, ``(B, C, H, W)``."""
        return pixel_error(x, x_hat, self.config.recon)

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """Batch mean of the per-slice summed error between ``x`` and ``model(corrupt(x))``.

        Parameters
        ----------
        x : torch.Tensor
            Clean healthy training slices ``(B, C, H, W)``.
        position : torch.Tensor, optional
            Slice position; accepted for the model contract and ignored.

        Returns
        -------
        LossOutput
            ``total`` and ``terms["rec"]``.
        """
        rec = self.reconstruction_loss(x, self(self.corrupt(x))).flatten(1).sum(1).mean()
        return LossOutput(total=rec, terms={"rec": rec.detach()})
