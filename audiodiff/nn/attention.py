"""Self-attention over feature-map positions and cross-attention to condition tokens.

Both run on ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), which picks a fused
kernel (flash / memory-efficient) where the device and dtype allow. Feature maps of any
dimensionality (B, C, *spatial) are flattened to (B, S, C) tokens, S = prod(spatial).

Mask convention, as in SDPA: a boolean ``attn_mask`` is True where a query MAY attend a key.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audiodiff.nn.ops import group_norm, zero_init


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, S, C) -> (B, heads, S, C / heads)."""
    b, s, c = x.shape
    return x.reshape(b, s, num_heads, c // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, S, d) -> (B, S, heads * d)."""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


def _check_heads(channels: int, num_heads: int) -> None:
    if num_heads < 1 or channels % num_heads:
        raise ValueError(f"channels ({channels}) must be a positive multiple of num_heads ({num_heads})")


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with a residual connection, zero-initialised output.

    ``key_mask`` (S,) bool marks the positions that hold real content; others (internal
    padding added so the length divides the downsampling factor) are never attended, so
    padded frames cannot leak into real ones through attention.
    """

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        _check_heads(channels, num_heads)
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, *spatial) float; key_mask: (S,) bool, True = real -> same shape as x."""
        b, c = x.shape[:2]
        tokens = self.norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, S, C)
        q, k, v = (_split_heads(t, self.num_heads) for t in self.qkv(tokens).chunk(3, dim=-1))
        mask = None if key_mask is None else key_mask.reshape(1, 1, 1, -1)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = self.out(_merge_heads(h))  # (B, S, C)
        return x + h.transpose(1, 2).reshape(x.shape)


class CrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention from feature-map positions to condition tokens.

    Queries come from the feature map; keys and values from ``context`` (B, L, context_dim),
    layer-normalised first so the network is robust to the conditioner's output scale.
    Padding tokens (``context_mask`` False) are never attended. An item with no real token at
    all (e.g. the null condition of classifier-free guidance) would make SDPA return NaN from
    an all-masked softmax row; such items instead receive no update at all, exactly as if the
    block were absent, which also matches ``context=None``.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int) -> None:
        super().__init__()
        _check_heads(channels, num_heads)
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.context_norm = nn.LayerNorm(context_dim)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.out = zero_init(nn.Linear(channels, channels))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, C, *spatial); context: (B, L, D) or None; context_mask: (B, L) bool, True = real.

        Returns a tensor of x's shape; with ``context=None`` returns x unchanged.
        """
        if context is None:
            return x
        b, c = x.shape[:2]
        tokens = self.norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, S, C)
        q = _split_heads(self.q(tokens), self.num_heads)
        k, v = (
            _split_heads(t, self.num_heads)
            for t in self.kv(self.context_norm(context)).chunk(2, dim=-1)
        )
        keep = None
        mask = None
        if context_mask is not None:
            has_token = context_mask.any(dim=1)  # (B,)
            # Let token-less items attend everything (a finite, discarded result) to avoid NaN.
            mask = (context_mask | ~has_token[:, None])[:, None, None, :]  # (B, 1, 1, L)
            keep = has_token.to(x.dtype).reshape(b, 1, 1)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = self.out(_merge_heads(h))  # (B, S, C)
        if keep is not None:
            h = h * keep.to(h.dtype)
        return x + h.transpose(1, 2).reshape(x.shape)
