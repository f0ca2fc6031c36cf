"""Noise-level schedules in sigma space (the EDM formulation, Karras et al. 2022).

A diffusion sample at noise level ``sigma`` is ``x = x0 + sigma * n`` with ``n ~ N(0, I)``. A
sampling schedule is a decreasing tensor ``sigmas`` of shape ``(num_steps + 1,)`` that starts at
``sigma_max`` and ends in exactly ``0``; a sampler takes one step per consecutive pair. Because the
samplers and the denoiser only ever see sigma, any schedule works with any trained network
(the schedule is a generation setting, not part of the model).

Schedules are returned as **float64 tensors on the CPU**: they are tiny, the samplers turn them
into Python floats for their step coefficients, and float64 keeps the small sigmas near
``sigma_min`` exact (``rho = 7`` packs many steps there).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from audiodiff.config import Config, check, register_config

SCHEDULES = ("karras", "loglinear")


def _check_schedule_args(num_steps: int, sigma_min: float, sigma_max: float) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int):
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1 (one sampler step per sigma pair), got {num_steps}")
    if not (math.isfinite(sigma_min) and math.isfinite(sigma_max) and 0.0 < sigma_min < sigma_max):
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, both finite; got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}"
        )


def karras_sigmas(
    num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0
) -> torch.Tensor:
    """The Karras et al. (2022, eq. 5) schedule, followed by a final 0.

    ``sigma_i = (sigma_max^(1/rho) + i/(num_steps-1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    for ``i = 0 .. num_steps-1``; ``rho = 7`` spends more steps at low noise, where detail forms.
    With ``num_steps == 1`` the single step goes from ``sigma_max`` straight to 0.

    Returns: (num_steps + 1,) float64 on the CPU, strictly decreasing, last element 0.
    """
    _check_schedule_args(num_steps, sigma_min, sigma_max)
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a finite number > 0, got {rho}")
    ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
    max_inv = sigma_max ** (1.0 / rho)
    min_inv = sigma_min ** (1.0 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def loglinear_sigmas(num_steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Sigmas spaced uniformly in log(sigma) from ``sigma_max`` to ``sigma_min``, then a final 0.

    This is the ``rho -> inf`` limit of :func:`karras_sigmas`, and the spacing DPM-Solver++
    (Lu et al. 2022) analyses, since its step size is ``h = log(sigma_i / sigma_{i+1})``.

    Returns: (num_steps + 1,) float64 on the CPU, strictly decreasing, last element 0.
    """
    _check_schedule_args(num_steps, sigma_min, sigma_max)
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), num_steps, dtype=torch.float64)
    return torch.cat([log_sigmas.exp(), torch.zeros(1, dtype=torch.float64)])


def make_sigmas(
    num_steps: int,
    sigma_min: float,
    sigma_max: float,
    *,
    schedule: str = "karras",
    rho: float = 7.0,
) -> torch.Tensor:
    """Build a schedule by name: ``"karras"`` (uses ``rho``) or ``"loglinear"``.

    Returns: (num_steps + 1,) float64 on the CPU, ending in 0.
    """
    if schedule == "karras":
        return karras_sigmas(num_steps, sigma_min, sigma_max, rho)
    if schedule == "loglinear":
        return loglinear_sigmas(num_steps, sigma_min, sigma_max)
    raise ValueError(f"unknown schedule {schedule!r}; known schedules: {', '.join(SCHEDULES)}")


