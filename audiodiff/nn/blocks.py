"""Residual blocks with FiLM conditioning, for 1D (waveform) and 2D (mel) feature maps."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audiodiff.nn.ops import broadcast_to_spatial, conv_nd, group_norm, zero_init


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> FiLM(emb) -> SiLU -> dropout -> conv, plus a skip path.

    FiLM (Perez et al. 2018) applies ``h * (1 + scale) + shift`` after the second GroupNorm,
    with ``scale, shift`` a linear function of the embedding: the "adaptive group norm" of
    Dhariwal & Nichol 2021 (Sec. 3). ``1 + scale`` keeps the block near its unconditioned
    behaviour when the projection is small. The last conv is zero-initialised, so a fresh block
    is the identity (or the 1x1 skip projection when the width changes).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        *,
        kernel_size: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.norm1 = group_norm(in_channels)
        self.conv1 = conv_nd(dims, in_channels, out_channels, kernel_size)
        self.film = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(conv_nd(dims, out_channels, out_channels, kernel_size))
        self.skip = (
            nn.Identity() if in_channels == out_channels
            else conv_nd(dims, in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, *spatial); emb: (B, emb_dim) -> (B, out_channels, *spatial)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb)).chunk(2, dim=1)
        h = self.norm2(h)
        h = h * (1 + broadcast_to_spatial(scale, self.dims)) + broadcast_to_spatial(shift, self.dims)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h
