"""Self-supervised restoration model: DISYRE's restoration network with an FPI head.

Trained on healthy slices only, from synthetic corruptions (:mod:`.corruptions`):

- **Restoration** (DISYRE [1]_, Method): ``P_theta(x_t, alpha_t)`` predicts the
  healthy slice ``x_0`` from ``x_t = (1 - alpha_t m) x_0 + alpha_t m x_fp``, with a mean
  squared error, as the reference trainer does (``F.mse_loss(model(x_t, t), x_0)``,
  ``trainer_disyre.py`` at e149f29). The step is the corruption level ``alpha_t``
  itself, embedded continuously; the reference maps ``alpha`` to one of 100 discrete
  DDPM steps first (``map_alpha_to_timestep``).
- **Corruption map** (FPI [2]_): a second 1x1 head predicts the interpolation factor
  ``alpha m`` per pixel, the target Tan et al. train for ("a pixel-wise prediction of
  the patch and its interpolation factor"), with a binary cross-entropy on the soft
  target.

Choices where the papers are silent or the reference code differs:

- One network with two heads instead of two networks: the ``fpi`` and ``disyre``
  scorers run from one checkpoint.
- The level is dropped (replaced by an "unknown" embedding) with probability
  ``p_unconditional`` in training, so the FPI head, which must not know ``alpha`` at
  test time, learns from unconditioned inputs, and the restoration head can run
  unconditioned too.
- The restoration head is residual (``x_t + delta``): the identity is the right answer
  on healthy pixels and is learned at once, which matters for short CPU training.
- A small U-Net (two 3x3 convolutions per stage, GroupNorm, SiLU, FiLM from the level
  embedding, nearest up-sampling) instead of the reference's diffusers ``UNet2DModel``
  with six stages ``(32, 64, 96, 128, 256, 256)`` and attention: it trains on a 2-core
  CPU. GroupNorm normalises each slice alone, so a slice's result does not depend on
  its batch.

References
----------
.. [1] Naval Marimont et al., "DISYRE: Diffusion-Inspired SYnthetic REstoration for
   Unsupervised Anomaly Detection", ISBI 2024, arXiv 2311.15453, Method; code GitHub
   snavalm/disyre at e149f29 (``trainer_disyre.py``, ``diffusion/scheduler.py``).
.. [2] Tan, Hou, Batten, Kainz, "Detecting Outliers with Foreign Patch Interpolation",
   MOOD 2020 / MELBA 2022, Method.
.. [3] Naval Marimont et al., "Ensembled Cold-Diffusion Restorations for Unsupervised
   Anomaly Detection" (DISYRE v2), MICCAI 2024, arXiv 2407.06635 (DAG corruptions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._config import is_int, is_range, is_real
from ._base import LossOutput, ModelConfig, register_model
from ._conv import check_slices
from .corruptions import (
    DEFAULT_CENTRES,
    DEFAULT_LOCAL,
    LOCAL_CHANGES,
    MODES,
    Corruption,
    corrupt,
    valid_local_changes,
)
from .draws import Generators, uniform

__all__ = ["Restoration", "RestorationConfig"]

Mode = Literal["fpi", "dag", "mix"]
_EMBED = 8  # octaves of sinusoidal features of the level


@dataclass(frozen=True)
class RestorationConfig(ModelConfig):
    """Hyper-parameters of :class:`Restoration`.

    Parameters
    ----------
    size : int
        Side of the square slices; divisible by ``2 ** (len(widths) - 1)``, >= 8.
    in_channels : int
        Channels per slice.
    widths : tuple of int
        Feature maps per U-Net stage, full resolution first (>= 2 stages).
    corruption : {"fpi", "dag", "mix"}
        Foreign patch interpolation (DISYRE), FPI plus tissue-band bias (DISYRE v2), or
        DISYRE v2's for half of the slices and local noise, blur or warps for the rest
        (:func:`.corrupt`).
    local_changes : tuple of str
        The local changes ``"mix"`` draws from (``"noise"``, ``"blur"``, ``"warp"``,
        ``"zoom"``; the first three by default).
    shape_radius : tuple of float
        ``(min, max)`` mean radius of the corruption shapes, fraction of ``size``.
    shape_centres : tuple of float
        ``(low, high)`` range of the shapes' centres along each axis, fraction of the
        slice; ``(0, 1)`` puts every pixel under a shape as often, the default
        ``(0.2, 0.8)`` (the first models') favours the middle of the slice.
    level_range : tuple of float
        Range of the corruption level ``alpha``, ``0 <= low < high <= 1`` (reference
        ``alpha_range=[0, 1]``).
    thick_prob : float
        Probability of a thick-slice simulation per training slice (healthy variability).
    p_unconditional : float
        Probability of hiding the level from the network in training.
    alpha_weight : float
        Weight of the FPI head's BCE against the restoration MSE.
    own_patch : float
        Probability that a slice's foreign patch is its own tissue from elsewhere in the
        slice (CutPaste-style, :func:`.corruptions.foreign_patches`); 0 as the papers.
    """

    kind: ClassVar[str] = "restoration"
    training_only: ClassVar[frozenset[str]] = frozenset(
        {"corruption", "local_changes", "shape_radius", "shape_centres", "level_range",
         "thick_prob", "p_unconditional", "alpha_weight", "own_patch"}
    )  # fmt: skip

    size: int = 64
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    corruption: Mode = "dag"
    local_changes: tuple[str, ...] = DEFAULT_LOCAL
    shape_radius: tuple[float, float] = (0.06, 0.3)
    shape_centres: tuple[float, float] = DEFAULT_CENTRES
    level_range: tuple[float, float] = (0.0, 1.0)
    thick_prob: float = 0.3
    p_unconditional: float = 0.3
    alpha_weight: float = 0.1
    own_patch: float = 0.0

    def validate(self) -> None:
        """Check all fields; raise ``ParameterError`` naming the first bad one."""
        ok_widths = (
            isinstance(self.widths, tuple)
            and len(self.widths) >= 2
            and all(is_int(w) and w >= 4 for w in self.widths)
        )
        self._require("widths", ok_widths, "a tuple of >= 2 ints >= 4")
        step = 2 ** (len(self.widths) - 1)
        self._require(
            "size",
            is_int(self.size) and self.size >= 8 and self.size % step == 0,
            f"an int >= 8 divisible by {step} (2 ** (len(widths) - 1))",
        )
        self._require(
            "in_channels", is_int(self.in_channels) and self.in_channels >= 1, "an int >= 1"
        )
        self._require("corruption", self.corruption in MODES, "'fpi', 'dag' or 'mix'")
        self._require(
            "local_changes",
            valid_local_changes(self.local_changes),
            f"a tuple of distinct names of {LOCAL_CHANGES}",
        )
        self._require(
            "shape_radius",
            is_range(self.shape_radius, 0, 1) and self.shape_radius[0] > 0,
            "(min, max) with 0 < min < max <= 1",
        )
        self._require("shape_centres", is_range(self.shape_centres, 0, 1), "(low, high) in [0, 1]")
        self._require("level_range", is_range(self.level_range, 0, 1), "(low, high) in [0, 1]")
        for name in ("thick_prob", "p_unconditional", "own_patch"):
            value = getattr(self, name)
            self._require(name, is_real(value) and 0 <= value <= 1, "a float in [0, 1]")
        self._require(
            "alpha_weight", is_real(self.alpha_weight) and self.alpha_weight >= 0, "a float >= 0"
        )


def _level_features(level: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, 2 * _EMBED + 1)``: sin/cos of ``pi * 2**k * level`` and a "known" flag.

    ``level`` ``(B,)`` in [0, 1], NaN entries or ``None`` meaning "unknown" (all zeros).
    """
    if level is None:
        return like.new_zeros(batch, 2 * _EMBED + 1)
    level = level.to(like.dtype).reshape(batch)
    known = ~torch.isnan(level)
    freqs = math.pi * 2.0 ** torch.arange(_EMBED, device=like.device, dtype=like.dtype)
    angle = torch.where(known, level, 0.0)[:, None] * freqs[None]
    feats = torch.cat([angle.sin(), angle.cos(), torch.ones_like(level)[:, None]], dim=1)
    return feats * known[:, None].to(like.dtype)


class _Block(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU; FiLM from the level embedding."""

    def __init__(self, c_in: int, c_out: int, embed: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(math.gcd(c_out, 8), c_out)
        self.film = nn.Linear(embed, 2 * c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(math.gcd(c_out, 8), c_out)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(h * (1 + scale) + shift)
        return F.silu(self.norm2(self.conv2(h)))


@register_model(
    RestorationConfig,
    presets={
        "cpu64": RestorationConfig(size=64, widths=(16, 32, 64, 128), corruption="dag"),
        "cpu128": RestorationConfig(
            size=128, widths=(16, 32, 64, 128, 128), corruption="mix", local_changes=("noise",)
        ),
        "disyre2024": RestorationConfig(
            size=128, widths=(32, 64, 96, 128, 256), corruption="fpi", thick_prob=0.0
        ),
        "disyre2024_dag": RestorationConfig(
            size=128, widths=(32, 64, 96, 128, 256), corruption="dag", thick_prob=0.0
        ),
    },
)
class Restoration(nn.Module):
    """U-Net restoring synthetically corrupted slices and mapping the corruption.

    Presets: ``"cpu64"`` (first, so ``bench`` compares it with the 64x64 VAE presets):
    64x64, four stages, DAG and thick-slice simulation, trainable within about an hour
    on a 2-core CPU; ``"cpu128"``: 128x128, five stages, DAG for half of the slices and
    local noise for the rest (``corruption="mix"``, ``local_changes=("noise",)``), which
    sees texture that 64x64 slices average away (``scripts/train_restoration.sh``, about
    50 minutes; the bundled model); ``"disyre2024"`` (FPI
    corruptions) and ``"disyre2024_dag"`` (DAG): 128x128 slices as the reference configs
    (``patch_size [128, 128]``) with a five-stage U-Net.

    Parameters
    ----------
    config : RestorationConfig
        Hyper-parameters, stored as ``self.config``.

    Examples
    --------
    >>> import torch
    >>> model = Restoration(RestorationConfig(size=16, widths=(8, 16)))
    >>> restored, logits = model(torch.rand(2, 1, 16, 16), torch.tensor([1.0, 0.5]))
    >>> tuple(restored.shape), tuple(logits.shape)
    ((2, 1, 16, 16), (2, 1, 16, 16))
    """

    def __init__(self, config: RestorationConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        embed = 4 * widths[0]
        self.embed = nn.Sequential(
            nn.Linear(2 * _EMBED + 1, embed), nn.SiLU(), nn.Linear(embed, embed)
        )
        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            _Block(c_in, c_out, embed) for c_in, c_out in pairwise((widths[0], *widths))
        )
        self.pool = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in widths[:-1])
        self.up = nn.ModuleList(
            _Block(c_deep + c_skip, c_skip, embed)
            for c_deep, c_skip in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.restore_head = nn.Conv2d(widths[0], config.in_channels, 1)
        self.alpha_head = nn.Conv2d(widths[0], 1, 1)
        # Start as the identity and as "nothing corrupted": both are right on most pixels.
        nn.init.zeros_(self.restore_head.weight)
        nn.init.zeros_(self.restore_head.bias)
        nn.init.constant_(self.alpha_head.bias, -3.0)

    def forward(
        self, x: torch.Tensor, level: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(restored x_0 estimate, corruption logits)``, both ``(B, ., H, W)``.

        ``level`` ``(B,)`` is the assumed corruption level in [0, 1]; ``None`` or NaN
        entries mean unknown.
        """
        check_slices(x, self.config)
        e = self.embed(_level_features(level, x.shape[0], x))
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)
        for block in self.up:
            skip = skips.pop()
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:]), skip], dim=1), e)
        return x + self.restore_head(h), self.alpha_head(h)

    def corruption_map(self, x: torch.Tensor) -> torch.Tensor:
        """FPI's predicted interpolation factor per pixel, ``(B, 1, H, W)`` in (0, 1)."""
        return torch.sigmoid(self(x, None)[1])

    def corrupt(self, x: torch.Tensor, generator: Generators = None) -> Corruption:
        """The configured training corruption of healthy slices (:func:`.corrupt`)."""
        check_slices(x, self.config)
        cfg = self.config
        return corrupt(
            x,
            generator,
            mode=cfg.corruption,
            radius=cfg.shape_radius,
            level_range=cfg.level_range,
            thick_prob=cfg.thick_prob,
            local=cfg.local_changes,
            own_patch=cfg.own_patch,
            centres=cfg.shape_centres,
        )

    def corruption_loss(self, sample: Corruption, generator: Generators = None) -> LossOutput:
        """MSE of the restoration plus ``alpha_weight`` times the BCE of the FPI head."""
        level = sample.level
        if self.config.p_unconditional > 0:
            drop = uniform(level.shape, generator, device=level.device, dtype=level.dtype)
            level = torch.where(drop < self.config.p_unconditional, float("nan"), level)
        restored, logits = self(sample.corrupted, level)
        mse = F.mse_loss(restored, sample.clean)
        bce = F.binary_cross_entropy_with_logits(logits, sample.alpha_map)
        total = mse + self.config.alpha_weight * bce
        return LossOutput(total=total, terms={"mse": mse.detach(), "bce": bce.detach()})

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput:
        """Corrupt healthy slices ``x`` (torch's global generator, seeded per epoch by the
        training loop) and score the restoration and the corruption map.

        Returns
        -------
        LossOutput
            ``total``; ``terms`` ``"mse"`` (restoration) and ``"bce"`` (FPI head).
        """
        return self.corruption_loss(self.corrupt(x))