def sigmas_for_strength(sigmas_full: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of a schedule that audio-to-audio generation runs at a given strength.

    ``strength`` in [0, 1] is the fraction of the ``n = len(sigmas_full) - 1`` steps to run:
    ``k = floor(strength * n + 0.5)`` steps, i.e. ``sigmas_full[n - k:]``. Strength 1 returns the
    whole schedule (the input is fully noised, nothing of it survives); strength 0 returns only
    the last sigma (zero steps: the input comes back unchanged). The caller noises its input to
    ``result[0]`` before sampling.

    sigmas_full: (n + 1,) decreasing. Returns: (k + 1,), a view of ``sigmas_full``.
    """
    if sigmas_full.ndim != 1 or sigmas_full.numel() < 1:
        raise ValueError(
            f"sigmas_full must be a 1-D tensor with at least 1 element, got {tuple(sigmas_full.shape)}"
        )
    strength = float(strength)
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    n = sigmas_full.numel() - 1
    k = min(n, math.floor(strength * n + 0.5))
    return sigmas_full[n - k:]


# Below this start sigma a variation is inaudible: 1/10 of the std of normalised log-mels (0.5).
VARIATION_SIGMA_FLOOR = 0.05


def variation_sigmas(num_steps: int, strength: float, sigma_min: float, sigma_max: float,
                     rho: float = 7.0, floor: float = VARIATION_SIGMA_FLOOR) -> torch.Tensor:
    """The schedule that audio-to-audio generation (SDEdit) runs at a ``strength`` in [0, 1].

    The start sigma is log-linear in strength, ``floor * (sigma_max / floor) ** strength``, so
    equal steps of the dial change the output by similar amounts (the tail of a short schedule, as
    :func:`sigmas_for_strength` takes, jumps: with 8 steps, strength 0.2 started at sigma 0.035
    and changed nothing audible). From there ``ceil(strength * num_steps)`` Karras steps run down
    to ``sigma_min`` (weaker variations cost fewer steps). Strength 0 is ``[0]`` (no step: the
    input comes back unchanged); strength 1 is the full ``num_steps`` schedule from ``sigma_max``.

    Returns: (k + 1,) float64 on the CPU, decreasing, last element 0.
    """
    strength = float(strength)
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if not (0 < floor < sigma_max):
        raise ValueError(f"floor must be in (0, sigma_max), got {floor}")
    if strength == 0.0:
        return torch.zeros(1, dtype=torch.float64)
    start = floor * (sigma_max / floor) ** strength
    steps = max(1, math.ceil(strength * num_steps - 1e-9))
    return karras_sigmas(steps, min(sigma_min, start / 2), start, rho)


@register_config
@dataclasses.dataclass(frozen=True)
class NoiseScheduleConfig(Config):
    """Noise levels for training and sampling (defaults from EDM, Karras et al. 2022, Table 1).

    sigma_min, sigma_max: sampling range. 0.002 is below what any 16-bit output resolves;
        80 drowns data of std ``sigma_data`` completely, so sampling can start from pure noise.
    rho: Karras schedule curvature (7 was best for EDM's samplers).
    sigma_data: std of the training data; the preconditioning keeps network inputs and targets
        at unit variance only if this matches the data (normalised log-mels are scaled to ~0.5).
    p_mean, p_std: training noise levels are lognormal, ``log(sigma) ~ N(p_mean, p_std^2)``
        (EDM's P_mean / P_std): most training effort goes to mid noise, where the loss can still
        be reduced, rather than to levels where the task is trivial or hopeless.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self) -> None:
        for name in ("sigma_min", "sigma_max", "rho", "sigma_data", "p_mean", "p_std"):
            value = getattr(self, name)
            check(
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                f"NoiseScheduleConfig.{name} must be a finite number, got {value!r}",
            )
        check(self.sigma_min > 0, f"NoiseScheduleConfig.sigma_min must be > 0, got {self.sigma_min}")
        check(
            self.sigma_max > self.sigma_min,
            f"NoiseScheduleConfig.sigma_max ({self.sigma_max}) must be > sigma_min ({self.sigma_min})",
        )
        check(self.rho > 0, f"NoiseScheduleConfig.rho must be > 0, got {self.rho}")
        check(self.sigma_data > 0, f"NoiseScheduleConfig.sigma_data must be > 0, got {self.sigma_data}")
        check(self.p_std > 0, f"NoiseScheduleConfig.p_std must be > 0, got {self.p_std}")

    def sigmas(self, num_steps: int, schedule: str = "karras") -> torch.Tensor:
        """The sampling schedule for ``num_steps`` steps: (num_steps + 1,) float64, ending in 0."""
        return make_sigmas(num_steps, self.sigma_min, self.sigma_max, schedule=schedule, rho=self.rho)
