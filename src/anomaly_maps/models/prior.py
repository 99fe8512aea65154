"""Autoregressive prior over VQ-VAE code grids, kind ``"prior"``.

Seed 002 (section 2.2) models the distribution of the VQ-VAE's latent codes with an
autoregressive (AR) model, ``p(c) = prod_i p(c_i | c_1, ..., c_{i-1})`` in raster order,
optionally conditioned on the slice position (section 3.2). Its likelihoods give the
sample score (sum of per-code NLL above ``lambda_s``) and its samples the latent-space
restoration (codes with NLL above ``lambda_p`` are redrawn, section 2.4).

Architecture: a causal (decoder-only) transformer over the ``h * w`` raster-ordered
codes, which the DESIGN accepts in place of the paper's PixelSNAIL. Why:

* causality is exact by construction (an attention mask), with no blind spot and no
  shift bookkeeping, and every position attends to the whole prefix, as PixelSNAIL's
  attention layers do;
* teacher-forced likelihoods of a whole grid are one parallel forward pass;
* sampling can cache keys and values, so each raster step costs one position rather than
  a full pass over the grid; :meth:`CodePrior.resample` also starts at the first position
  to redraw and feeds untouched runs of positions as one chunk.

References
----------
.. [1] Marimont & Tarroni, "Anomaly detection through latent space restoration using
   vector-quantized variational autoencoders", ISBI 2021 (seed 002).
.. [2] Chen et al., "PixelSNAIL: An Improved Autoregressive Generative Model", ICML 2018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._config import is_int, is_real
from ..errors import ParameterError
from ._base import LossOutput, ModelConfig, register_model
from ._transformer import Block, KVCache
from .draws import Generators, uniform
from .vqvae import VQVAEConfig

__all__ = ["CodePrior", "PriorConfig"]

#: Sine/cosine frequencies ``pi * 2**k``, ``k < _POSITION_FREQUENCIES``, of the slice position.
_POSITION_FREQUENCIES = 8


@dataclass(frozen=True)
class PriorConfig(ModelConfig):
    """Hyper-parameters of a :class:`CodePrior`.

    Parameters
    ----------
    num_codes : int
        Codebook size ``K`` of the VQ-VAE whose codes are modelled.
    grid_size : tuple of int
        ``(h, w)`` of the VQ-VAE code grid.
    width : int
        Transformer model width; a multiple of ``heads``.
    depth : int
        Number of transformer blocks.
    heads : int
        Attention heads per block.
    dropout : float
        Dropout on embeddings, attention weights and residual branches while training.
    conditioned : bool
        Condition on the slice position, a float in ``[0, 1]`` per slice (seed 002,
        section 3.2): its sine/cosine features go through a small MLP whose output is
        added to every token embedding.
    """

    kind = "prior"

    num_codes: int = 128
    grid_size: tuple[int, int] = (20, 20)
    width: int = 256
    depth: int = 8
    heads: int = 8
    dropout: float = 0.1
    conditioned: bool = True

    @classmethod
    def for_vqvae(cls, vqvae: VQVAEConfig, **overrides: object) -> PriorConfig:
        """A prior config whose ``num_codes`` and ``grid_size`` match a VQ-VAE config."""
        return cls(**{"num_codes": vqvae.num_codes, "grid_size": vqvae.grid_size, **overrides})

    def check_matches(self, vqvae: VQVAEConfig) -> None:
        """Raise :class:`ParameterError` unless this prior models ``vqvae``'s code grids."""
        if (self.num_codes, self.grid_size) != (vqvae.num_codes, vqvae.grid_size):
            raise ParameterError(
                f"prior with num_codes={self.num_codes}, grid_size={self.grid_size} does not "
                f"fit the VQ-VAE: expected num_codes={vqvae.num_codes}, "
                f"grid_size={vqvae.grid_size}"
            )

    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the first out-of-range field."""
        self._require("num_codes", is_int(self.num_codes) and self.num_codes >= 2, "int >= 2")
        self._require(
            "grid_size",
            isinstance(self.grid_size, tuple)
            and len(self.grid_size) == 2
            and all(is_int(n) and n >= 1 for n in self.grid_size),
            "a pair (h, w) of ints >= 1",
        )
        self._require("depth", is_int(self.depth) and self.depth >= 1, "int >= 1")
        self._require("heads", is_int(self.heads) and self.heads >= 1, "int >= 1")
        self._require(
            "width",
            is_int(self.width) and self.width >= 1 and self.width % self.heads == 0,
            f"a positive multiple of heads={self.heads}",
        )
        self._require(
            "dropout",
            is_real(self.dropout) and 0 <= self.dropout < 1,
            "float in [0, 1)",
        )
        self._require("conditioned", isinstance(self.conditioned, bool), "bool")


def _inverse_cdf_draw(probabilities: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Categorical draws ``(B,)`` from ``(B, K)`` probabilities and ``(B,)`` uniforms in
    [0, 1): the first category whose cumulative probability exceeds the uniform."""
    cdf = probabilities.cumsum(-1)
    index = torch.searchsorted(cdf, uniform[:, None].to(cdf.dtype).contiguous(), right=True)
    return index[:, 0].clamp_max(probabilities.shape[-1] - 1)


