"""Diffusion maths in sigma space (EDM, Karras et al. 2022), kept in four separate pieces.

* schedules: noise levels for sampling (:func:`karras_sigmas`) and training
  (:class:`NoiseScheduleConfig`);
* the denoiser / preconditioner :class:`EDMDenoiser`, which turns a raw network into D(x, sigma);
* the loss :class:`EDMLoss`;
* stateless samplers (:data:`SAMPLERS`) over any ``denoise(x, sigma)`` callable, with
  classifier-free guidance (:func:`cfg_denoise`) as a wrapper of that callable (and
  autoguidance, :class:`AutoGuided`, as a wrapper of the denoiser), and per-item
  seeded noise (:func:`randn_from_seeds`) so a seed gives the same audio on every device.

This package never imports a network.
"""

from audiodiff.diffusion.denoiser import EDMDenoiser, edm_coefficients, loss_weight
from audiodiff.diffusion.guidance import AutoGuided, cfg_denoise
from audiodiff.diffusion.losses import EDMLoss
from audiodiff.diffusion.noise import (
    generators_from_seeds,
    randn_from_generators,
    randn_from_seeds,
    randn_like_cpu,
    seeds_for_batch,
)
from audiodiff.diffusion.samplers import (
    SAMPLERS,
    get_sampler,
    sample_ddim,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_3m,
    sample_euler,
    sample_heun,
)
from audiodiff.diffusion.schedules import (
    SCHEDULES,
    NoiseScheduleConfig,
    karras_sigmas,
    loglinear_sigmas,
    make_sigmas,
    sigmas_for_strength,
    variation_sigmas,
)

__all__ = [
    "AutoGuided",
    "EDMDenoiser",
    "EDMLoss",
    "NoiseScheduleConfig",
    "SAMPLERS",
    "SCHEDULES",
    "cfg_denoise",
    "edm_coefficients",
    "generators_from_seeds",
    "get_sampler",
    "karras_sigmas",
    "loglinear_sigmas",
    "loss_weight",
    "make_sigmas",
    "randn_from_generators",
    "randn_from_seeds",
    "randn_like_cpu",
    "sample_ddim",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m",
    "sample_euler",
    "sample_heun",
    "seeds_for_batch",
    "sigmas_for_strength",
    "variation_sigmas",
]
