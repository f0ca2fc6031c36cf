"""Validation of a network's inputs, shared by the mel and waveform UNets.

Each function checks one input against what the network was built for and raises a
``ValueError`` that names the tensor, the expected shape and the shape received, so a
mismatched conditioner fails at the network's door rather than deep inside a matmul.
These work on plain tensors; layers stay independent of the ``Conditioning`` class.
"""

from __future__ import annotations

import torch


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_input(x: torch.Tensor, layout: str, channels: int,
                fixed: dict[int, tuple[str, int]]) -> None:
    """x must be floating point, of the rank ``layout`` names, with ``channels`` at dim 1 and
    ``fixed[axis] = (name, size)`` for the other fixed-size axes; ``layout`` reads "(B, C, T)"."""
    rank = layout.count(",") + 1
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor {layout}, got {x.dtype}")
    if x.ndim != rank:
        raise ValueError(f"x must have shape {layout}, got {_shape(x)}")
    if x.shape[1] != channels:
        raise ValueError(f"x must have C={channels} channel(s) at dim 1, got shape {_shape(x)}")
    for axis, (name, size) in fixed.items():
        if x.shape[axis] != size:
            raise ValueError(f"x must have {name}={size} at dim {axis}, got shape {_shape(x)}")


def check_c_noise(c_noise: torch.Tensor | float, batch: int, device: torch.device) -> torch.Tensor:
    """c_noise: (B,) or a scalar (broadcast to the batch) -> (B,) float32."""
    c_noise = torch.as_tensor(c_noise, device=device)
    if c_noise.ndim == 0:
        c_noise = c_noise.expand(batch)
    if c_noise.shape != (batch,) or not c_noise.is_floating_point():
        raise ValueError(f"c_noise must be a float tensor of shape ({batch},), got "
                         f"{c_noise.dtype} {_shape(c_noise)}")
    return c_noise.to(torch.float32)


def check_frames(frames: torch.Tensor | None, x: torch.Tensor, cond_channels: int,
                 layout: str) -> torch.Tensor | None:
    """Frame-aligned conditions must be (B, cond_channels, *x.shape[2:]) when cond_channels > 0."""
    if cond_channels == 0:
        if frames is not None:
            raise ValueError("cond.frames was given but this network has cond_channels=0; "
                             "build it with cond_channels equal to the frames' channel count")
        return None
    if frames is None:
        raise ValueError(f"this network needs cond.frames of shape {layout} with "
                         f"C={cond_channels} (cond_channels={cond_channels}), got None")
    expected = (x.shape[0], cond_channels, *x.shape[2:])
    if tuple(frames.shape) != expected:
        raise ValueError(f"cond.frames must have shape {layout} = ({', '.join(map(str, expected))}) "
                         f"to match x {_shape(x)} and cond_channels={cond_channels}, "
                         f"got {_shape(frames)}")
    return frames


def check_tokens(tokens: torch.Tensor | None, token_mask: torch.Tensor | None, batch: int,
                 text_dim: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """tokens (B, L, text_dim) and token_mask (B, L) bool; a missing mask means all real.

    ``tokens=None`` is the null condition: cross-attention then leaves the features unchanged,
    exactly as for an item whose mask is all False.
    """
    if tokens is None:
        if token_mask is not None:
            raise ValueError("cond.token_mask was given without cond.tokens")
        return None, None
    if text_dim == 0:
        raise ValueError("cond.tokens was given but this network has text_dim=0 (no cross-attention)")
    if tokens.ndim != 3 or tokens.shape[0] != batch or tokens.shape[2] != text_dim:
        raise ValueError(f"cond.tokens must have shape (B={batch}, L, text_dim={text_dim}), "
                         f"got {_shape(tokens)}")
    if token_mask is None:
        token_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if token_mask.dtype != torch.bool or tuple(token_mask.shape) != tuple(tokens.shape[:2]):
        raise ValueError(f"cond.token_mask must be a bool tensor of shape "
                         f"({tokens.shape[0]}, {tokens.shape[1]}) to match cond.tokens, "
                         f"got {token_mask.dtype} {_shape(token_mask)}")
    return tokens, token_mask


def check_pooled(pooled: torch.Tensor | None, batch: int, pooled_dim: int) -> torch.Tensor | None:
    """pooled (B, pooled_dim) or None (the null condition, which adds nothing)."""
    if pooled is None:
        return None
    if pooled_dim == 0:
        raise ValueError("cond.pooled was given but this network has pooled_dim=0")
    if tuple(pooled.shape) != (batch, pooled_dim):
        raise ValueError(f"cond.pooled must have shape (B={batch}, pooled_dim={pooled_dim}), "
                         f"got {_shape(pooled)}")
    return pooled
