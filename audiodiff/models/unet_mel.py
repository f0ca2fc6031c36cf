"""UNetMel: the 2D denoising network over log-mel spectrograms.

The network is the raw ``F`` of EDM (Karras et al. 2022, Eq. 7): it maps a preconditioned noisy
mel, ``c_noise`` and the conditions to a raw output; the preconditioner in
``audiodiff.diffusion`` turns that into a denoised mel. It knows nothing about noise schedules.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from audiodiff.conditioning.base import Conditioning
from audiodiff.config import Config, check, register_config
from audiodiff.nn.inputs import check_c_noise, check_frames, check_input, check_pooled, check_tokens
from audiodiff.nn.unet import UNetBackbone, check_unet_fields
from audiodiff.nn.updown import crop_to, pad_to_multiple


@register_config
@dataclasses.dataclass(frozen=True)
class UNetMelConfig(Config):
    """Architecture of :class:`UNetMel`. Released defaults never change in place.

    Level i has width ``base_channels * channel_mults[i]``; each level after the first halves
    both the mel and the time axis, so with the default 5 levels an 80-mel input reaches
    5 x N/16 at the lowest level.
    """

    # Mel bins of the input; must equal the shared mel definition's n_mels.
    n_mels: int = 80
    # Channels of the noisy mel itself (1 = mono log-mel); the output has the same count.
    in_channels: int = 1
    # Extra frame-aligned input channels from cond.frames (melody chroma, inpainting mask and
    # masked mel, ...), concatenated to x; 0 = none.
    cond_channels: int = 0
    # Timing input (0 or 1 channel): a plane that is +1 on the frames before cond.sound_frames,
    # -1 after them and 0 everywhere when the length is not said. A convolutional network has no
    # other way to know where in the clip a frame lies, so without it "a 1 s sound, then
    # silence" can only be guessed from the clip's edges (Stable Audio conditions on seconds
    # for the same reason, through its cross-attention).
    timing_channels: int = 0
    # Widths 32, 32, 64, 128, 192 over 5 levels (80 -> 5 mel bins, N -> N/16): ~13.3M parameters
    # and ~21 GFLOP for a 5 s (431-frame) mel. Sampling calls the network twice per step
    # (classifier-free guidance), so CPU speed weighs more than width: the cost is dominated by
    # the high-resolution levels, which therefore stay narrow, while the parameters sit at the
    # coarse levels where attention and the text conditioning act.
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 1, 2, 4, 6)
    num_res_blocks: int = 2
    # Self-attention costs positions^2: only the two lowest levels (10 x N/8 and 5 x N/16
    # positions: ~3.2k and ~0.8k for 30 s), which keeps a 30 s forward within a few hundred MB.
    self_attention_levels: tuple[int, ...] = (3, 4)
    # Cross-attention to the text tokens, at the same levels (costs positions x L).
    cross_attention_levels: tuple[int, ...] = (3, 4)
    num_heads: int = 4
    # Width of cond.tokens (MiniLM: 384); 0 = no cross-attention.
    text_dim: int = 384
    # Width of cond.pooled; 0 = no pooled FiLM input.
    pooled_dim: int = 384
    dropout: float = 0.0
    # Longest clip the model was trained on, in frames (documentation only: any N works;
    # 2584 frames = 30 s at hop 256 / 22.05 kHz).
    max_frames: int = 2584

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(self.n_mels > 0, f"{name}.n_mels must be > 0, got {self.n_mels}")
        check(self.in_channels > 0, f"{name}.in_channels must be > 0, got {self.in_channels}")
        check(self.cond_channels >= 0, f"{name}.cond_channels must be >= 0, got {self.cond_channels}")
        check(self.timing_channels in (0, 1), f"{name}.timing_channels must be 0 or 1, got {self.timing_channels}")
        check(self.max_frames > 0, f"{name}.max_frames must be > 0, got {self.max_frames}")
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
        """Total downsampling factor of each axis: n_mels and N are padded to a multiple of it."""
        return 2 ** (len(self.channel_mults) - 1)


def timing_plane(sound_frames: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The timing input for x (B, C, n_mels, N): (B, 1, n_mels, N) of x's dtype, +1 on frames
    t < sound_frames[b], -1 on the others, 0 for items whose sound_frames is negative (not said).
    sound_frames: (B,) number of frames (a fraction counts as a frame), or None (none said)."""
    batch, n_mels, n_frames = x.shape[0], x.shape[2], x.shape[3]
    if sound_frames is None:
        return x.new_zeros(batch, 1, n_mels, n_frames)
    sound_frames = torch.as_tensor(sound_frames, device=x.device)
    if sound_frames.shape != (batch,):
        raise ValueError(f"cond.sound_frames must have shape (B,) = ({batch},), got {tuple(sound_frames.shape)}")
    length = sound_frames.float()[:, None]
    t = torch.arange(n_frames, device=x.device, dtype=torch.float32)[None]
    plane = torch.where(t < length, 1.0, -1.0) * (length >= 0)
    return plane[:, None, None, :].to(x.dtype).expand(batch, 1, n_mels, n_frames)


