"""The UNet skeleton shared by the mel (2D) and waveform (1D) denoising networks.

:class:`UNetBackbone` is the encoder / middle / decoder stack of residual blocks with FiLM from
the noise + pooled embedding, self-attention and cross-attention at chosen levels and skip
connections (Ronneberger et al. 2015; the ADM layout of Dhariwal & Nichol 2021). It works on
tensors only: the model classes in :mod:`audiodiff.models` validate a ``Conditioning``, pad the
input to a multiple of :attr:`UNetBackbone.total_factor`, call the backbone and crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from audiodiff.config import check
from audiodiff.nn.attention import CrossAttention, SelfAttention
from audiodiff.nn.blocks import ResBlock
from audiodiff.nn.embeddings import ConditionEmbedding
from audiodiff.nn.ops import conv_nd, group_norm, zero_init
from audiodiff.nn.updown import Downsample, Upsample, valid_mask


class UNetStage(nn.Module):
    """One residual block, optionally followed by self-attention and cross-attention."""

    def __init__(self, res: ResBlock, self_attn: SelfAttention | None,
                 cross_attn: CrossAttention | None) -> None:
        super().__init__()
        self.res = res
        self.self_attn = self_attn
        self.cross_attn = cross_attn

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
                context_mask: torch.Tensor | None, key_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.res(h, emb)
        if self.self_attn is not None:
            h = self.self_attn(h, key_mask)
        if self.cross_attn is not None:
            h = self.cross_attn(h, context, context_mask)
        return h


class UNetBackbone(nn.Module):
    """Encoder-decoder over (B, C, *spatial) maps, conditioned on noise level, pooled and tokens.

    Level i runs at width ``channels[i]``; between level i and i+1 every spatial axis is divided
    by ``factors[i]``. Each encoder level has ``num_res_blocks`` stages, each decoder level one
    more (it also consumes the skip saved after the level's downsampler), as in ADM.
    """

    def __init__(
        self,
        *,
        dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        factors: Sequence[int],
        num_res_blocks: int,
        self_attention_levels: Sequence[int] = (),
        cross_attention_levels: Sequence[int] = (),
        num_heads: int = 4,
        context_dim: int = 0,
        pooled_dim: int = 0,
        dropout: float = 0.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if len(factors) != len(channels) - 1:
            raise ValueError(f"need {len(channels) - 1} factors for {len(channels)} levels, got {factors}")
        self.dims = dims
        self.factors = tuple(factors)
        # Cumulative downsampling factor at each level, for the self-attention padding mask.
        self.level_factors = tuple(math.prod(self.factors[:i]) for i in range(len(channels)))
        self.total_factor = self.level_factors[-1]
        self.self_attention_levels = frozenset(self_attention_levels)
        emb_dim = 4 * channels[0]  # ADM's embedding width: 4x the base width
        self.embed = ConditionEmbedding(emb_dim, pooled_dim)

        def stage(level: int, c_in: int, c_out: int) -> UNetStage:
            res = ResBlock(dims, c_in, c_out, emb_dim, kernel_size=kernel_size, dropout=dropout)
            sa = SelfAttention(c_out, num_heads) if level in self.self_attention_levels else None
            ca = (CrossAttention(c_out, context_dim, num_heads)
                  if context_dim > 0 and level in cross_attention_levels else None)
            return UNetStage(res, sa, ca)

        self.input_conv = conv_nd(dims, in_channels, channels[0], kernel_size)
        skip_channels = [channels[0]]
        c = channels[0]
        self.down_levels = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for level, width in enumerate(channels):
            stages = nn.ModuleList()
            for _ in range(num_res_blocks):
                stages.append(stage(level, c, width))
                c = width
                skip_channels.append(c)
            self.down_levels.append(stages)
            if level < len(channels) - 1:
                self.downsamplers.append(Downsample(dims, c, self.factors[level]))
                skip_channels.append(c)

        lowest = len(channels) - 1
        # Middle: one stage with the lowest level's attention, then a plain residual stage.
        self.mid = nn.ModuleList([stage(lowest, c, c), stage(-1, c, c)])

        self.up_levels = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(channels))):
            stages = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                stages.append(stage(level, c + skip_channels.pop(), channels[level]))
                c = channels[level]
            self.up_levels.append(stages)
            if level > 0:
                self.upsamplers.append(Upsample(dims, c, self.factors[level - 1]))

        self.out_norm = group_norm(c)
        # Zero output: a fresh network predicts 0, so D(x) starts at c_skip * x (EDM B.7).
        self.out_conv = zero_init(conv_nd(dims, c, out_channels, kernel_size))

    @property
    def dtype(self) -> torch.dtype:
        return self.input_conv.weight.dtype

    def forward(
        self,
        x: torch.Tensor,
        c_noise: torch.Tensor,
        *,
        pooled: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        valid_shape: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Run the UNet on an already padded map.

        x: (B, in_channels, *spatial), every spatial axis a multiple of ``total_factor``.
        c_noise: (B,) float. pooled: (B, pooled_dim) or None. context: (B, L, context_dim) or
        None; context_mask: (B, L) bool, True = real token. valid_shape: the spatial shape before
        padding (self-attention never attends the padding). Returns (B, out_channels, *spatial)
        in the weights' dtype (or the autocast dtype).
        """
        dtype = self.dtype
        x = x.to(dtype)
        pooled = None if pooled is None else pooled.to(dtype)
        context = None if context is None else context.to(dtype)
        padded_shape = x.shape[2:]
        valid_shape = tuple(valid_shape) if valid_shape is not None else tuple(padded_shape)
        key_masks = [
            valid_mask(valid_shape, padded_shape, f, x.device)
            if level in self.self_attention_levels else None
            for level, f in enumerate(self.level_factors)
        ]

        emb = self.embed(c_noise, pooled)
        h = self.input_conv(x)
        skips = [h]
        for level, stages in enumerate(self.down_levels):
            for st in stages:
                h = st(h, emb, context, context_mask, key_masks[level])
                skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
                skips.append(h)

        for st in self.mid:
            h = st(h, emb, context, context_mask, key_masks[-1])

        for i, stages in enumerate(self.up_levels):
            level = len(self.up_levels) - 1 - i
            for st in stages:
                h = st(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask,
                       key_masks[level])
            if level > 0:
                h = self.upsamplers[i](h)
        return self.out_conv(F.silu(self.out_norm(h)))


def check_unet_fields(
    owner: str,
    *,
    base_channels: int,
    channel_mults: Sequence[int],
    num_res_blocks: int,
    self_attention_levels: Sequence[int],
    cross_attention_levels: Sequence[int],
    num_heads: int,
    text_dim: int,
    pooled_dim: int,
    dropout: float,
) -> None:
    """Validate the fields both UNet configs share; errors name ``owner.field`` and the value."""
    check(base_channels > 0, f"{owner}.base_channels must be > 0, got {base_channels}")
    check(len(channel_mults) > 0 and all(m > 0 for m in channel_mults),
          f"{owner}.channel_mults must be a non-empty tuple of positive ints, got {channel_mults}")
    check(num_res_blocks >= 1, f"{owner}.num_res_blocks must be >= 1, got {num_res_blocks}")
    check(num_heads >= 1, f"{owner}.num_heads must be >= 1, got {num_heads}")
    levels = len(channel_mults)
    for name, chosen in (("self_attention_levels", self_attention_levels),
                         ("cross_attention_levels", cross_attention_levels)):
        check(all(0 <= lv < levels for lv in chosen),
              f"{owner}.{name} must index levels 0..{levels - 1} "
              f"(one per channel_mults entry), got {chosen}")
        check(len(set(chosen)) == len(chosen), f"{owner}.{name} has duplicates: {chosen}")
        for lv in chosen:
            width = base_channels * channel_mults[lv]
            check(width % num_heads == 0,
                  f"{owner}.num_heads ({num_heads}) must divide the width of {name} level "
                  f"{lv} (base_channels * channel_mults[{lv}] = {width})")
    check(text_dim >= 0, f"{owner}.text_dim must be >= 0 (0 = no text tokens), got {text_dim}")
    check(pooled_dim >= 0, f"{owner}.pooled_dim must be >= 0 (0 = no pooled vector), got {pooled_dim}")
    check(0.0 <= dropout < 1.0, f"{owner}.dropout must be in [0, 1), got {dropout}")
