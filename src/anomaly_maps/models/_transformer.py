"""The causal transformer blocks of the code prior (:mod:`.prior`), with their key/value
cache for raster-order sampling (one position per step instead of a full pass)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Block", "KVCache"]


class KVCache:
    """Keys and values of the positions fed so far, per block, preallocated to ``h * w``."""

    def __init__(
        self, depth: int, batch: int, heads: int, length: int, head_dim: int, like: torch.Tensor
    ) -> None:
        shape = (depth, batch, heads, length, head_dim)
        self.keys = like.new_empty(shape)
        self.values = like.new_empty(shape)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, heads, h*w, head_dim)`` key and value buffers of block ``index``."""
        return self.keys[index], self.values[index]


class _CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, start: int, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """Attend from the ``(B, L, W)`` chunk at raster slots ``start .. start+L-1``.

        Without a cache the chunk must start at slot 0. With one, the chunk's keys and
        values are written into it and the queries also see every earlier slot.
        """
        b, length, width = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            keys, values = cache
            keys[:, :, start : start + length] = k
            values[:, :, start : start + length] = v
            k, v = keys[:, :, : start + length], values[:, :, : start + length]
        mask = None
        if start > 0 and length > 1:
            query_slot = torch.arange(start, start + length, device=x.device)
            mask = query_slot[:, None] >= torch.arange(start + length, device=x.device)[None, :]
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=start == 0 and length > 1,
        )
        return self.resid_dropout(self.proj(out.transpose(1, 2).reshape(b, length, width)))


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x-wide GELU MLP."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = _CausalSelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width),
            nn.GELU(),
            nn.Linear(4 * width, width),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, start: int, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), start, cache)
        return x + self.mlp(self.norm2(x))
