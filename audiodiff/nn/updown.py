"""Down- and up-sampling layers, and the pad / crop that makes a UNet accept any length."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from audiodiff.nn.ops import conv_nd


class Downsample(nn.Module):
    """Strided convolution dividing every spatial axis by ``factor`` (channels unchanged).

    Kernel ``factor + 2p`` with padding ``p = ceil(factor / 2)`` maps a length L that is a
    multiple of ``factor`` to exactly ``L / factor`` while each output sees a little context on
    both sides (kernel 4 / stride 2 for mels, kernel 8 / stride 4 for waveforms).
    A learned strided conv rather than pooling, as in the DDPM/ADM UNets.
    """

    def __init__(self, dims: int, channels: int, factor: int) -> None:
        super().__init__()
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        pad = (factor + 1) // 2
        self.factor = factor
        self.conv = conv_nd(dims, channels, channels, factor + 2 * pad, stride=factor, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *spatial), each axis a multiple of factor -> (B, C, *(spatial / factor))."""
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by ``factor`` on every spatial axis, then a 3-tap conv.

    Nearest + conv instead of a transposed conv avoids checkerboard artefacts
    (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
    """

    def __init__(self, dims: int, channels: int, factor: int) -> None:
        super().__init__()
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        self.factor = factor
        self.conv = conv_nd(dims, channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *spatial) -> (B, C, *(spatial * factor))."""
        return self.conv(F.interpolate(x, scale_factor=self.factor, mode="nearest"))


def pad_to_multiple(x: torch.Tensor, multiples: Sequence[int]) -> torch.Tensor:
    """Zero-pad the trailing axes of x at their end so each is a multiple of ``multiples[i]``.

    ``multiples`` gives one entry per trailing axis (e.g. (8, 8) for (n_mels, N) of a mel).
    Zero padding matches what the convolutions already see beyond the edges.
    """
    pads: list[int] = []
    for size, multiple in zip(reversed(x.shape[-len(multiples):]), reversed(multiples)):
        pads += [0, (-size) % multiple]
    if not any(pads):
        return x
    return F.pad(x, pads)


def crop_to(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the trailing axes of x to ``shape`` (the inverse of :func:`pad_to_multiple`)."""
    index = (Ellipsis, *(slice(0, s) for s in shape))
    return x[index]


def valid_mask(valid_shape: Sequence[int], padded_shape: Sequence[int], factor: int,
               device: torch.device) -> torch.Tensor | None:
    """(prod(padded_shape / factor),) bool mask of the positions that hold real content.

    After downsampling the padded map by ``factor`` on every axis, a position is real if it
    overlaps the unpadded input: index < ceil(valid / factor) on every axis. Returns None when
    nothing is padded, so SDPA can use its unmasked fast path.
    """
    sizes = [p // factor for p in padded_shape]
    keep = [math.ceil(v / factor) for v in valid_shape]
    if keep == sizes:
        return None
    mask = torch.ones((), dtype=torch.bool, device=device)
    for size, k in zip(sizes, keep):
        axis = torch.arange(size, device=device) < k
        mask = mask[..., None] & axis
    return mask.reshape(-1)