@register_model(
    PriorConfig,
    presets={
        # Seed 002, section 3.2: 20x20 codes from 128 keys, conditioned on the axial slice
        # position, dropout 0.1. PixelSNAIL's 4 blocks of (4 residual blocks + attention)
        # become 8 transformer blocks of width 256 (about 6.4M parameters).
        "marimont2021": PriorConfig(
            num_codes=128,
            grid_size=(20, 20),
            width=256,
            depth=8,
            heads=8,
            dropout=0.1,
            conditioned=True,
        )
    },
)
class CodePrior(nn.Module):
    """Causal transformer prior over raster-ordered VQ-VAE codes (seed 002, section 2.2).

    Slot ``i`` of the input sequence holds code ``c_{i-1}`` (slot 0 a learned start token)
    plus a learned embedding of grid row and column of position ``i`` and, if
    conditioned, the slice-position embedding; the output at slot ``i`` is the
    categorical distribution of ``c_i`` given ``c_<i``.

    Parameters
    ----------
    config : PriorConfig
        Hyper-parameters; stored as ``self.config``.

    Notes
    -----
    ``position`` arguments are ``(B,)`` floats in ``[0, 1]`` (the slice's relative
    position along the slicing axis) and are required if and only if
    ``config.conditioned``. :meth:`sample` and :meth:`resample` do not switch the module
    to eval mode: call ``model.eval()`` first so that dropout is off.
    """

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        k, width = config.num_codes, config.width
        h, w = config.grid_size
        self.token = nn.Embedding(k + 1, width)  # index k is the start token
        self.row = nn.Parameter(torch.randn(h, 1, width) * 0.02)
        self.column = nn.Parameter(torch.randn(1, w, width) * 0.02)
        if config.conditioned:
            self.register_buffer(
                "frequencies",
                math.pi * 2.0 ** torch.arange(_POSITION_FREQUENCIES),
                persistent=False,
            )
            self.position_mlp = nn.Sequential(
                nn.Linear(2 * _POSITION_FREQUENCIES, width), nn.GELU(), nn.Linear(width, width)
            )
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(width, config.heads, config.dropout) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, k)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    # -- input checks ---------------------------------------------------------------

    def _check_codes(self, codes: torch.Tensor) -> None:
        h, w = self.config.grid_size
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (h, w) or codes.is_floating_point():
            raise ParameterError(
                f"codes of shape {tuple(codes.shape)} and dtype {codes.dtype} for model "
                f"'prior': expected integer codes of shape (B, {h}, {w})"
            )

    def _condition(self, position: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``(B, width)`` slice-position embedding, or ``None`` if unconditioned."""
        if not self.config.conditioned:
            if position is not None:
                raise ParameterError(
                    "position given to an unconditioned prior (conditioned=False): "
                    "expected position=None"
                )
            return None
        if position is None:
            raise ParameterError(
                "position=None for a prior conditioned on slice position (conditioned=True): "
                f"expected a ({batch},) float tensor in [0, 1]"
            )
        if tuple(position.shape) != (batch,):
            raise ParameterError(
                f"position of shape {tuple(position.shape)} for model 'prior': "
                f"expected ({batch},) floats in [0, 1]"
            )
        position = position.to(self.frequencies)
        if not bool(((position >= 0) & (position <= 1)).all()):  # NaN fails too
            raise ParameterError(
                f"position values in [{position.min().item():.3g}, "
                f"{position.max().item():.3g}] for model 'prior': expected values in [0, 1]"
            )
        angles = position[:, None] * self.frequencies
        return self.position_mlp(torch.cat([angles.sin(), angles.cos()], dim=1))

    # -- network --------------------------------------------------------------------

    def _hidden(
        self,
        tokens: torch.Tensor,
        start: int,
        condition: torch.Tensor | None,
        cache: KVCache | None,
    ) -> torch.Tensor:
        """``(B, L, width)`` final features of the input slots ``start .. start+L-1``.

        ``tokens`` are ``(B, L)`` input tokens of those slots (the start token, then
        codes shifted by one). Without ``cache`` ``start`` must be 0.
        """
        length = tokens.shape[1]
        grid = (self.row + self.column).flatten(0, 1)
        x = self.token(tokens) + grid[start : start + length]
        if condition is not None:
            x = x + condition[:, None, :]
        x = self.embedding_dropout(x)
        for index, block in enumerate(self.blocks):
            x = block(x, start, None if cache is None else cache.layer(index))
        return self.norm(x)

    def _inputs(self, flat: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` input tokens for raster codes ``(B, N)``: start token, then codes[:-1]."""
        start = flat.new_full((flat.shape[0], 1), self.config.num_codes)
        return torch.cat([start, flat[:, :-1]], dim=1)

    # -- likelihoods ------------------------------------------------------------------

    def logits(self, codes: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised ``log p(c_i | c_<i)`` at every grid position, in one causal pass.

        Parameters
        ----------
        codes : torch.Tensor
            ``(B, h, w)`` long codes in ``[0, num_codes)``.
        position : torch.Tensor or None
            ``(B,)`` slice positions in ``[0, 1]``; required iff ``config.conditioned``.

        Returns
        -------
        torch.Tensor
            ``(B, K, h, w)`` logits; position ``(r, c)`` depends only on the codes
            before it in raster order.
        """
        self._check_codes(codes)
        b, h, w = codes.shape
        hidden = self._hidden(
            self._inputs(codes.flatten(1)), 0, self._condition(position, b), None
        )
        return self.head(hidden).transpose(1, 2).reshape(b, self.config.num_codes, h, w)

    def nll(self, codes: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Per-position negative log-likelihood ``-log p(c_i | c_<i)`` in nats.

        Seed 002 sums the values above ``lambda_s`` for the sample score (section 2.3)
        and redraws codes above ``lambda_p`` for restoration (section 2.4).

        Parameters
        ----------
        codes : torch.Tensor
            ``(B, h, w)`` long codes.
        position : torch.Tensor or None
            ``(B,)`` slice positions in ``[0, 1]``; required iff ``config.conditioned``.

        Returns
        -------
        torch.Tensor
            ``(B, h, w)`` float NLL.
        """
        return F.cross_entropy(self.logits(codes, position), codes, reduction="none")

    def training_loss(
        self, codes: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """Mean NLL per code of a batch of code grids (teacher forcing).

        Unlike the image models, the input is the VQ-VAE's code grid, not slices.

        Parameters
        ----------
        codes : torch.Tensor
            ``(B, h, w)`` long codes from :meth:`VQVAE.codes`.
        position : torch.Tensor or None
            ``(B,)`` slice positions in ``[0, 1]`` when ``config.conditioned``, else None.

        Returns
        -------
        LossOutput
            ``total`` = mean NLL in nats per code; term ``nll`` (the same, detached).
        """
        total = self.nll(codes, position).mean()
        return LossOutput(total=total, terms={"nll": total.detach()})

    # -- sampling -----------------------------------------------------------------------

    @torch.no_grad()
    def resample(
        self,
        codes: torch.Tensor,
        mask: torch.Tensor,
        position: torch.Tensor | None = None,
        generator: Generators = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Redraw the masked codes from the prior, in raster order (seed 002, section 2.4).

        Each masked code ``c_i`` is drawn from ``p(c_i | c_<i)`` given the earlier codes
        as already updated; unmasked codes are kept. All rows share one loop over the
        raster positions where any row is masked, and at each one a code is drawn for
        every row, by inverting the categorical's CDF at a uniform, and kept where the
        mask is set. The uniforms, one per row and raster slot, are all drawn first, in
        row order, so a row's draws do not depend on the rows stacked with it: ``B``
        stacked rows get what ``B`` one-row calls get in turn from the same generator.
        Positions before the first masked one are fed in one chunk, and so is every run
        of positions that no row redraws; keys and values are cached, so each step costs
        one position.

        Parameters
        ----------
        codes : torch.Tensor
            ``(B, h, w)`` long codes, e.g. ``S`` copies of the slices' codes stacked.
        mask : torch.Tensor
            ``(B, h, w)`` bool, True where a code is redrawn.
        position : torch.Tensor or None
            ``(B,)`` slice positions in ``[0, 1]``; required iff ``config.conditioned``.
        generator : torch.Generator, SliceGenerators or None
            On the model's device; per-slice ones give row ``r`` slice ``r % n``'s draws.
        temperature : float
            Logits are divided by it before the softmax (> 0; 1 samples the prior).

        Returns
        -------
        torch.Tensor
            ``(B, h, w)`` long codes, equal to ``codes`` where ``mask`` is False.
        """
        self._check_codes(codes)
        if mask.shape != codes.shape or mask.dtype != torch.bool:
            raise ParameterError(
                f"mask of shape {tuple(mask.shape)} and dtype {mask.dtype} for model 'prior': "
                f"expected a bool tensor of shape {tuple(codes.shape)}"
            )
        if not temperature > 0:
            raise ParameterError(f"temperature={temperature!r} for model 'prior': expected > 0")
        batch = codes.shape[0]
        condition = self._condition(position, batch)
        flat = codes.flatten(1).clone()
        uniforms = uniform(flat.shape, generator, device=flat.device)
        chosen = mask.flatten(1)
        steps = chosen.any(0).nonzero().flatten().tolist()  # raster positions to visit
        if not steps:
            return flat.view_as(codes)
        cfg = self.config
        cache = KVCache(
            cfg.depth, batch, cfg.heads, flat.shape[1], cfg.width // cfg.heads, self.head.weight
        )
        tokens, start = self._inputs(flat)[:, : steps[0] + 1], 0
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            hidden = self._hidden(tokens, start, condition, cache)[:, -1]
            probabilities = (self.head(hidden).float() / temperature).softmax(-1)
            draw = _inverse_cdf_draw(probabilities, uniforms[:, step])
            flat[:, step] = torch.where(chosen[:, step], draw, flat[:, step])
            if following is not None:
                # Slots step+1 .. following hold codes step .. following-1.
                tokens, start = flat[:, step:following], step + 1
        return flat.view_as(codes)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        position: torch.Tensor | None = None,
        generator: Generators = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Draw ``n`` code grids from the prior, position by position in raster order.

        Parameters
        ----------
        n : int
            Number of grids.
        position : torch.Tensor or None
            ``(n,)`` slice positions in ``[0, 1]``; required iff ``config.conditioned``.
        generator : torch.Generator or None
            Random generator on the model's device, for reproducible draws.
        temperature : float
            Logits are divided by it before the softmax (> 0).

        Returns
        -------
        torch.Tensor
            ``(n, h, w)`` long codes in ``[0, num_codes)``.
        """
        if not (is_int(n) and n >= 1):
            raise ParameterError(f"n={n!r} for model 'prior' sample: expected int >= 1")
        shape = (n, *self.config.grid_size)
        device = self.head.weight.device
        codes = torch.zeros(shape, dtype=torch.long, device=device)
        mask = torch.ones(shape, dtype=torch.bool, device=device)
        return self.resample(codes, mask, position, generator, temperature)