class UNetMel(nn.Module):
    """Denoising UNet over (B, in_channels, n_mels, N) log-mels, for any N >= 1."""

    def __init__(self, config: UNetMelConfig) -> None:
        super().__init__()
        if not isinstance(config, UNetMelConfig):
            raise TypeError(f"UNetMel needs a UNetMelConfig, got {type(config).__name__}")
        self.config = config
        levels = len(config.channel_mults)
        self.backbone = UNetBackbone(
            dims=2,
            in_channels=config.in_channels + config.cond_channels + config.timing_channels,
            out_channels=config.in_channels,
            channels=[config.base_channels * m for m in config.channel_mults],
            factors=[2] * (levels - 1),
            num_res_blocks=config.num_res_blocks,
            self_attention_levels=config.self_attention_levels,
            cross_attention_levels=config.cross_attention_levels,
            num_heads=config.num_heads,
            context_dim=config.text_dim,
            pooled_dim=config.pooled_dim,
            dropout=config.dropout,
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor,
                cond: Conditioning | None = None) -> torch.Tensor:
        """Raw network output F(x; c_noise, cond).

        x: (B, in_channels, n_mels, N) float, N >= 1, the preconditioned noisy mel (c_in * x).
        c_noise: (B,) float (EDM: log(sigma) / 4, about [-3, 1.5]) or a scalar for all items.
        cond: tokens (B, L, text_dim) + token_mask (B, L) bool, pooled (B, pooled_dim), frames
        (B, cond_channels, n_mels, N), sound_frames (B,) (networks with timing_channels = 1;
        None = not said); a missing tokens / pooled is the null condition, frames are required
        iff cond_channels > 0. Returns a tensor of x's shape and dtype, unbounded
        (about unit scale after training). Works under autocast and with bf16 / fp16 weights.
        """
        cfg = self.config
        cond = cond if cond is not None else Conditioning()
        check_input(x, "(B, C, n_mels, N)", cfg.in_channels, {2: ("n_mels", cfg.n_mels)})
        batch = x.shape[0]
        c_noise = check_c_noise(c_noise, batch, x.device)
        frames = check_frames(cond.frames, x, cfg.cond_channels, "(B, C, n_mels, N)")
        tokens, token_mask = check_tokens(cond.tokens, cond.token_mask, batch, cfg.text_dim)
        pooled = check_pooled(cond.pooled, batch, cfg.pooled_dim)

        h = x if frames is None else torch.cat([x, frames.to(x.dtype)], dim=1)
        if cfg.timing_channels:
            h = torch.cat([h, timing_plane(cond.sound_frames, x)], dim=1)
        elif cond.sound_frames is not None:
            raise ValueError("cond.sound_frames was given but this network has no timing input "
                             "(timing_channels=0); it was not trained to follow a sound length")
        valid_shape = tuple(h.shape[2:])
        h = pad_to_multiple(h, (cfg.downsampling, cfg.downsampling))
        out = self.backbone(h, c_noise, pooled=pooled, context=tokens, context_mask=token_mask,
                            valid_shape=valid_shape)
        return crop_to(out, valid_shape).to(x.dtype)

    def with_timing_input(self) -> UNetMel:
        """A copy with a timing input whose weights are zero: it computes exactly what this
        network computes until it is trained (the start of a timing fine-tune)."""
        if self.config.timing_channels:
            raise ValueError("this UNetMel already has a timing input")
        grown = UNetMel(dataclasses.replace(self.config, timing_channels=1))
        state = dict(self.state_dict())
        key = "backbone.input_conv.weight"
        weight = state[key]
        state[key] = torch.cat([weight, weight.new_zeros(weight.shape[0], 1, *weight.shape[2:])], dim=1)
        grown.load_state_dict(state, strict=True)
        return grown.to(device=weight.device, dtype=weight.dtype)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with requires_grad)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
