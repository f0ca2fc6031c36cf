"""The EDM training loss (Karras et al. 2022, eq. 2 and Table 1).

    L = E_{sigma, x0, n} [ lambda(sigma) * || D(x0 + sigma * n, sigma) - x0 ||^2 ]

with ``log(sigma) ~ N(p_mean, p_std^2)`` and ``lambda(sigma) = (sigma^2 + sd^2) / (sigma * sd)^2``.
The weight cancels ``c_out^2`` so that, at initialisation, every noise level contributes a loss
of order one to the network's raw output F.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from audiodiff.conditioning.base import Conditioning
from audiodiff.diffusion.denoiser import loss_weight
from audiodiff.diffusion.schedules import NoiseScheduleConfig

Denoiser = Callable[[torch.Tensor, torch.Tensor, "Conditioning | None"], torch.Tensor]


class EDMLoss:
    """Callable EDM loss: ``loss(denoiser, x0, cond, generator=..., mask=...)``.

    p_mean, p_std: lognormal training distribution of sigma.
    sigma_data: std of the data; must equal the denoiser's ``sigma_data``.
    """

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> None:
        for name, value in (("p_mean", p_mean), ("p_std", p_std), ("sigma_data", sigma_data)):
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} must be finite, got {value}")
        if p_std <= 0 or sigma_data <= 0:
            raise ValueError(f"p_std and sigma_data must be > 0, got p_std={p_std}, sigma_data={sigma_data}")
        self.p_mean = float(p_mean)
        self.p_std = float(p_std)
        self.sigma_data = float(sigma_data)

    @classmethod
    def from_config(cls, config: NoiseScheduleConfig) -> EDMLoss:
        return cls(config.p_mean, config.p_std, config.sigma_data)

    def sample_sigma(
        self, batch_size: int, device: torch.device | str, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(batch_size,) float32 noise levels, lognormal; drawn on ``generator``'s device."""
        draw_device = generator.device if generator is not None else device
        log_sigma = torch.randn(batch_size, generator=generator, device=draw_device)
        log_sigma = log_sigma * self.p_std + self.p_mean
        return log_sigma.exp().to(device)

    def __call__(
        self,
        denoiser: Denoiser,
        x0: torch.Tensor,
        cond: Conditioning | None = None,
        *,
        generator: torch.Generator | None = None,
        mask: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Weighted denoising loss of ``denoiser(x, sigma, cond)`` on a clean batch x0 (B, ...).

        generator: draws sigma and the noise, on the generator's own device (pass a CUDA
            generator when training on a GPU, so the noise is not drawn on the CPU and copied);
            None uses torch's global generator on x0's device.
        mask: optional, broadcastable to x0, e.g. (B, 1, ..., N) over frames: 1 where a frame is
            real, 0 where it is padding. Each item's loss is the mean over its real elements.
        reduction: "mean" -> scalar; "none" -> (B,) per-item losses.
        Returns: float32 loss (float64 for float64 input).
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        batch = x0.shape[0]
        dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
        sigma = self.sample_sigma(batch, x0.device, generator).to(dtype)
        draw_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=dtype).to(x0.device)
        sigma_b = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
        x_noisy = (x0.to(dtype) + sigma_b * noise).to(x0.dtype)
        denoised = denoiser(x_noisy, sigma, cond)
        err = (denoised.to(dtype) - x0.to(dtype)) ** 2
        reduce_dims = tuple(range(1, x0.ndim))
        if mask is None:
            per_item = err.mean(dim=reduce_dims) if reduce_dims else err
        else:
            mask = torch.broadcast_to(mask.to(device=x0.device, dtype=dtype), x0.shape)
            # A fully padded item counts as 0 rather than NaN.
            per_item = (err * mask).sum(dim=reduce_dims) / mask.sum(dim=reduce_dims).clamp_min(1.0)
        per_item = loss_weight(sigma, self.sigma_data) * per_item
        return per_item.mean() if reduction == "mean" else per_item
