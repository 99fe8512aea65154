"""Codebook learning of the VQ-VAE quantiser: usage counts, EMA updates, dead-code restarts.

A VQ-VAE whose codebook starts far from the encoder outputs, or whose encoder drifts,
collapses onto a few codes; the rest never receive a vector, so neither the codebook loss
nor the moving averages ever move them (issue 15: our CPU-trained VQ-VAE used about 5 of
128 codes). Jukebox's random restarts [1]_ keep a moving average of how many vectors each
code receives per batch and move every code below a threshold onto a random encoder
output of the current batch. The functions here update the tensors of
:class:`~anomaly_maps.models.vqvae.VQVAE` in place; they run under ``torch.no_grad``.

References
----------
.. [1] Dhariwal et al., "Jukebox: A Generative Model for Music", arXiv 2005.00341, 2020,
   section 3.2 and ``jukebox/vqvae/bottleneck.py`` (``update_k``).
.. [2] van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning",
   NeurIPS 2017, appendix A.1 (the EMA codebook).
"""

from __future__ import annotations

import torch

__all__ = ["code_counts", "code_usage", "ema_codebook", "restart_dead_codes", "sum_over_ranks"]


def code_counts(codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """``(num_codes,)`` float32 number of occurrences of each code in ``codes``."""
    flat = codes.flatten()
    return torch.zeros(num_codes, device=codes.device).index_add_(
        0, flat, torch.ones_like(flat, dtype=torch.float32)
    )


def code_usage(codes: torch.Tensor, num_codes: int) -> dict[str, torch.Tensor]:
    """How much of the codebook ``codes`` use: a collapsed VQ-VAE uses few codes.

    Returns
    -------
    dict
        ``perplexity``: ``exp`` of the entropy of the codes' frequencies, from 1 (one
        code) to ``num_codes`` (all equally often); ``codes_used``: the fraction of the
        ``num_codes`` entries that occur at least once. Both are float32 scalars.
    """
    counts = code_counts(codes, num_codes)
    frequency = counts / counts.sum()
    return {
        "perplexity": torch.exp(-torch.special.xlogy(frequency, frequency).sum()),
        "codes_used": (counts > 0).float().mean(),
    }


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed in place over ``torch.distributed`` processes (if any)."""
    if _distributed():
        torch.distributed.all_reduce(tensor)
    return tensor


def ema_codebook(
    codebook: torch.Tensor,
    ema_count: torch.Tensor,
    ema_sum: torch.Tensor,
    flat: torch.Tensor,
    codes: torch.Tensor,
    *,
    epsilon: float,
    decay: float,
) -> None:
    """EMA codebook step [2]_: ``codebook = ema_sum / ema_count`` with Laplace smoothing.

    ``ema_count`` must already hold this batch's update; ``flat`` is ``(N, D)`` float32
    encoder outputs and ``codes`` their ``(N,)`` codes.
    """
    sums = sum_over_ranks(torch.zeros_like(ema_sum).index_add_(0, codes, flat))
    ema_sum.lerp_(sums, 1 - decay)
    total = ema_count.sum()
    smoothed = (ema_count + epsilon) / (total + len(ema_count) * epsilon)
    codebook.copy_(ema_sum / (smoothed * total)[:, None])


def restart_dead_codes(
    codebook: torch.Tensor,
    ema_count: torch.Tensor,
    ema_sum: torch.Tensor | None,
    flat: torch.Tensor,
    threshold: float,
) -> None:
    """Jukebox's random restarts [1]_ of the codes whose ``ema_count`` is below ``threshold``.

    Each dead code moves to a random row of ``flat`` (the batch's ``(N, D)`` encoder
    outputs) and gets the count ``threshold``, so it has a few batches to attract vectors
    before it counts as dead again; ``ema_sum`` (EMA codebooks) follows. Under
    ``torch.distributed`` the candidates are rank 0's, broadcast to all ranks, as in
    Jukebox; with counts summed over ranks every rank then restarts the same codes at the
    same vectors.
    """
    # torch.where instead of boolean indexing: no host sync on the number of dead codes.
    dead = (ema_count < threshold)[:, None]
    fresh = flat[torch.randint(len(flat), (len(codebook),), device=flat.device)]
    if _distributed():
        torch.distributed.broadcast(fresh, src=0)
    codebook.copy_(torch.where(dead, fresh, codebook))
    if ema_sum is not None:
        ema_sum.copy_(torch.where(dead, fresh * threshold, ema_sum))
    ema_count.masked_fill_(dead[:, 0], threshold)
