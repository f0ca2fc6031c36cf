"""Samplers: correctness on Gaussian data, contracts, and parity with k-diffusion.

The reference is k-diffusion's ``k_diffusion/sampling.py`` (written by someone else), installed
with ``pip install --no-deps k-diffusion==0.1.1.post1 torchsde torchdiffeq trampoline``.
Its package ``__init__`` pulls in torchvision, clean-fid, wandb and more, so only
``sampling.py`` is loaded, under a private module name, with a one-function stand-in for its
``utils`` module. The parity tests skip when the reference is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest
import torch

from audiodiff.diffusion import (
    SAMPLERS,
    generators_from_seeds,
    get_sampler,
    karras_sigmas,
    loglinear_sigmas,
    sample_ddim,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_3m,
    sample_euler,
    sample_heun,
)

SIGMA_DATA = 0.5
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0

# (name, sampler, options): every sampler, DDIM with and without noise.
CASES = [
    ("euler", sample_euler, {}),
    ("heun", sample_heun, {}),
    ("dpmpp_2m", sample_dpmpp_2m, {}),
    ("dpmpp_3m", sample_dpmpp_3m, {}),
    ("ddim_eta0", sample_ddim, {"eta": 0.0}),
    ("ddim_eta1", sample_ddim, {"eta": 1.0}),
    ("dpmpp_2m_sde", sample_dpmpp_2m_sde, {"eta": 1.0}),
]


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact D for x0 ~ N(0, sd^2 I): E[x0 | x] = x * sd^2 / (sd^2 + sigma^2)."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return x * SIGMA_DATA**2 / (SIGMA_DATA**2 + s**2)


MODES = (-1.0, 0.3, 1.2)
MODE_STD = 0.15


def mixture_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact, nonlinear D for i.i.d. elements from an equal mixture of N(m, MODE_STD^2)."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    means = torch.tensor(MODES, dtype=x.dtype)
    var = MODE_STD**2 + s[..., None] ** 2
    logits = -((x[..., None] - means) ** 2) / (2 * var)
    weights = torch.softmax(logits, dim=-1)
    # Posterior mean within each component, then mixed by the component posteriors.
    comp_mean = means + (MODE_STD**2 / var) * (x[..., None] - means)
    return (weights * comp_mean).sum(-1)


# First-order samplers need more steps for the same accuracy (see the convergence test).
SPREAD_STEPS = {"euler": 200, "heun": 50, "dpmpp_2m": 50, "dpmpp_3m": 50, "ddim_eta0": 200, "ddim_eta1": 400,
                "dpmpp_2m_sde": 100}


@pytest.mark.parametrize("name,sampler,options", CASES, ids=[c[0] for c in CASES])
def test_gaussian_data_sampled_with_the_right_spread(name, sampler, options):
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    sigmas = karras_sigmas(SPREAD_STEPS[name], SIGMA_MIN, SIGMA_MAX)
    # The marginal at sigma_max is N(0, sd^2 + sigma_max^2); starting there is exact.
    x_t = torch.randn(n, 1, generator=gen, dtype=torch.float64) * math.sqrt(SIGMA_DATA**2 + SIGMA_MAX**2)
    out = sampler(gaussian_denoiser, x_t, sigmas, generator=gen, **options)
    assert out.shape == x_t.shape and out.dtype == x_t.dtype
    assert abs(out.std().item() / SIGMA_DATA - 1) < 0.03
    assert abs(out.mean().item()) < 0.03 * SIGMA_DATA
    if options.get("eta", 0.0) == 0.0:
        # Deterministic samplers solve the probability-flow ODE, whose exact solution here is a
        # rescaling of each sample: x0 = x_T * sd / sqrt(sd^2 + sigma_max^2).
        exact = x_t * SIGMA_DATA / math.sqrt(SIGMA_DATA**2 + SIGMA_MAX**2)
        assert (out - exact).abs().max() < 0.02 * exact.abs().max()


def _ode_error(sampler, num_steps: int) -> float:
    x_t = torch.full((1, 1), math.sqrt(SIGMA_DATA**2 + SIGMA_MAX**2), dtype=torch.float64)
    out = sampler(gaussian_denoiser, x_t, karras_sigmas(num_steps, SIGMA_MIN, SIGMA_MAX))
    return abs(out.item() / SIGMA_DATA - 1)


@pytest.mark.parametrize(
    "sampler,order", [(sample_euler, 1), (sample_heun, 2), (sample_dpmpp_2m, 2), (sample_ddim, 1)]
)
def test_convergence_order(sampler, order):
    # Doubling the steps divides the global error by 2^order (error ~ h^order).
    ratios = [_ode_error(sampler, n) / _ode_error(sampler, 2 * n) for n in (50, 100)]
    for ratio in ratios:
        assert 2**order * 0.8 < ratio < 2**order * 1.25, ratios


def test_dpmpp_3m_wins_with_many_steps_and_loses_with_few():
    """Third order pays once the steps are small: on the Gaussian ODE its error at 25-100 steps
    is 4-100x below 2M's, but from sigma 80 in 10 or fewer Karras steps its extrapolation over
    the large first steps overshoots (0.30 against 0.16 at 10 steps), so the few-step defaults
    stay with 2M."""
    for n in (25, 50, 100):
        assert _ode_error(sample_dpmpp_3m, n) < 0.25 * _ode_error(sample_dpmpp_2m, n)
    for n in (5, 8, 10):
        assert _ode_error(sample_dpmpp_3m, n) > _ode_error(sample_dpmpp_2m, n)


@pytest.mark.parametrize("name,sampler,options", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("num_steps", [1, 2, 7])
def test_any_step_count_and_callback(name, sampler, options, num_steps):
    sigmas = karras_sigmas(num_steps, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(3, 1, 4, 5, generator=torch.Generator().manual_seed(1)) * SIGMA_MAX
    seen = []
    out = sampler(mixture_denoiser, x, sigmas, callback=seen.append,
                  generator=torch.Generator().manual_seed(2), **options)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert [d["i"] for d in seen] == list(range(num_steps))
    assert [d["sigma"] for d in seen] == pytest.approx(sigmas[:-1].tolist())
    assert [d["sigma_next"] for d in seen] == pytest.approx(sigmas[1:].tolist())
    # The last step goes into sigma = 0 and lands on the denoised estimate.
    torch.testing.assert_close(out, seen[-1]["denoised"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name,sampler,options", CASES, ids=[c[0] for c in CASES])
def test_zero_steps_return_input(name, sampler, options):
    x = torch.randn(2, 3)
    assert torch.equal(sampler(mixture_denoiser, x, torch.tensor([0.0]), **options), x)


def test_heun_calls_and_resume():
    calls = []

    def counting(x, sigma):
        calls.append(sigma[0].item())
        return mixture_denoiser(x, sigma)

    sigmas = karras_sigmas(4, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * SIGMA_MAX
    full = sample_heun(counting, x, sigmas)
    assert len(calls) == 2 * 4 - 1  # two per step, one for the Euler step into sigma = 0
    # Stateless: 2 steps then 2 more from where they stopped equals 4 steps.
    resumed = sample_heun(mixture_denoiser, sample_heun(mixture_denoiser, x, sigmas[:3]), sigmas[2:])
    torch.testing.assert_close(resumed, full, rtol=0, atol=1e-12)


def test_ddim_noise_is_per_item_with_generator_list():
    sigmas = karras_sigmas(5, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(4)) * SIGMA_MAX
    batch = sample_ddim(mixture_denoiser, x, sigmas, eta=1.0, generator=generators_from_seeds([7, 8, 9]))
    alone = sample_ddim(mixture_denoiser, x[1:2], sigmas, eta=1.0, generator=generators_from_seeds([8]))
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-6)
    again = sample_ddim(mixture_denoiser, x, sigmas, eta=1.0, generator=generators_from_seeds([7, 8, 9]))
    assert torch.equal(batch, again)
    other = sample_ddim(mixture_denoiser, x, sigmas, eta=1.0, generator=generators_from_seeds([1, 2, 3]))
    assert not torch.allclose(batch, other)


def test_ddim_eta0_equals_euler():
    # Deterministic DDIM in sigma space is x_next = D + sigma_next * eps, Euler's update.
    sigmas = loglinear_sigmas(9, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * SIGMA_MAX
    torch.testing.assert_close(
        sample_ddim(mixture_denoiser, x, sigmas, eta=0.0), sample_euler(mixture_denoiser, x, sigmas),
        rtol=0, atol=1e-12,
    )


def test_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="known samplers: ddim, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m, euler, heun"):
        get_sampler("plms")
    assert get_sampler("heun") is sample_heun
    assert set(SAMPLERS) == {"euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m", "ddim"}
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_euler(mixture_denoiser, x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(mixture_denoiser, x, torch.tensor([1.0, 0.0]), eta=1.5)
    with pytest.raises(ValueError, match="dpmpp_2m_sde eta must be in"):
        sample_dpmpp_2m_sde(mixture_denoiser, x, torch.tensor([1.0, 0.0]), eta=-0.1)
    with pytest.raises(TypeError, match="eta"):
        sample_heun(mixture_denoiser, x, torch.tensor([1.0, 0.0]), eta=0.5)


# ---------------------------------------------------------------- parity with k-diffusion


@pytest.fixture(scope="module")
def kdiff():
    """k-diffusion's sampling.py, loaded without its heavy package __init__."""
    for dep in ("scipy", "torchsde", "torchdiffeq", "tqdm"):
        pytest.importorskip(dep)
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("k-diffusion is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "sampling.py"
    name = "_kdiffusion_reference"
    package = types.ModuleType(name)
    package.__path__ = []
    utils = types.ModuleType(f"{name}.utils")
    # The only utils function the samplers use: append trailing singleton dims.
    utils.append_dims = lambda t, ndim: t[(...,) + (None,) * (ndim - t.ndim)]
    saved = {k: sys.modules.get(k) for k in (name, f"{name}.utils", f"{name}.sampling")}
    sys.modules[name], sys.modules[f"{name}.utils"] = package, utils
    try:
        mod_spec = importlib.util.spec_from_file_location(f"{name}.sampling", path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[f"{name}.sampling"] = module
        mod_spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


def test_karras_schedule_matches_reference(kdiff):
    for n in (1, 2, 10, 50):
        ref = kdiff.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX, rho=7.0).to(torch.float64)
        torch.testing.assert_close(karras_sigmas(n, SIGMA_MIN, SIGMA_MAX), ref, rtol=1e-5, atol=1e-7)


def _trajectory(run):
    """Run a sampler with a recording callback; return (final x, [(x_i, denoised_i), ...])."""
    steps = []
    out = run(lambda d: steps.append((d["x"].clone(), d["denoised"].clone())))
    return out, steps


PARITY = [  # (id, ours, k-diffusion's, our options, its options)
    ("euler", lambda: sample_euler, "sample_euler", {}, {}),
    ("heun", lambda: sample_heun, "sample_heun", {}, {}),
    ("dpmpp_2m", lambda: sample_dpmpp_2m, "sample_dpmpp_2m", {}, {}),
    # Our claim: deterministic 3M is k-diffusion's 3M SDE without its noise.
    ("dpmpp_3m", lambda: sample_dpmpp_3m, "sample_dpmpp_3m_sde", {}, {"eta": 0.0}),
    # Our claim: deterministic DDIM in sigma space is Euler; eta = 1 is Euler-ancestral.
    ("ddim_eta0_vs_euler", lambda: sample_ddim, "sample_euler", {"eta": 0.0}, {}),
]


@pytest.mark.parametrize("schedule", ["karras", "loglinear"])
@pytest.mark.parametrize("num_steps", [1, 3, 25])
@pytest.mark.parametrize("name,ours,ref_name,options,ref_options", PARITY, ids=[p[0] for p in PARITY])
def test_trajectory_matches_kdiffusion(kdiff, name, ours, ref_name, options, ref_options, num_steps, schedule):
    if name == "dpmpp_3m" and num_steps == 1:
        pytest.skip("k-diffusion's 3M SDE fails on a single step (its h is unbound); ours returns D")
    make = karras_sigmas if schedule == "karras" else loglinear_sigmas
    sigmas = make(num_steps, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(4, 1, 6, 10, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    x = x * SIGMA_MAX
    out, steps = _trajectory(lambda cb: ours()(mixture_denoiser, x, sigmas, callback=cb, **options))
    ref_fn = getattr(kdiff, ref_name)
    ref, ref_steps = _trajectory(lambda cb: ref_fn(mixture_denoiser, x, sigmas, callback=cb, disable=True,
                                                   **ref_options))
    assert len(steps) == len(ref_steps) == num_steps
    for (xa, da), (xb, db) in zip(steps, ref_steps):
        torch.testing.assert_close(xa, xb, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(da, db, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_with_noise_matches_kdiffusion_euler_ancestral(kdiff, eta):
    sigmas = karras_sigmas(12, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(12), dtype=torch.float64) * SIGMA_MAX
    out = sample_ddim(mixture_denoiser, x, sigmas, eta=eta, generator=torch.Generator().manual_seed(13))
    # The same noise stream: CPU float32 draws from one generator, cast to x's dtype.
    ref_gen = torch.Generator().manual_seed(13)
    noise = lambda *_: torch.randn(x.shape, generator=ref_gen, dtype=torch.float32).to(x.dtype)  # noqa: E731
    ref = kdiff.sample_euler_ancestral(mixture_denoiser, x, sigmas, eta=eta, noise_sampler=noise,
                                       disable=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_steps", [2, 3, 16])  # its 2M SDE fails on a single step (h unbound), as its 3M
@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_dpmpp_2m_sde_matches_kdiffusion(kdiff, eta, num_steps):
    sigmas = karras_sigmas(num_steps, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(14), dtype=torch.float64) * SIGMA_MAX
    out, steps = _trajectory(lambda cb: sample_dpmpp_2m_sde(mixture_denoiser, x, sigmas, eta=eta, callback=cb,
                                                            generator=torch.Generator().manual_seed(15)))
    # The same noise stream as ours (CPU float32 draws from one generator) instead of its
    # default Brownian tree, whose increments have the same distribution.
    ref_gen = torch.Generator().manual_seed(15)
    noise = lambda *_: torch.randn(x.shape, generator=ref_gen, dtype=torch.float32).to(x.dtype)  # noqa: E731
    ref, ref_steps = _trajectory(lambda cb: kdiff.sample_dpmpp_2m_sde(
        mixture_denoiser, x, sigmas, eta=eta, noise_sampler=noise, solver_type="midpoint", callback=cb,
        disable=True))
    assert len(steps) == len(ref_steps) == num_steps
    for (xa, da), (xb, db) in zip(steps, ref_steps):
        torch.testing.assert_close(xa, xb, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(da, db, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_dpmpp_2m_sde_eta0_is_2m_and_noise_is_per_item():
    sigmas = karras_sigmas(9, SIGMA_MIN, SIGMA_MAX)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(16), dtype=torch.float64) * SIGMA_MAX
    torch.testing.assert_close(sample_dpmpp_2m_sde(mixture_denoiser, x, sigmas, eta=0.0),
                               sample_dpmpp_2m(mixture_denoiser, x, sigmas), rtol=0, atol=1e-12)
    batch = sample_dpmpp_2m_sde(mixture_denoiser, x, sigmas, generator=generators_from_seeds([7, 8, 9]))
    alone = sample_dpmpp_2m_sde(mixture_denoiser, x[1:2], sigmas, generator=generators_from_seeds([8]))
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-6)
    other = sample_dpmpp_2m_sde(mixture_denoiser, x, sigmas, generator=generators_from_seeds([1, 2, 3]))
    assert not torch.allclose(batch, other)


def test_dpmpp_2m_sde_keeps_a_known_region_at_the_right_noise_level():
    """Inpainting replaces the known region of D by the known data; every step must then leave
    that region at exactly known + sigma_next * (unit noise), here measured over many items."""
    known = torch.full((20_000, 1), 0.7, dtype=torch.float64)
    sigmas = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    levels = []
    sample_dpmpp_2m_sde(lambda x, sigma: known.clone(), known + SIGMA_MAX * torch.randn_like(known), sigmas,
                        generator=torch.Generator().manual_seed(17),
                        callback=lambda d: levels.append(((d["x"] - known).std().item(), d["sigma"])))
    for spread, sigma in levels:
        assert spread == pytest.approx(sigma, rel=0.03)
