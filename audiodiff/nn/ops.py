"""Small constructors shared by the 1D and 2D layers.

Every layer in :mod:`audiodiff.nn` takes ``dims`` (1 for waveforms (B, C, T), 2 for mels
(B, C, n_mels, N)) and builds its convolutions through :func:`conv_nd`, so the waveform and
mel networks share one implementation of each layer instead of two copies.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# GroupNorm with 32 groups is the usual choice for diffusion UNets (Ho et al. 2020; Dhariwal &
# Nichol 2021). Narrow layers keep at least 4 channels per group: with one channel per group a
# 1-position map (the lowest level of a 1-frame input) would normalise to exactly zero.
_MAX_GROUPS = 32
_MIN_GROUP_SIZE = 4


def conv_nd(
    dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
) -> nn.Module:
    """A 1D or 2D convolution; ``padding`` defaults to "same" for odd kernels at stride 1."""
    if padding is None:
        padding = kernel_size // 2
    if dims == 1:
        return nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    if dims == 2:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    raise ValueError(f"dims must be 1 or 2, got {dims}")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (fewer for very narrow layers);
    the group count always divides ``channels``."""
    groups = math.gcd(channels, min(_MAX_GROUPS, max(1, channels // _MIN_GROUP_SIZE)))
    return nn.GroupNorm(groups, channels, eps=1e-5)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` and return it.

    Used on the last layer of each residual branch and on the network output, so that a fresh
    network starts as the identity on each residual path and outputs zero (EDM, Karras et al.
    2022, Appendix B.7 / improved-diffusion's ``zero_module``): training starts stable.
    """
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def broadcast_to_spatial(vec: torch.Tensor, dims: int) -> torch.Tensor:
    """(B, C) -> (B, C, 1) or (B, C, 1, 1), to scale or shift a (B, C, *spatial) tensor."""
    return vec.reshape(*vec.shape, *([1] * dims))
