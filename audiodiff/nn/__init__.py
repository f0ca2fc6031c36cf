"""Shared neural-network layers for the denoising networks (1D and 2D, one implementation each).

Layers here work on plain tensors and never import :mod:`audiodiff.models`.
"""

from audiodiff.nn.attention import CrossAttention, SelfAttention
from audiodiff.nn.blocks import ResBlock
from audiodiff.nn.embeddings import MLP, ConditionEmbedding, SinusoidalEmbedding
from audiodiff.nn.ops import conv_nd, group_norm, zero_init
from audiodiff.nn.unet import UNetBackbone, UNetStage
from audiodiff.nn.updown import Downsample, Upsample, crop_to, pad_to_multiple, valid_mask

__all__ = [
    "MLP",
    "ConditionEmbedding",
    "CrossAttention",
    "Downsample",
    "ResBlock",
    "SelfAttention",
    "SinusoidalEmbedding",
    "UNetBackbone",
    "UNetStage",
    "Upsample",
    "conv_nd",
    "crop_to",
    "group_norm",
    "pad_to_multiple",
    "valid_mask",
    "zero_init",
]
