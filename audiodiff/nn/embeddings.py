"""Embeddings of the noise level and of pooled conditions into one vector per item.

The network sees the noise level as ``c_noise`` (EDM: ``log(sigma) / 4``, roughly in [-3, 1.5]
for sigma in [0.002, 80]). A sinusoidal feature map followed by an MLP turns that scalar into the
embedding vector that every residual block reads through FiLM (Karras et al. 2022, Table 1;
Vaswani et al. 2017 for the sinusoids).
"""

from __future__ import annotations

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Map a scalar per item to ``[cos(w_k t), sin(w_k t)]`` with log-spaced frequencies.

    The frequencies span ``min_freq`` .. ``max_freq`` (radians per unit of t) geometrically.
    The defaults are chosen for ``c_noise = log(sigma) / 4``: the lowest frequency changes
    by less than a period over the whole [-3, 1.5] range (a smooth "coarse position"), and the
    highest resolves differences of ~1e-3 (sigma changing by ~0.4%). Transformer position
    encodings (max period 10000 over integer timesteps) would waste most channels on
    near-constant features for such a small range.

    The frequencies are deterministic and recomputed at construction, so they are a
    non-persistent buffer: checkpoints hold no random projection that must be kept in sync.
    """

    def __init__(self, num_channels: int, min_freq: float = 0.5, max_freq: float = 1000.0) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"num_channels must be even and >= 2, got {num_channels}")
        half = num_channels // 2
        exponents = torch.arange(half, dtype=torch.float64) / max(half - 1, 1)
        freqs = min_freq * (max_freq / min_freq) ** exponents
        self.register_buffer("freqs", freqs.to(torch.float32), persistent=False)
        self.num_channels = num_channels

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) float, any range -> (B, num_channels) float32 in [-1, 1]."""
        # Computed in float32 even under autocast / low-precision weights: sin(1000 * t) in bf16
        # would round t to 3 significant digits and alias.
        angles = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class MLP(nn.Module):
    """Linear -> SiLU -> Linear, the standard embedding projection."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_features) -> (B, out_features), same dtype as the weights."""
        return self.fc2(nn.functional.silu(self.fc1(x)))


class ConditionEmbedding(nn.Module):
    """Noise level + optional pooled condition -> one embedding vector per item.

    ``emb = MLP(sinusoids(c_noise)) + MLP(pooled)``; the sum is what FiLM layers read, so the
    pooled condition modulates every residual block the same way the noise level does
    (the class-label path of EDM's ``DhariwalUNet``, with a continuous vector instead of a label).
    A missing ``pooled`` is the null condition and contributes nothing.
    """

    def __init__(self, emb_dim: int, pooled_dim: int = 0, fourier_dim: int = 256) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.pooled_dim = pooled_dim
        self.fourier = SinusoidalEmbedding(fourier_dim)
        self.noise_mlp = MLP(fourier_dim, emb_dim, emb_dim)
        self.pooled_mlp = MLP(pooled_dim, emb_dim, emb_dim) if pooled_dim > 0 else None

    def forward(self, c_noise: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        """c_noise: (B,) float; pooled: (B, pooled_dim) or None -> (B, emb_dim), weight dtype."""
        dtype = self.noise_mlp.fc1.weight.dtype
        emb = self.noise_mlp(self.fourier(c_noise).to(dtype))
        if pooled is not None:
            if self.pooled_mlp is None:
                raise ValueError("this network takes no pooled condition (pooled_dim=0)")
            emb = emb + self.pooled_mlp(pooled.to(dtype))
        return emb
