"""EDM preconditioning: turn a raw network into a denoiser D(x, sigma) (Karras et al. 2022).

The network ``net(x_in, c_noise, cond) -> F`` knows nothing about noise schedules. This module
wraps it as

    D(x, sigma, cond) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma), cond)

with the coefficients of Karras et al. (2022), Table 1 ("Elucidating the Design Space of
Diffusion-Based Generative Models"):

    c_skip = sd^2 / (sigma^2 + sd^2)       c_out = sigma * sd / sqrt(sigma^2 + sd^2)
    c_in   = 1 / sqrt(sigma^2 + sd^2)      c_noise = log(sigma) / 4

where ``sd`` is ``sigma_data``, the std of the training data.

Why EDM rather than eps- or v-prediction with a discrete timestep:

* The samplers live in sigma space (``x = x0 + sigma * n``), so Euler, Heun, DPM-Solver++ and
  DDIM all run at any step count and on any schedule; nothing is tied to a training grid of
  1000 timesteps, and the same trained network serves every schedule at inference.
* The network's input ``c_in * x`` and its effective target ``(x0 - c_skip * x) / c_out`` both
  have unit variance at *every* noise level, so one network of fixed scale is well conditioned
  from sigma = 0.002 to 80, and errors of F are amplified as little as possible (c_out is the
  smallest factor that keeps the target at unit variance).
* v-prediction (Salimans & Ho 2022) is the same thing up to a reparametrisation: rewritten in
  sigma space it is exactly this preconditioning with sigma_data = 1 and F = -v (its VP input
  ``z = x / sqrt(1 + sigma^2)`` is ``c_in * x``); EDM only lets c_skip / c_out follow the data's
  real scale. eps-prediction is c_skip = 1, c_out = -sigma, whose target is not normalised at
  low sigma. We therefore lose nothing by picking the form whose inputs and targets are
  normalised by construction.

The coefficients are computed in float32 (float64 when x is float64) even when the network runs
in bf16/fp16: ``c_skip * x`` carries almost all of D at low sigma and must not be rounded to
8 bits of mantissa. Only the network's own input and output take the network's dtype.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from audiodiff.conditioning.base import Conditioning


class RawNetwork(Protocol):
    """What :class:`EDMDenoiser` wraps: ``net(x_in, c_noise, cond) -> F``, F shaped like x_in."""

    def __call__(
        self, x_in: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning | None
    ) -> torch.Tensor: ...


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype preconditioning arithmetic runs in: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def expand_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Turn a (B,) or scalar sigma into (B, 1, ..., 1) that broadcasts against x (B, ...).

    Returns the dtype of :func:`compute_dtype` for x's dtype, on x's device.
    """
    dtype = compute_dtype(x.dtype)
    sigma = torch.as_tensor(sigma, device=x.device).to(dtype)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.ndim != 1 or sigma.shape[0] != x.shape[0]:
        raise ValueError(
            f"sigma must be a scalar or have shape (B,) = ({x.shape[0]},), got {tuple(sigma.shape)}"
        )
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def edm_coefficients(
    sigma: torch.Tensor, sigma_data: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) of Karras et al. (2022), Table 1, elementwise in sigma.

    sigma: any shape, > 0 for c_noise to be finite. Returns four tensors shaped like sigma.
    """
    var = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / var
    c_out = sigma * sigma_data / var.sqrt()
    c_in = var.rsqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM loss weight lambda(sigma) = (sigma^2 + sd^2) / (sigma * sd)^2 = 1 / c_out^2.

    With it, the weighted loss on D equals the unweighted loss on F's effective target, so every
    noise level contributes a unit-scale loss at initialisation.
    """
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class EDMDenoiser(nn.Module):
    """D(x, sigma, cond) from a raw network, with EDM preconditioning.

    net: a module (or callable) ``net(x_in, c_noise, cond) -> F``; ``c_noise`` is (B,) float32
        (float64 for float64 input) and the network casts its noise embedding as it needs.
    sigma_data: std of the training data (see :class:`NoiseScheduleConfig`).
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        sigma_data = float(sigma_data)
        if not (sigma_data > 0 and sigma_data < float("inf")):
            raise ValueError(f"sigma_data must be a finite number > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = sigma_data

    def _net_dtype(self, x: torch.Tensor) -> torch.dtype:
        # The network's input takes the dtype of its weights (bf16 weights get bf16 input);
        # under autocast, or for a parameter-free net, x's own dtype is used.
        if isinstance(self.net, nn.Module) and not torch.is_autocast_enabled(x.device.type):
            for p in self.net.parameters():
                if p.is_floating_point():
                    return p.dtype
        return x.dtype

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | float, cond: Conditioning | None = None
    ) -> torch.Tensor:
        """Denoise x (B, ...) at noise level sigma ((B,) or scalar, > 0).

        Works for any layout with the batch first: mel (B, 1, n_mels, N), wav (B, C, T).
        Returns the estimate of x0, shaped and typed like x.
        """
        sigma_b = expand_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma_b, self.sigma_data)
        x_c = x.to(sigma_b.dtype)
        x_in = (c_in * x_c).to(self._net_dtype(x))
        out = self.net(x_in, c_noise.reshape(-1), cond)
        if out.shape != x.shape:
            raise ValueError(f"network output shape {tuple(out.shape)} differs from input {tuple(x.shape)}")
        return (c_skip * x_c + c_out * out.to(sigma_b.dtype)).to(x.dtype)
