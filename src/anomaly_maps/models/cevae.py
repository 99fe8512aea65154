"""Context-encoding VAE (ceVAE): the VAE plus inpainting of randomly masked squares.

Where each piece of the recipe comes from:

- Model: the :class:`~anomaly_maps.models.vae.VAE` unchanged; the context-encoding (CE)
  branch shares its weights (seed 003, Methods, Fig. 1).
- CE branch: the masked slice is encoded and the posterior *mean* is decoded, no sampling
  ("the CE directly uses the mean of the predicted latent space distribution", seed 003).
  The MOOD example code samples ``z`` here instead.
- CE loss: the reconstruction term of the VAE between that output and the *whole* clean
  slice, as in the MOOD example (``rec_loss_fn(x_rec_ce, inpt)``); the context encoder of
  Pathak et al. on the slides of seed 001 ("Methods: Context Encoding") scores only the
  masked region.
- Mixing: ``total = (1 - ce_factor) * VAE loss + ce_factor * CE loss`` with ``ce_factor``
  in [0, 1] (MOOD example, default 0.5: 0 is a plain VAE, 1 pure inpainting). The sum
  ``L_KL + L_rec + L_rec_CE`` of the paper (seed 003, eq. 6) is ``ce_factor = 0.5`` up to
  a factor 2.
- Masks: 0 to 2 squares per slice with sides up to half the slice, filled with a random
  intensity drawn between the minimum and the maximum of the data (MOOD example,
  ``get_square_mask(square_size=(0, size // 2), n_squares=(0, 3), noise_val=(min, max))``).
  Our version is batched, reproducible through a ``torch.Generator``, draws each square's
  side and fill independently, takes the intensity range per slice (not per batch), and
  really places several squares (the MOOD helper keeps only the last one and treats a
  fill value of exactly 0 as "not masked").

Preset ``"mood2020"`` reproduces the MOOD example run (``ce_vae.py`` command line
defaults): 128x128 slices, widths ``(16, 64, 256, 1024)``, latent 128, L1 likelihood,
``beta = 0.01`` on *means* over pixels and latents, i.e. ``0.01 * 128**2 / 128 = 1.28`` on
the sums used here, ``ce_factor = 0.5``; trained there with Adam 1e-4, batch 16, 20 epochs on
intensities scaled to [-1, 1] (for [0, 1] data use ``likelihood_scale = 0.5`` to keep the
same weighting).

References
----------
.. [1] Zimmerer et al., "Unsupervised Anomaly Localization using Variational
   Auto-Encoders" (ceVAE), reviewed in seed 003, Methods and eq. 6.
.. [2] Naval-Marimont & Tarroni, slides on unsupervised anomaly detection, seed 001,
   "Methods: Context Encoding".
.. [3] MIC-DKFZ/mood, ``example_algos/algorithms/ce_vae.py`` and
   ``example_algos/util/ce_noise.py`` (MOOD challenge example code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from .._config import is_int, is_real
from ._base import LossOutput, register_model
from ._conv import check_slices
from .draws import Generators, integers, uniform
from .vae import VAE, VAEConfig

__all__ = ["CeVAE", "CeVAEConfig"]

Fill = Literal["uniform", "noise", "zero"]
_FILL_CHOICES: tuple[str, ...] = ("uniform", "noise", "zero")


@dataclass(frozen=True)
class CeVAEConfig(VAEConfig):
    """Hyper-parameters of :class:`CeVAE`: those of :class:`VAEConfig` plus the CE task.

    Parameters
    ----------
    ce_factor : float
        Weight of the inpainting loss in [0, 1]; the VAE loss gets ``1 - ce_factor``.
    n_squares : tuple of int
        ``(min, max)`` number of squares per slice, drawn uniformly (inclusive),
        ``0 <= min <= max``, ``max >= 1``.
    square_size : tuple of float
        ``(min, max)`` side of a square as a fraction of ``size``, ``0 < min <= max <= 1``;
        each side is an integer number of pixels drawn uniformly from
        ``[round(min * size), round(max * size)]`` (at least 1).
    fill : {"uniform", "noise", "zero"}
        Content of a masked square: one random intensity per square drawn between the
        slice's minimum and maximum (``"uniform"``, MOOD), independent random intensities
        per pixel in that range (``"noise"``), or 0 (``"zero"``).
    """

    kind: ClassVar[str] = "cevae"

    ce_factor: float = 0.5
    n_squares: tuple[int, int] = (1, 3)
    square_size: tuple[float, float] = (0.0625, 0.5)
    fill: Fill = "uniform"

    def validate(self) -> None:
        """Check all fields; raise ``ParameterError`` naming the first bad one."""
        super().validate()
        if not (is_real(self.ce_factor) and 0 <= self.ce_factor <= 1):
            raise self._invalid("ce_factor", "a float in [0, 1]")
        n = self.n_squares
        if not (
            isinstance(n, tuple)
            and len(n) == 2
            and all(is_int(v) for v in n)
            and 0 <= n[0] <= n[1]
            and n[1] >= 1
        ):
            raise self._invalid(
                "n_squares", "a pair of ints (min, max), 0 <= min <= max, max >= 1"
            )
        s = self.square_size
        if not (
            isinstance(s, tuple)
            and len(s) == 2
            and all(is_real(v) for v in s)
            and 0 < s[0] <= s[1] <= 1
        ):
            raise self._invalid(
                "square_size", "a pair of fractions of size (min, max), 0 < min <= max <= 1"
            )
        if self.fill not in _FILL_CHOICES:
            raise self._invalid("fill", f"one of {list(_FILL_CHOICES)}")

    @property
    def square_pixels(self) -> tuple[int, int]:
        """``(min, max)`` side of a square in pixels at this ``size`` (inclusive, >= 1)."""
        low = max(1, round(self.square_size[0] * self.size))
        return low, max(low, round(self.square_size[1] * self.size))


@register_model(
    CeVAEConfig,
    presets={
        "mood2020": CeVAEConfig(
            size=128,
            in_channels=1,
            widths=(16, 64, 256, 1024),
            latent_dim=128,
            recon="l1",
            beta=1.28,
            likelihood_scale=1.0,
            ce_factor=0.5,
            n_squares=(0, 2),
            square_size=(1 / 128, 0.5),
            fill="uniform",
        ),
    },
)
class CeVAE(VAE):
    """Context-encoding VAE (seed 003): a :class:`VAE` trained also to inpaint squares.

    All VAE methods (``encode``, ``decode``, ``kl_loss``, ``elbo``, ...) are inherited, so
    every VAE scorer works on it; the combined map of seed 003 multiplies the
    reconstruction error element-wise with the input gradient of :meth:`kl_loss`.

    Parameters
    ----------
    config : CeVAEConfig
        Hyper-parameters, stored as ``self.config``.

    References
    ----------
    .. [1] Zimmerer et al., ceVAE, reviewed in seed 003.
    .. [2] MIC-DKFZ/mood, ``example_algos/algorithms/ce_vae.py``.

    Examples
    --------
    >>> import torch
    >>> model = CeVAE(CeVAEConfig(size=16, widths=(8, 16), latent_dim=8))
    >>> g = torch.Generator().manual_seed(0)
    >>> x_masked, mask = model.mask_squares(torch.rand(2, 1, 16, 16), generator=g)
    >>> tuple(mask.shape), mask.dtype
    ((2, 1, 16, 16), torch.bool)
    """

    config: CeVAEConfig

    def mask_squares(
        self, x: torch.Tensor, *, generator: Generators = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Overwrite random squares of each slice (the context-encoding corruption).

        Each slice gets ``n ~ U{n_squares}`` squares with sides ``~ U{square_pixels}`` at
        uniform positions fully inside the slice; all channels are masked alike. Where
        squares overlap, the later square's fill wins.

        Parameters
        ----------
        x : torch.Tensor
            Slices ``(B, C, H, W)``.
        generator : torch.Generator or SliceGenerators, optional
            Source of all random draws (on ``x.device``): same seed, same masks.

        Returns
        -------
        x_masked : torch.Tensor
            ``(B, C, H, W)``, ``x`` with the squares filled; the fill is detached, so no
            gradient reaches ``x`` through masked pixels.
        mask : torch.Tensor
            ``(B, 1, H, W)`` bool, True inside a square.
        """
        check_slices(x, self.config)
        batch, _, height, width = x.shape
        n_min, n_max = self.config.n_squares
        side_min, side_max = self.config.square_pixels

        def draw_int(low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
            return integers(low, high + 1, shape, generator, device=x.device)

        count = draw_int(n_min, n_max, (batch,))
        side = draw_int(side_min, side_max, (batch, n_max))
        corner = uniform((2, batch, n_max), generator, batch_dim=1, device=x.device)
        top = (corner[0] * (height - side + 1)).floor().long()
        left = (corner[1] * (width - side + 1)).floor().long()

        rows = torch.arange(height, device=x.device)
        cols = torch.arange(width, device=x.device)
        in_rows = (rows >= top[..., None]) & (rows < (top + side)[..., None])  # (B, K, H)
        in_cols = (cols >= left[..., None]) & (cols < (left + side)[..., None])  # (B, K, W)
        active = torch.arange(n_max, device=x.device) < count[:, None]  # (B, K)
        inside = in_rows[..., :, None] & in_cols[..., None, :] & active[..., None, None]
        # 1-based index of the last square covering each pixel, 0 where none does.
        order = torch.arange(1, n_max + 1, device=x.device)[None, :, None, None]
        last = (inside * order).amax(dim=1, keepdim=True)  # (B, 1, H, W)
        mask = last > 0

        flat = x.detach().flatten(1)
        low = flat.amin(dim=1)[:, None, None, None]
        high = flat.amax(dim=1)[:, None, None, None]
        unit_shape = (batch, 1, height, width)
        if self.config.fill == "uniform":
            per_square = uniform((batch, n_max + 1), generator, device=x.device, dtype=x.dtype)
            unit = per_square.gather(1, last.flatten(1)).view(unit_shape)
            fill = low + unit * (high - low)
        elif self.config.fill == "noise":
            unit = uniform(unit_shape, generator, device=x.device, dtype=x.dtype)
            fill = low + unit * (high - low)
        else:
            fill = torch.zeros((), device=x.device, dtype=x.dtype)
        return torch.where(mask, fill, x), mask

    def inpainting_loss(self, x: torch.Tensor, *, generator: Generators = None) -> torch.Tensor:
        """Context-encoding loss: reconstruct the clean slice from a masked copy.

        Parameters
        ----------
        x : torch.Tensor
            Clean slices ``(B, C, H, W)``.
        generator : torch.Generator or SliceGenerators, optional
            Source of the masks (see :meth:`mask_squares`).

        Returns
        -------
        torch.Tensor
            ``(B,)``: ``reconstruction_loss(x, decode(mu(x_masked)))`` summed over pixels.
        """
        x_masked, _ = self.mask_squares(x, generator=generator)
        mu, _ = self.encode(x_masked)
        return self.reconstruction_loss(x, self.decode(mu)).flatten(1).sum(1)

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """``(1 - ce_factor) * VAE loss + ce_factor * batch mean of inpainting_loss``.

        Parameters
        ----------
        x : torch.Tensor
            Healthy training slices ``(B, C, H, W)``.
        position : torch.Tensor, optional
            Slice position; accepted for the model contract and ignored.

        Returns
        -------
        LossOutput
            ``total``; ``terms`` ``"rec"``, ``"kl"`` (VAE part) and ``"ce"`` (inpainting).
        """
        vae = super().training_loss(x, position=position)
        ce = self.inpainting_loss(x).mean()
        factor = self.config.ce_factor
        return LossOutput(
            total=(1.0 - factor) * vae.total + factor * ce,
            terms={**vae.terms, "ce": ce.detach()},
        )
