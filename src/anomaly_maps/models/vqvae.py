"""Vector-quantised autoencoder (VQ-VAE) of 2D slices, kind ``"vqvae"``.

The encoder maps a slice to a grid of ``code_dim``-dimensional vectors, each replaced by
its nearest entry of a learned codebook of ``num_codes`` vectors; the decoder maps the
quantised grid back to pixels (seed 002, section 2.1, after van den Oord et al.). The
integer code grid is what the autoregressive prior (:mod:`anomaly_maps.models.prior`)
models, and what latent-space restoration resamples.

Plain torch rather than ``monai.networks.nets.VQVAE``: MONAI's quantiser is EMA-only and
has no dead-code restarts, and its constructor arguments are not the hyper-parameters
this project's checkpoints store. The parts scorers need are separate methods:
:meth:`VQVAE.encode`, :meth:`VQVAE.quantize`, :meth:`VQVAE.codes`, :meth:`VQVAE.decode`,
:meth:`VQVAE.decode_codes` and :meth:`VQVAE.reconstruction_loss`.

References
----------
.. [1] Marimont & Tarroni, "Anomaly detection through latent space restoration using
   vector-quantized variational autoencoders", ISBI 2021 (seed 002).
.. [2] van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning",
   NeurIPS 2017.
.. [3] Dhariwal et al., "Jukebox: A Generative Model for Music", arXiv 2005.00341, 2020,
   section 3.2 and ``jukebox/vqvae/bottleneck.py``: random restarts of codes whose
   moving-average usage falls below a threshold, at encoder outputs of the current batch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._config import is_int, is_real
from ..errors import ParameterError
from ._base import LossOutput, ModelConfig, register_model
from ._conv import ResBlock, group_norm
from .codebook import code_counts, code_usage, ema_codebook, restart_dead_codes, sum_over_ranks

__all__ = ["VQVAE", "Quantized", "VQVAEConfig"]

#: Bytes of one full-resolution feature map a CPU inference chunk may hold. The encoder
#: and decoder are convolutions at the input resolution, so a large slice batch streams
#: activations through memory instead of cache: on 2 cores, the 160x160 paper preset
#: (6.5 MB per slice at the first level) encoded 16 slices at 0.66 s per slice in one
#: batch and 0.43 s one at a time, where each convolution already ran at the CPU's sgemm
#: peak.
CPU_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class VQVAEConfig(ModelConfig):
    """Hyper-parameters of a :class:`VQVAE`.

    Parameters
    ----------
    size : int
        Height and width of the (square) input slices; a multiple of
        ``2 ** (len(widths) - 1)``.
    in_channels : int
        Channels of the input slices (1 for one MR contrast).
    widths : tuple of int
        Feature channels at each resolution level: level ``i`` works at
        ``size / 2**i``, so there are ``len(widths) - 1`` stride-2 downsamplings and the
        code grid is ``size / 2 ** (len(widths) - 1)`` on each side.
    res_blocks : int
        Residual blocks per resolution level, in the encoder and in the decoder.
    num_codes : int
        Codebook entries ``K``.
    code_dim : int
        Dimension ``D`` of each codebook vector.
    commitment_weight : float
        Weight ``beta`` of the commitment loss ``||z_e - sg[e]||^2``.
    codebook : {"ema", "loss"}
        How the codebook learns: exponential moving averages of the encoder outputs
        assigned to each code, or gradient descent on the codebook loss
        ``||sg[z_e] - e||^2`` (seed 002, section 2.1).
    ema_decay : float
        Decay of the moving averages: of the code usage counts (both codebooks) and of
        the assigned vectors' sums (``codebook="ema"``).
    ema_epsilon : float
        Laplace smoothing of the code counts (``codebook="ema"`` only).
    dead_code_threshold : float
        A code whose moving-average count of assigned vectors per batch falls below this
        is restarted at a random encoder output of the current batch (Jukebox's random
        restarts [3]_; 0 disables them), with either codebook. As counts start at zero,
        the first training batch also initialises the whole codebook from data.
    recon : {"l1", "l2"}
        Pixel reconstruction loss.
    dropout : float
        Channel dropout probability inside the residual blocks during training.
    """

    kind = "vqvae"

    size: int = 160
    in_channels: int = 1
    widths: tuple[int, ...] = (32, 64, 128, 256)
    res_blocks: int = 2
    num_codes: int = 128
    code_dim: int = 256
    commitment_weight: float = 0.25
    codebook: Literal["ema", "loss"] = "ema"
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    dead_code_threshold: float = 1.0
    recon: Literal["l1", "l2"] = "l1"
    dropout: float = 0.0

    @property
    def downsamplings(self) -> int:
        """Number of stride-2 downsamplings, ``len(widths) - 1``."""
        return len(self.widths) - 1

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(h, w)`` of the code grid."""
        side = self.size // 2**self.downsamplings
        return side, side

    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the first out-of-range field."""
        self._require(
            "in_channels", is_int(self.in_channels) and self.in_channels >= 1, "int >= 1"
        )
        self._require(
            "widths",
            isinstance(self.widths, tuple)
            and len(self.widths) >= 1
            and all(is_int(w) and w >= 1 for w in self.widths),
            "a non-empty tuple of ints >= 1",
        )
        factor = 2**self.downsamplings
        self._require(
            "size",
            is_int(self.size) and self.size >= factor and self.size % factor == 0,
            f"a positive multiple of 2**(len(widths) - 1) = {factor} (widths={self.widths})",
        )
        self._require("res_blocks", is_int(self.res_blocks) and self.res_blocks >= 0, "int >= 0")
        self._require("num_codes", is_int(self.num_codes) and self.num_codes >= 2, "int >= 2")
        self._require("code_dim", is_int(self.code_dim) and self.code_dim >= 1, "int >= 1")
        self._require(
            "commitment_weight",
            is_real(self.commitment_weight) and self.commitment_weight >= 0,
            "float >= 0",
        )
        self._require("codebook", self.codebook in ("ema", "loss"), "'ema' or 'loss'")
        self._require(
            "ema_decay",
            is_real(self.ema_decay) and 0 <= self.ema_decay < 1,
            "float in [0, 1)",
        )
        self._require(
            "ema_epsilon", is_real(self.ema_epsilon) and self.ema_epsilon > 0, "float > 0"
        )
        self._require(
            "dead_code_threshold",
            is_real(self.dead_code_threshold) and self.dead_code_threshold >= 0,
            "float >= 0",
        )
        self._require("recon", self.recon in ("l1", "l2"), "'l1' or 'l2'")
        self._require(
            "dropout", is_real(self.dropout) and 0 <= self.dropout < 1, "float in [0, 1)"
        )


class Quantized(NamedTuple):
    """Output of :meth:`VQVAE.quantize`.

    Attributes
    ----------
    z_q : torch.Tensor
        ``(B, D, h, w)`` quantised vectors with the straight-through gradient: the value
        is the nearest codebook entry, the gradient flows to ``z_e`` unchanged.
    codes : torch.Tensor
        ``(B, h, w)`` long indices of the nearest codebook entries.
    commitment_loss : torch.Tensor
        Scalar ``mean ||z_e - sg[e]||^2`` (gradient to the encoder only).
    codebook_loss : torch.Tensor
        Scalar ``mean ||sg[z_e] - e||^2`` (gradient to the codebook only) when
        ``codebook="loss"``; a zero scalar when the codebook is EMA-updated.
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor


