"""Convolutional variational auto-encoder of Zimmerer et al. (seed 000) with proper log-densities.

The model is the one behind the "score" pixel maps of seed 000 (input gradients of the
reconstruction term, the KL term and the ELBO) and the ELBO/IWAE sample scores of seed 004.
It exposes every part a scorer needs as a separate, batched method; scorers stack
SmoothGrad or importance samples along the batch axis, which is exact because no layer
mixes slices (see :mod:`anomaly_maps.models._conv`).

Densities
---------
- prior ``p(z) = N(0, I)``, posterior ``q(z|x) = N(mu, diag(exp(logvar)))``;
- likelihood ``p(x|z)``: independent Gaussians ``N(x_hat, s**2)`` per pixel for
  ``recon="l2"`` or Laplace ``(x_hat, s)`` for ``recon="l1"``, with the fixed scale
  ``s = likelihood_scale`` (seed 004, section 2.1: "sigma is pre-determined"; the seed 000
  reference code uses a Gaussian with ``s = 1``).

:meth:`VAE.reconstruction_loss` is the per-pixel negative log-likelihood without its
constant, so ``-log_likelihood = reconstruction_loss.sum() + n_pixels * log_norm``. The
training loss is the batch mean of ``sum_pixels(reconstruction_loss) + beta * KL``, the
negative ELBO up to that constant when ``beta = 1`` (seed 000, eq. 1).

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients", seed 000, sections 2-3.
.. [2] Lu & Xu, "Anomaly Detection for Skin Disease Images Using Variational
   Autoencoder", seed 004, sections 2.1-2.2 (fixed-scale likelihood, beta, IWAE bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from .._config import is_real
from ._base import LossOutput, register_model
from ._conv import (
    ConvAEConfig,
    check_latent,
    check_slices,
    conv_decoder,
    conv_encoder,
    pixel_error,
)
from .draws import Generators, normal

__all__ = ["VAE", "VAEConfig", "VAEOutput"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class VAEConfig(ConvAEConfig):
    """Hyper-parameters of :class:`VAE`; the defaults are the seed 000 setup.

    Parameters
    ----------
    size, in_channels, widths, latent_dim, recon
        Geometry and reconstruction term, see :class:`~anomaly_maps.models._conv.ConvAEConfig`.
        Defaults: 64x64 single-channel slices, widths ``(16, 32, 64, 256)`` (the seed 000
        reference code), latent 1024, Gaussian likelihood.
    beta : float
        Weight of the KL term in the training loss, >= 0 (1 is the plain ELBO).
    likelihood_scale : float
        Fixed scale ``s`` > 0 of ``p(x|z)``: the Gaussian standard deviation (``"l2"``) or
        the Laplace scale (``"l1"``), in the units of the normalised intensities. Smaller
        values weigh reconstruction more against the KL term.
    """

    kind: ClassVar[str] = "vae"

    beta: float = 1.0
    likelihood_scale: float = 1.0

    def validate(self) -> None:
        """Check all fields; raise ``ParameterError`` naming the first bad one."""
        super().validate()
        if not (is_real(self.beta) and self.beta >= 0):
            raise self._invalid("beta", "a finite float >= 0")
        if not (is_real(self.likelihood_scale) and self.likelihood_scale > 0):
            raise self._invalid("likelihood_scale", "a finite float > 0")


class VAEOutput(NamedTuple):
    """Result of :meth:`VAE.forward`.

    Attributes
    ----------
    x_hat : torch.Tensor
        Decoded mean/location of ``p(x|z)``, shape ``(B, C, H, W)``.
    mu, logvar : torch.Tensor
        Parameters of ``q(z|x)``, each ``(B, D)``.
    z : torch.Tensor
        The decoded code, ``(B, D)``: a sample from ``q(z|x)`` or ``mu``.
    """

    x_hat: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


@register_model(
    VAEConfig,
    presets={
        "zimmerer2019": VAEConfig(
            size=64,
            in_channels=1,
            widths=(16, 32, 64, 256),
            latent_dim=1024,
            recon="l2",
            beta=1.0,
            likelihood_scale=1.0,
        ),
    },
)
class VAE(nn.Module):
    """Fully convolutional VAE on 2D slices (seed 000, section 3).

    Encoder and decoder have ``len(widths) + 1`` convolutions each with LeakyReLU (5 with
    the default four stages); the encoder outputs ``2 * latent_dim`` numbers split into
    ``mu`` and ``logvar``.

    Preset ``"zimmerer2019"``: 64x64 slices, latent 1024, widths ``(16, 32, 64, 256)``,
    Gaussian likelihood with scale 1, beta 1. The paper trained it for 60 epochs with
    batch size 64 and Adam at learning rate 2e-4 on normalised HCP T2 slices (training
    is done by :mod:`anomaly_maps.training`, not here).

    Parameters
    ----------
    config : VAEConfig
        Hyper-parameters, stored as ``self.config``.

    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score", seed 000, section 3.
    .. [2] Lu & Xu, "Anomaly Detection for Skin Disease Images Using VAE", seed 004,
       section 2.

    Examples
    --------
    >>> import torch
    >>> model = VAE(VAEConfig(size=16, widths=(8, 16), latent_dim=8))
    >>> out = model(torch.rand(4, 1, 16, 16), sample=False)
    >>> tuple(out.x_hat.shape), tuple(out.mu.shape)
    ((4, 1, 16, 16), (4, 8))
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = conv_encoder(config, 2 * config.latent_dim)
        self.decoder = conv_decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of ``q(z|x)``.

        Parameters
        ----------
        x : torch.Tensor
            Slices ``(B, C, H, W)`` with ``C = in_channels`` and ``H = W = size``.

        Returns
        -------
        mu, logvar : torch.Tensor
            Posterior mean and log-variance, each ``(B, D)``.
        """
        check_slices(x, self.config)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def reparameterize(
        self,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        *,
        generator: Generators = None,
    ) -> torch.Tensor:
        """Differentiable sample ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``.

        Parameters
        ----------
        mu, logvar : torch.Tensor
            ``(..., D)``; for :class:`SliceGenerators` ``(..., R, D)`` with row ``r`` of
            slice ``r % B`` (``(B, D)``, ``(L, B, D)`` or ``L`` stacked copies ``(L * B, D)``).
        generator : torch.Generator or SliceGenerators, optional
            Source of ``eps`` (on ``mu.device``) for reproducible samples.

        Returns
        -------
        torch.Tensor
            ``z`` with the shape of ``mu``.
        """
        eps = normal(mu.shape, generator, batch_dim=-2, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean (``"l2"``) or location (``"l1"``) of ``p(x|z)``: ``(B, D) -> (B, C, H, W)``."""
        check_latent(z, self.config)
        return self.decoder(z)

    def forward(
        self,
        x: torch.Tensor,
        sample: bool = True,
        *,
        generator: Generators = None,
    ) -> VAEOutput:
        """Encode, take ``z`` (a posterior sample, or ``mu`` if ``sample`` is False), decode.

        Parameters
        ----------
        x : torch.Tensor
            Slices ``(B, C, H, W)``.
        sample : bool
            Draw ``z ~ q(z|x)`` (training, sampling variance) or use the mean.
        generator : torch.Generator or SliceGenerators, optional
            Source of the posterior noise when ``sample`` is True.

        Returns
        -------
        VAEOutput
            ``x_hat (B, C, H, W)``, ``mu``, ``logvar``, ``z`` (each ``(B, D)``).
        """
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator=generator) if sample else mu
        return VAEOutput(self.decode(z), mu, logvar, z)

    @property
    def log_norm(self) -> float:
        """Per-pixel log-normaliser of ``p(x|z)``: ``log(2 pi s^2) / 2`` or ``log(2 s)``."""
        scale = self.config.likelihood_scale
        if self.config.recon == "l2":
            return 0.5 * _LOG_2PI + math.log(scale)
        return math.log(2.0 * scale)

    def reconstruction_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``-log p(x|z)`` without its constant :attr:`log_norm`.

        ``(x - x_hat)**2 / (2 s**2)`` for ``"l2"``, ``|x - x_hat| / s`` for ``"l1"``.

        Parameters
        ----------
        x, x_hat : torch.Tensor
            Slices and reconstructions, ``(B, C, H, W)``.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)``.
        """
        scale = self.config.likelihood_scale
        error = pixel_error(x, x_hat, self.config.recon)
        return error / (2.0 * scale**2) if self.config.recon == "l2" else error / scale

    def log_likelihood(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Normalised ``log p(x|z)`` summed over pixels and channels.

        Parameters
        ----------
        x, x_hat : torch.Tensor
            Slices and reconstructions ``(B, C, H, W)`` (``x_hat = decode(z)``).

        Returns
        -------
        torch.Tensor
            ``(B,)``, equal to ``Normal(x_hat, s)`` / ``Laplace(x_hat, s)`` log-probs summed.
        """
        nll = self.reconstruction_loss(x, x_hat).flatten(1).sum(1)
        return -(nll + x[0].numel() * self.log_norm)

    def kl_loss(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Analytic ``KL(q(z|x) || N(0, I))``.

        Parameters
        ----------
        mu, logvar : torch.Tensor
            ``(..., D)``.

        Returns
        -------
        torch.Tensor
            ``(...)``, e.g. ``(B,)``.
        """
        return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` under ``N(0, I)``: ``(..., D) -> (...)``."""
        return -0.5 * (z.square() + _LOG_2PI).sum(-1)

    def log_posterior(
        self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """``log q(z|x)`` under ``N(mu, diag(exp(logvar)))``: ``(..., D) -> (...)``.

        With ``z_l ~ q(z|x)`` for ``l = 1..L`` stacked along the batch, the importance
        weights of the IWAE bound (seed 004, eq. 7) are ``log_likelihood(x, decode(z_l))
        + log_prior(z_l) - log_posterior(z_l, mu, logvar)``.
        """
        return -0.5 * ((z - mu).square() / logvar.exp() + logvar + _LOG_2PI).sum(-1)

    def elbo(
        self,
        x: torch.Tensor,
        *,
        sample: bool = True,
        generator: Generators = None,
    ) -> torch.Tensor:
        """Single-sample evidence lower bound ``log p(x|z) - KL`` (seed 000, eq. 1; beta = 1).

        Parameters
        ----------
        x : torch.Tensor
            Slices ``(B, C, H, W)``; differentiable w.r.t. ``x`` (the "score", eq. 2).
        sample : bool
            Use ``z ~ q(z|x)`` (an unbiased estimate of the bound) or ``z = mu``.
        generator : torch.Generator or SliceGenerators, optional
            Source of the posterior noise.

        Returns
        -------
        torch.Tensor
            ``(B,)``, a lower bound on ``log p(x)`` in nats.
        """
        out = self(x, sample=sample, generator=generator)
        return self.log_likelihood(x, out.x_hat) - self.kl_loss(out.mu, out.logvar)

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """Batch mean of ``sum_pixels(reconstruction_loss) + beta * KL`` with ``z ~ q(z|x)``.

        Parameters
        ----------
        x : torch.Tensor
            Healthy training slices ``(B, C, H, W)``.
        position : torch.Tensor, optional
            Slice position; accepted for the model contract and ignored (not conditioned).

        Returns
        -------
        LossOutput
            ``total``; ``terms`` ``"rec"`` and ``"kl"`` (batch means, per slice sums).
        """
        out = self(x, sample=True)
        rec = self.reconstruction_loss(x, out.x_hat).flatten(1).sum(1).mean()
        kl = self.kl_loss(out.mu, out.logvar).mean()
        return LossOutput(
            total=rec + self.config.beta * kl,
            terms={"rec": rec.detach(), "kl": kl.detach()},
        )
