"""Building blocks of the scorers' naive references: one slice, one sample at a time.

Each family module registers, next to every scorer, its reference
(:func:`~._registry.register_reference`): the plain loop a paper's code would write, over
the slices of a batch and, inside, over each slice's samples (SmoothGrad copies,
posterior samples, restorations), with every forward and backward pass on one slice and
one sample. A slice is encoded once and its samples decoded one by one. Tests check each
batched scorer against its reference; ``anomaly-maps bench score`` times both.

Same draws: the reference of slice ``b`` draws from ``generator[b]``, that slice's own
generator, the numbers the batched scorer draws for it, in the same order and count
(:class:`~anomaly_maps.models.SliceGenerators`), so both agree within float tolerance.
The references take the scorers' arguments without defaults: callers pass
:meth:`~._registry.ScorerInfo.resolve_params`, as the inferer's callers do.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import SliceGenerators
from ._registry import ScoreResult

__all__ = ["cat_results", "decode_sample", "latent_noise"]


def cat_results(results: list[ScoreResult]) -> ScoreResult:
    """One result from per-slice results of one slice each."""
    pixel = None if results[0].pixel is None else torch.cat([r.pixel for r in results])
    return ScoreResult(pixel, torch.cat([r.slice_score for r in results]))


def latent_noise(
    model: nn.Module, generator: SliceGenerators, n: int, like: torch.Tensor
) -> torch.Tensor:
    """The ``(n, D)`` standard normals of ``n`` posterior samples of one slice.

    ``generator`` holds that slice's generator only; the batched scorers draw the same
    numbers for the slice through :meth:`VAE.reparameterize`.
    """
    shape = (n, model.config.latent_dim)
    return generator.normal(shape, device=like.device, dtype=like.dtype)


def decode_sample(
    model: nn.Module, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One posterior sample ``z = mu + exp(logvar / 2) * eps`` of one slice and its decoding.

    ``mu``, ``logvar`` ``(1, D)``, ``eps`` ``(D,)`` or ``None`` for ``z = mu``. Returns
    ``z (1, D)`` and ``x_hat (1, C, H, W)``.
    """
    z = mu if eps is None else mu + torch.exp(0.5 * logvar) * eps
    return z, model.decode(z)
