"""UNetWave: the 1D denoising network over raw waveforms (B, C, T).

Same contract and conditioning interface as :class:`audiodiff.models.unet_mel.UNetMel`, with a
1D UNet whose levels downsample time by larger strides (4x per level by default, as in the
waveform UNets of audio-diffusion-pytorch / Moûsai), so that the lowest level of a 22.05 kHz
signal runs at ~86 positions per second, where attention is affordable.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from audiodiff.conditioning.base import Conditioning
from audiodiff.config import Config, check, register_config
from audiodiff.nn.inputs import check_c_noise, check_frames, check_input, check_pooled, check_tokens
from audiodiff.nn.unet import UNetBackbone, check_unet_fields
from audiodiff.nn.updown import crop_to, pad_to_multiple


@register_config
@dataclasses.dataclass(frozen=True)
class UNetWaveConfig(Config):
    """Architecture of :class:`UNetWave`. Released defaults never change in place.

    Level i has width ``base_channels * channel_mults[i]``; between level i and i+1 time is
    divided by ``factors[i]``, so ``len(factors) == len(channel_mults) - 1``.
    """

    # Audio channels of the waveform (1 = mono, 2 = stereo); the output has the same count.
    in_channels: int = 1
    # Extra sample-aligned input channels from cond.frames (B, cond_channels, T); 0 = none.
    cond_channels: int = 0
    base_channels: int = 32
    # Widths 32..256 with total stride 4^4 = 256: ~19.4M parameters, ~17 GFLOP per second of
    # 22.05 kHz audio; the full-rate levels stay narrow because they run on every sample.
    channel_mults: tuple[int, ...] = (1, 2, 4, 8, 8)
    factors: tuple[int, ...] = (4, 4, 4, 4)
    num_res_blocks: int = 2
    # Kernel of the residual convs; odd. 5 taps widen the receptive field of the full-rate
    # levels at little cost.
    kernel_size: int = 5
    # The lowest level (T / 256 positions, ~2.6k for 30 s at 22.05 kHz) only.
    self_attention_levels: tuple[int, ...] = (4,)
    cross_attention_levels: tuple[int, ...] = (3, 4)
    num_heads: int = 4
    text_dim: int = 384
    pooled_dim: int = 384
    dropout: float = 0.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(self.in_channels > 0, f"{name}.in_channels must be > 0, got {self.in_channels}")
        check(self.cond_channels >= 0, f"{name}.cond_channels must be >= 0, got {self.cond_channels}")
        check(len(self.factors) == len(self.channel_mults) - 1,
              f"{name}.factors needs one entry per level transition "
              f"(len(channel_mults) - 1 = {len(self.channel_mults) - 1}), got {self.factors}")
        check(all(f >= 2 for f in self.factors), f"{name}.factors must all be >= 2, got {self.factors}")
        check(self.kernel_size >= 1 and self.kernel_size % 2 == 1,
              f"{name}.kernel_size must be odd and >= 1, got {self.kernel_size}")
        check_unet_fields(
            name,
            base_channels=self.base_channels,
            channel_mults=self.channel_mults,
            num_res_blocks=self.num_res_blocks,
            self_attention_levels=self.self_attention_levels,
            cross_attention_levels=self.cross_attention_levels,
            num_heads=self.num_heads,
            text_dim=self.text_dim,
            pooled_dim=self.pooled_dim,
            dropout=self.dropout,
        )

    @property
    def downsampling(self) -> int:
        """Total time stride: T is padded internally to a multiple of it."""
        return math.prod(self.factors)


class UNetWave(nn.Module):
    """Denoising UNet over (B, in_channels, T) waveforms, for any T >= 1."""

    def __init__(self, config: UNetWaveConfig) -> None:
        super().__init__()
        if not isinstance(config, UNetWaveConfig):
            raise TypeError(f"UNetWave needs a UNetWaveConfig, got {type(config).__name__}")
        self.config = config
        self.backbone = UNetBackbone(
            dims=1,
            in_channels=config.in_channels + config.cond_channels,
            out_channels=config.in_channels,
            channels=[config.base_channels * m for m in config.channel_mults],
            factors=config.factors,
            num_res_blocks=config.num_res_blocks,
            self_attention_levels=config.self_attention_levels,
            cross_attention_levels=config.cross_attention_levels,
            num_heads=config.num_heads,
            context_dim=config.text_dim,
            pooled_dim=config.pooled_dim,
            dropout=config.dropout,
            kernel_size=config.kernel_size,
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor,
                cond: Conditioning | None = None) -> torch.Tensor:
        """Raw network output F(x; c_noise, cond).

        x: (B, in_channels, T) float, T >= 1, the preconditioned noisy waveform.
        c_noise: (B,) float (EDM: log(sigma) / 4) or a scalar for all items.
        cond: tokens (B, L, text_dim) + token_mask (B, L) bool, pooled (B, pooled_dim), frames
        (B, cond_channels, T); a missing tokens / pooled is the null condition, frames are
        required iff cond_channels > 0. Returns a tensor of x's shape and dtype, unbounded.
        """
        cfg = self.config
        cond = cond if cond is not None else Conditioning()
        check_input(x, "(B, C, T)", cfg.in_channels, {})
        batch = x.shape[0]
        c_noise = check_c_noise(c_noise, batch, x.device)
        frames = check_frames(cond.frames, x, cfg.cond_channels, "(B, C, T)")
        tokens, token_mask = check_tokens(cond.tokens, cond.token_mask, batch, cfg.text_dim)
        pooled = check_pooled(cond.pooled, batch, cfg.pooled_dim)

        h = x if frames is None else torch.cat([x, frames.to(x.dtype)], dim=1)
        valid_shape = tuple(h.shape[2:])
        h = pad_to_multiple(h, (cfg.downsampling,))
        out = self.backbone(h, c_noise, pooled=pooled, context=tokens, context_mask=token_mask,
                            valid_shape=valid_shape)
        return crop_to(out, valid_shape).to(x.dtype)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with requires_grad)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