def _res_stack(channels: int, config: VQVAEConfig) -> list[nn.Module]:
    return [ResBlock(channels, config.dropout) for _ in range(config.res_blocks)]


@register_model(
    VQVAEConfig,
    presets={
        # Seed 002, section 3.2: 160x160 axial slices, 20x20 latent (3 downsamplings),
        # 128 codes x 256 dims, 4 residual blocks per level, L1 reconstruction, dropout
        # 0.1. Section 2.1 trains the codebook with the codebook loss and weighs the
        # commitment term 1 (no beta in its loss; the authors' code uses 1 as well).
        "marimont2021": VQVAEConfig(
            size=160,
            in_channels=1,
            widths=(64, 128, 256, 256),
            res_blocks=4,
            num_codes=128,
            code_dim=256,
            commitment_weight=1.0,
            codebook="loss",
            recon="l1",
            dropout=0.1,
        )
    },
)
class VQVAE(nn.Module):
    """Convolutional VQ-VAE with residual blocks (seed 002, sections 2.1 and 3.2).

    Encoder: 3x3 stem conv, then per level ``res_blocks`` residual blocks and a 4x4
    stride-2 conv to the next width, ``res_blocks`` more blocks at the bottom, and a 1x1
    conv to ``code_dim``. The decoder mirrors it with 4x4 stride-2 transposed convs. The
    nearest-neighbour quantiser uses the straight-through estimator; its codebook learns
    by EMA or by the codebook loss (``config.codebook``).

    Parameters
    ----------
    config : VQVAEConfig
        Hyper-parameters; stored as ``self.config``.

    Notes
    -----
    The moving-average code counts (buffer ``ema_count``) and, with ``codebook="ema"``,
    the codebook and its sums (buffers) are updated in training mode only, inside
    :meth:`quantize` (so also by :meth:`forward`); dead-code restarts happen there too,
    with either codebook. Under ``torch.distributed`` the per-batch statistics are summed
    over processes (so every rank finds the same dead codes) and the restart candidates
    are broadcast from rank 0 (so every rank restarts them at the same vectors), as in
    Jukebox [3]_: all replicas keep the same codebook.
    """

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        encoder: list[nn.Module] = [nn.Conv2d(config.in_channels, widths[0], 3, padding=1)]
        for c_in, c_out in itertools.pairwise(widths):
            encoder += [*_res_stack(c_in, config), nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)]
        encoder += [
            *_res_stack(widths[-1], config),
            group_norm(widths[-1]),
            nn.SiLU(),
            nn.Conv2d(widths[-1], config.code_dim, 1),
        ]
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [
            nn.Conv2d(config.code_dim, widths[-1], 1),
            *_res_stack(widths[-1], config),
        ]
        for c_in, c_out in itertools.pairwise(reversed(widths)):
            decoder += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                *_res_stack(c_out, config),
            ]
        decoder += [
            group_norm(widths[0]),
            nn.SiLU(),
            nn.Conv2d(widths[0], config.in_channels, 3, padding=1),
        ]
        self.decoder = nn.Sequential(*decoder)

        k = config.num_codes
        codebook = torch.empty(k, config.code_dim).uniform_(-1.0 / k, 1.0 / k)
        if config.codebook == "loss":
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("ema_count", torch.zeros(k))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Accept state dicts of ``codebook="loss"`` models written before they tracked
        code usage: without a record every code starts just alive (count = threshold),
        as Jukebox's codebook after its data initialisation, so a resumed run restarts
        only the codes its batches then leave unused."""
        key = f"{prefix}ema_count"
        if self.config.codebook == "loss" and key not in state_dict:
            state_dict[key] = torch.full_like(self.ema_count, self.config.dead_code_threshold)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(h, w)`` of the code grid."""
        return self.config.grid_size

    def _run_chunked(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``module(x)``, in chunks of slices for CPU inference (eval mode, no autograd;
        see :data:`CPU_CHUNK_BYTES`); every layer works per slice, so the result is the same."""
        if x.device.type != "cpu" or self.training or torch.is_grad_enabled():
            return module(x)
        per_slice = self.config.widths[0] * self.config.size**2 * x.element_size()
        chunk = max(1, CPU_CHUNK_BYTES // per_slice)
        if x.shape[0] <= chunk:
            return module(x)
        return torch.cat([module(part) for part in x.split(chunk)])

    def _check_slices(self, x: torch.Tensor) -> None:
        c, s = self.config.in_channels, self.config.size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ParameterError(
                f"input of shape {tuple(x.shape)} for model 'vqvae': expected (B, {c}, {s}, {s})"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous encoder output ``z_e``.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C, H, W)`` float slices, ``H = W = config.size``.

        Returns
        -------
        torch.Tensor
            ``(B, D, h, w)`` with ``D = code_dim`` and ``(h, w) = grid_size``.
        """
        self._check_slices(x)
        return self._run_chunked(self.encoder, x)

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        """Replace each vector of ``z_e`` by its nearest codebook entry (seed 002, eq. 1).

        In training mode this also updates the code counts, with ``codebook="ema"`` the
        codebook, and restarts dead codes (see :class:`VQVAEConfig`).

        Parameters
        ----------
        z_e : torch.Tensor
            ``(B, D, h, w)`` encoder output.

        Returns
        -------
        Quantized
            ``z_q`` ``(B, D, h, w)`` (straight-through), ``codes`` ``(B, h, w)`` long, and
            the scalar commitment and codebook losses.
        """
        b, d, h, w = z_e.shape
        # Distances in float32 even under autocast: argmin over near-ties needs precision.
        # No autograd: argmin has no gradient, and a restart may then change the codebook.
        with torch.no_grad():
            flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d).float()
            codebook = self.codebook.float()
            distances = (
                flat.square().sum(1, keepdim=True)
                - 2 * flat @ codebook.T
                + codebook.square().sum(1)[None, :]
            )
            codes = distances.argmin(1)
        if self.training:
            self._update_codebook(flat, codes)
        codebook = self.codebook.float()
        quantized = F.embedding(codes, codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        quantized = quantized.to(z_e.dtype)
        commitment = F.mse_loss(z_e, quantized.detach())
        if self.config.codebook == "loss":
            codebook_loss = F.mse_loss(quantized, z_e.detach())
        else:
            codebook_loss = z_e.new_zeros(())
        z_q = z_e + (quantized - z_e).detach()
        return Quantized(z_q, codes.view(b, h, w), commitment, codebook_loss)

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """Moving-average code counts (and EMA codebook) from one batch, then restarts
        (:mod:`~anomaly_maps.models.codebook`); ``flat`` is ``(N, D)`` float32 encoder
        outputs, ``codes`` their ``(N,)`` codes."""
        cfg = self.config
        ema_sum = self.ema_sum if cfg.codebook == "ema" else None
        counts = sum_over_ranks(code_counts(codes, cfg.num_codes))
        self.ema_count.lerp_(counts, 1 - cfg.ema_decay)
        if ema_sum is not None:
            ema_codebook(
                self.codebook,
                self.ema_count,
                ema_sum,
                flat,
                codes,
                epsilon=cfg.ema_epsilon,
                decay=cfg.ema_decay,
            )
        if cfg.dead_code_threshold > 0:
            restart_dead_codes(
                self.codebook, self.ema_count, ema_sum, flat, cfg.dead_code_threshold
            )

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Code grid of slices.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C, H, W)`` float slices.

        Returns
        -------
        torch.Tensor
            ``(B, h, w)`` long codes in ``[0, num_codes)``.
        """
        return self.quantize(self.encode(x)).codes

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Decode a ``(B, D, h, w)`` latent grid to ``(B, C, H, W)`` slices."""
        return self._run_chunked(self.decoder, z_q)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode a code grid: codebook lookup, then the decoder.

        Parameters
        ----------
        codes : torch.Tensor
            ``(B, h, w)`` long codes in ``[0, num_codes)``.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` reconstructed slices.
        """
        h, w = self.grid_size
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (h, w) or codes.is_floating_point():
            raise ParameterError(
                f"codes of shape {tuple(codes.shape)} and dtype {codes.dtype} for model "
                f"'vqvae': expected integer codes of shape (B, {h}, {w})"
            )
        z_q = F.embedding(codes, self.codebook).permute(0, 3, 1, 2)
        return self.decode(z_q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(B, C, H, W)`` slices through the quantised bottleneck."""
        return self.decode(self.quantize(self.encode(x)).z_q)

    def reconstruction_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Per-pixel reconstruction error, ``|x - x_hat|`` (``"l1"``) or its square (``"l2"``).

        Parameters
        ----------
        x, x_hat : torch.Tensor
            ``(B, C, H, W)`` slices and reconstructions.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` non-negative errors.
        """
        diff = x - x_hat
        return diff.abs() if self.config.recon == "l1" else diff.square()

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """VQ-VAE loss of seed 002, eq. 2: reconstruction + codebook + beta * commitment.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C, H, W)`` float slices.
        position : torch.Tensor or None
            Accepted for the common model interface and unused: the VQ-VAE is not
            conditioned on slice position (seed 002 conditions the prior only).

        Returns
        -------
        LossOutput
            ``total`` and the terms ``rec`` (mean pixel error), ``commit``,
            ``codebook`` (with ``codebook="loss"`` only), and the batch's codebook usage
            ``perplexity`` and ``codes_used`` (:func:`~anomaly_maps.models.codebook.code_usage`).
        """
        q = self.quantize(self.encode(x))
        rec = self.reconstruction_loss(x, self.decode(q.z_q)).mean()
        total = rec + self.config.commitment_weight * q.commitment_loss + q.codebook_loss
        terms = {"rec": rec.detach(), "commit": q.commitment_loss.detach()}
        if self.config.codebook == "loss":
            terms["codebook"] = q.codebook_loss.detach()
        terms.update(code_usage(q.codes, self.config.num_codes))
        return LossOutput(total=total, terms=terms)
