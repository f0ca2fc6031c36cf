"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper of the denoiser.

    D_cfg(x, sigma) = D(x, sigma, uncond) + w * (D(x, sigma, cond) - D(x, sigma, uncond))

The samplers only see a ``denoise(x, sigma)`` callable, so guidance is built here and handed to
any sampler unchanged. Guiding the x0 prediction is equivalent to guiding eps or the score at
the same sigma, since all three are affine in D with the same coefficients for both branches.

Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself") is a
second, independent kind: a denoiser wrapper (:class:`AutoGuided`) that pushes the prediction
away from a weaker denoiser of the same task, D + w (D - G). It changes no conditioning, so it
composes with classifier-free guidance (both branches are autoguided) and with every mode.

Guidance can be limited to an interval of noise levels (Kynkaanniemi et al. 2024, "Applying
Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion Models"):
outside it the conditional prediction is used alone, one forward of B items instead of 2B, which
is also what makes a guided step cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from audiodiff.conditioning.base import Conditioning
from audiodiff.diffusion.samplers import sigma_batch

Denoiser = Callable[[torch.Tensor, torch.Tensor, Conditioning], torch.Tensor]


def _check_scale(guidance_scale: float) -> float:
    if isinstance(guidance_scale, bool):
        raise ValueError(f"guidance_scale must be a number, got {guidance_scale!r}")
    try:
        scale = float(guidance_scale)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_scale must be a number, got {guidance_scale!r}") from None
    if not math.isfinite(scale):
        raise ValueError(f"guidance_scale must be finite, got {guidance_scale}")
    return scale


def _match_batch(uncond: Conditioning, batch: int | None) -> Conditioning:
    # A single null condition serves the whole batch.
    if batch is not None and uncond.batch_size == 1 and batch > 1:
        return uncond.repeat(batch)
    if uncond.batch_size != batch:
        raise ValueError(f"uncond has batch size {uncond.batch_size}, cond has {batch}")
    return uncond


def check_autoguidance(weight) -> float:
    """An autoguidance weight: a finite number >= 0 (not a bool), as a float."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
        raise ValueError(f"autoguidance must be a finite number >= 0, got {weight!r}")
    return float(weight)


def check_interval(interval) -> tuple[float, float] | None:
    """None, or (lo, hi) with 0 <= lo < hi (hi may be inf): the sigmas lo < sigma <= hi are guided."""
    if interval is None:
        return None
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be (sigma_lo, sigma_hi), got {interval!r}") from None
    if not (0 <= lo < hi) or math.isnan(hi):
        raise ValueError(f"guidance_interval needs 0 <= sigma_lo < sigma_hi, got {interval!r}")
    return lo, hi


def cfg_denoise(
    denoiser: Denoiser,
    cond: Conditioning,
    uncond: Conditioning,
    guidance_scale: float,
    interval: tuple[float, float] | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``denoise(x, sigma)`` for the samplers that applies classifier-free guidance.

    denoiser: ``denoiser(x, sigma, cond) -> x0_hat`` (e.g. an :class:`EDMDenoiser`).
    cond, uncond: conditionings of the batch; ``uncond`` may have batch size 1 (the null
        condition), it is then repeated to cond's batch size.
    guidance_scale: w above, finite. w = 1 is the conditional model and w = 0 the unconditional
        one, each with a single forward pass and exactly the plain prediction; any other value
        runs ONE batched forward over [cond; uncond] (2B items), so the two branches share the
        network call.
    interval: (lo, hi): guide only where lo < sigma <= hi, elsewhere the conditional prediction
        alone (w = 1); None guides at every sigma. A batch whose items have different sigmas is
        guided wherever any of them is inside.
    Returns: a callable x (B, ...), sigma (B,) -> (B, ...). It also takes sigma as a Python
    float (``takes_float_sigma``: the samplers pass theirs so): the interval is then tested on
    the host, where a tensor sigma on a GPU would be read back (a sync) at every step.
    """
    scale = _check_scale(guidance_scale)
    interval = check_interval(interval)
    if scale == 1.0:
        return lambda x, sigma: denoiser(x, sigma, cond)
    uncond = _match_batch(uncond, cond.batch_size)
    if scale == 0.0:
        return lambda x, sigma: denoiser(x, sigma, uncond)
    both = Conditioning.cat([cond, uncond])

    def denoise(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if isinstance(sigma, (int, float)):
            guided = interval is None or interval[0] < sigma <= interval[1]
            sigma = sigma_batch(float(sigma), x)
        else:
            sigma = torch.as_tensor(sigma, device=x.device)
            if sigma.ndim == 0:
                sigma = sigma.expand(x.shape[0])
            guided = interval is None or bool(((sigma > interval[0]) & (sigma <= interval[1])).any())
        if not guided:
            return denoiser(x, sigma, cond)
        out = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), both)
        d_cond, d_uncond = out.chunk(2)
        return d_uncond + scale * (d_cond - d_uncond)

    denoise.takes_float_sigma = True
    return denoise


class AutoGuided(nn.Module):
    """Autoguidance: ``D(x, sigma, c) + weight * (D(x, sigma, c) - G(x, sigma, c))``.

    denoiser: the model's ``D(x, sigma, cond) -> x0_hat``.
    guide: G, a weaker denoiser of the same inputs (fewer parameters or less training); its
        errors resemble D's but are larger, so the difference points away from them (Karras et
        al. 2024 extrapolate a model from a smaller, shorter-trained one of the same family).
    weight: w >= 0; 0 is the plain model (and runs G not at all). Karras et al.'s guidance
        factor is 1 + w.
    Costs one forward of G per call, on the same batch.
    """

    def __init__(self, denoiser: nn.Module, guide: nn.Module, weight: float) -> None:
        super().__init__()
        self.denoiser, self.guide, self.weight = denoiser, guide, check_autoguidance(weight)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: Conditioning | None = None) -> torch.Tensor:
        d = self.denoiser(x, sigma, cond)
        if self.weight == 0:
            return d
        return d + self.weight * (d - self.guide(x, sigma, cond))
