"""Schedules, EDM preconditioning, loss, guidance and seeded noise: contracts and a learning test."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

from audiodiff.conditioning.base import Conditioning
from audiodiff.config import Config, ConfigError
from audiodiff.diffusion import (
    EDMDenoiser,
    EDMLoss,
    NoiseScheduleConfig,
    cfg_denoise,
    edm_coefficients,
    get_sampler,
    karras_sigmas,
    loglinear_sigmas,
    loss_weight,
    make_sigmas,
    randn_from_seeds,
    randn_like_cpu,
    seeds_for_batch,
    sigmas_for_strength,
    variation_sigmas,
)


class PointwiseNet(nn.Module):
    """A tiny raw network acting on each element: F = MLP(x_in, c_noise), any layout."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 1))

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning | None) -> torch.Tensor:
        noise = c_noise.reshape(-1, *([1] * (x_in.ndim - 1))).to(x_in.dtype).expand_as(x_in)
        return self.mlp(torch.stack([x_in, noise], dim=-1)).squeeze(-1)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: threads only fight the other test processes on this machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- schedules


def test_karras_schedule_shape_and_ends():
    sigmas = karras_sigmas(10, 0.002, 80.0)
    assert sigmas.shape == (11,) and sigmas.dtype == torch.float64
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    assert sigmas[-1].item() == 0.0 and bool((sigmas[1:] < sigmas[:-1]).all())
    assert karras_sigmas(1, 0.002, 80.0).tolist() == pytest.approx([80.0, 0.0])
    # rho = 1 is linear in sigma; loglinear is uniform in log(sigma).
    linear = torch.linspace(5, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(karras_sigmas(5, 1.0, 5.0, rho=1.0)[:-1], linear)
    logs = loglinear_sigmas(6, 0.01, 10.0)[:-1].log()
    torch.testing.assert_close(logs.diff(), torch.full((5,), logs.diff()[0].item(), dtype=torch.float64))


@pytest.mark.parametrize("make", [karras_sigmas, loglinear_sigmas])
def test_schedule_validation(make):
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        make(0, 0.002, 80.0)
    with pytest.raises(ValueError, match="num_steps"):
        make(2.5, 0.002, 80.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        make(10, 80.0, 0.002)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        make_sigmas(10, 0.002, 80.0, schedule="cosine")


def test_variation_sigmas_log_linear_start_and_step_count():
    full = karras_sigmas(8, 0.002, 80.0)
    assert torch.equal(variation_sigmas(8, 1.0, 0.002, 80.0), full)  # strength 1 = generation
    assert torch.equal(variation_sigmas(8, 0.0, 0.002, 80.0), torch.zeros(1, dtype=torch.float64))
    starts, counts = [], []
    for s in (0.01, 0.2, 0.4, 0.5, 0.6, 0.8, 0.99):
        sig = variation_sigmas(8, s, 0.002, 80.0)
        assert sig[-1] == 0 and bool((sig[:-1] > sig[1:]).all())
        starts.append(float(sig[0]))
        counts.append(len(sig) - 1)
    # log-linear: equal strength steps multiply the start sigma by the same factor
    assert starts[1] == pytest.approx(0.05 * 1600 ** 0.2) and starts[3] == pytest.approx(0.05 * 1600 ** 0.5)
    assert starts[2] / starts[1] == pytest.approx(starts[5] / starts[4])
    assert counts == [1, 2, 4, 4, 5, 7, 8]  # ceil(strength * steps)
    # strength 0.2 now starts well above the 8-step tail's 0.035, where nothing audible changed
    assert starts[1] > 5 * float(sigmas_for_strength(full, 0.2)[0])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            variation_sigmas(8, bad, 0.002, 80.0)


def test_sigmas_for_strength():
    full = karras_sigmas(10, 0.002, 80.0)
    assert torch.equal(sigmas_for_strength(full, 1.0), full)
    assert torch.equal(sigmas_for_strength(full, 0.0), full[-1:])  # zero steps: input unchanged
    half = sigmas_for_strength(full, 0.5)
    assert torch.equal(half, full[5:]) and len(half) - 1 == 5
    assert len(sigmas_for_strength(full, 0.04)) == 1 and len(sigmas_for_strength(full, 0.06)) == 2
    assert torch.equal(sigmas_for_strength(full[-1:], 0.7), full[-1:])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            sigmas_for_strength(full, bad)
    # A zero-step schedule runs no sampler step and returns the (noised-to-0) input itself.
    x = torch.randn(2, 3)
    assert torch.equal(get_sampler("heun")(lambda x, s: x * 0, x, sigmas_for_strength(full, 0.0)), x)


def test_noise_schedule_config():
    cfg = NoiseScheduleConfig()
    assert (cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.sigma_data, cfg.p_mean, cfg.p_std) == (
        0.002, 80.0, 7.0, 0.5, -1.2, 1.2)
    assert Config.from_json(cfg.to_json()) == cfg
    torch.testing.assert_close(cfg.sigmas(8), karras_sigmas(8, 0.002, 80.0))
    with pytest.raises(ConfigError, match="sigma_min"):
        NoiseScheduleConfig(sigma_min=0.0)
    with pytest.raises(ConfigError, match="sigma_max"):
        NoiseScheduleConfig(sigma_max=0.001)
    with pytest.raises(ConfigError, match="p_std"):
        NoiseScheduleConfig(p_std=float("nan"))
    with pytest.raises(ConfigError, match="unknown keys"):
        NoiseScheduleConfig.from_dict({"sigma_mni": 0.01})


# ---------------------------------------------------------------- preconditioning


def test_edm_coefficients_identities():
    sd = 0.5
    sigma = torch.logspace(-3, 2, 20, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, sd)
    # Unit-variance input: Var(c_in * (x0 + sigma n)) = c_in^2 (sd^2 + sigma^2) = 1.
    torch.testing.assert_close(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma))
    # Unit-variance target: Var((x0 - c_skip x) / c_out) = 1.
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(sigma))
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    torch.testing.assert_close(loss_weight(sigma, sd), 1 / c_out**2)


@pytest.mark.parametrize("shape", [(3, 1, 8, 5), (3, 2, 40)], ids=["mel", "wav"])
def test_denoiser_limits_and_per_item_sigma(shape):
    torch.manual_seed(0)
    den = EDMDenoiser(PointwiseNet(), sigma_data=0.5)
    x = torch.randn(shape)
    # sigma -> 0: c_skip -> 1 and c_out -> 0, so D returns its input whatever the network.
    torch.testing.assert_close(den(x, torch.full((3,), 1e-6)), x, rtol=0, atol=1e-5)
    # sigma -> inf: c_skip -> 0, so D no longer depends on x's scale beyond the network.
    big = den(x, torch.full((3,), 1e6))
    assert big.abs().max() < 10 * 0.5
    # Each item uses its own sigma, broadcast over every trailing dim.
    sigma = torch.tensor([0.1, 1.0, 10.0])
    out = den(x, sigma)
    for i in range(3):
        torch.testing.assert_close(out[i:i + 1], den(x[i:i + 1], sigma[i:i + 1]))
    torch.testing.assert_close(den(x, torch.tensor(1.0)), den(x, torch.ones(3)))
    with pytest.raises(ValueError, match="sigma must be"):
        den(x, torch.ones(2))


def test_denoiser_preconditions_in_float32_for_a_bf16_network():
    torch.manual_seed(0)
    den = EDMDenoiser(PointwiseNet().to(torch.bfloat16), sigma_data=0.5)
    x = torch.randn(4, 1, 16, 8) * 3
    out = den(x, torch.full((4,), 1e-3))
    assert out.dtype == torch.float32
    # c_skip * x is kept in float32: bf16 rounding of x alone would be ~ 3 * 2^-8 off.
    assert (out - x).abs().max() < 2e-3
    assert (x.to(torch.bfloat16).float() - x).abs().max() > 4e-3


def test_denoiser_rejects_bad_sigma_data():
    with pytest.raises(ValueError, match="sigma_data"):
        EDMDenoiser(PointwiseNet(), sigma_data=0.0)


# ---------------------------------------------------------------- loss


def test_loss_is_unit_scale_for_a_zero_network():
    # lambda(sigma) = 1 / c_out^2 makes the loss of F = 0 equal to E[target^2] = 1 at any sigma.
    den = EDMDenoiser(lambda x_in, c_noise, cond: torch.zeros_like(x_in), sigma_data=0.5)
    x0 = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5
    loss = EDMLoss()(den, x0, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(1.0, rel=0.05)


def test_loss_mask_ignores_padding_and_reductions():
    torch.manual_seed(0)
    den = EDMDenoiser(PointwiseNet(), sigma_data=0.5)
    loss_fn = EDMLoss()
    x0 = torch.randn(3, 1, 8, 20) * 0.5
    mask = torch.ones(3, 1, 1, 20)
    mask[0, ..., 12:] = 0
    mask[2] = 0  # a fully padded item contributes 0, not NaN
    changed = x0.clone()
    changed[0, ..., 12:] = 100.0
    changed[2] = -100.0

    def run(x, **kw):
        return loss_fn(den, x, generator=torch.Generator().manual_seed(3), **kw)

    per_item = run(x0, mask=mask, reduction="none")
    assert per_item.shape == (3,) and per_item[2].item() == 0.0 and torch.isfinite(per_item).all()
    torch.testing.assert_close(run(changed, mask=mask, reduction="none"), per_item)
    torch.testing.assert_close(run(x0, mask=mask), per_item.mean())
    assert not torch.allclose(run(changed), run(x0))  # without the mask the padding counts
    with pytest.raises(ValueError, match="reduction"):
        run(x0, reduction="sum")


def test_loss_sigma_distribution():
    sigma = EDMLoss(p_mean=-1.2, p_std=1.2).sample_sigma(20_000, "cpu", torch.Generator().manual_seed(0))
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.05)
    assert sigma.log().std().item() == pytest.approx(1.2, rel=0.03)


def test_training_learns_a_gaussian_mixture():
    """Learning test: a tiny MLP trained with EDMLoss samples back the two modes at +-1."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        sign = torch.randint(0, 2, (n, 1), generator=gen) * 2 - 1
        return sign + 0.1 * torch.randn(n, 1, generator=gen)

    den = EDMDenoiser(PointwiseNet(width=64), sigma_data=1.0)
    loss_fn = EDMLoss(sigma_data=1.0)
    opt = torch.optim.Adam(den.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = loss_fn(den, batch(256), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert statistics.mean(losses[-50:]) < 0.75 * statistics.mean(losses[:20])

    x = torch.randn(2000, 1, generator=gen) * 80.0
    with torch.no_grad():
        out = get_sampler("heun")(lambda x, s: den(x, s), x, karras_sigmas(20, 0.002, 80.0))
    near_mode = ((out.abs() - 1).abs() < 0.3).float().mean().item()
    assert near_mode > 0.85  # an untrained network gets about 0.3
    assert 0.3 < (out > 0).float().mean().item() < 0.7  # both modes, not one


# ---------------------------------------------------------------- guidance


class CountingDenoiser:
    """D = x * 0.5 + pooled: depends on the condition; records the batch sizes it is called with."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, x, sigma, cond):
        self.batches.append(x.shape[0])
        assert sigma.shape == (x.shape[0],) and cond.batch_size == x.shape[0]
        return x * 0.5 + cond.pooled[:, :1, None] * sigma[:, None, None]


def _conds(batch: int = 3):
    gen = torch.Generator().manual_seed(0)
    cond = Conditioning(pooled=torch.randn(batch, 4, generator=gen),
                        tokens=torch.randn(batch, 5, 4, generator=gen),
                        token_mask=torch.ones(batch, 5, dtype=torch.bool))
    uncond = Conditioning(pooled=torch.zeros(1, 4), tokens=torch.zeros(1, 1, 4),
                          token_mask=torch.zeros(1, 1, dtype=torch.bool))
    return cond, uncond


def test_cfg_identities_and_single_forward():
    cond, uncond = _conds()
    x, sigma = torch.randn(3, 2, 7), torch.tensor([0.5, 1.0, 2.0])
    den = CountingDenoiser()
    plain_cond = den(x, sigma, cond)
    plain_uncond = den(x, sigma, uncond.repeat(3))
    den.batches.clear()
    assert torch.equal(cfg_denoise(den, cond, uncond, 1.0)(x, sigma), plain_cond)
    assert torch.equal(cfg_denoise(den, cond, uncond, 0.0)(x, sigma), plain_uncond)
    assert den.batches == [3, 3]  # one plain forward each
    guided = cfg_denoise(den, cond, uncond, 4.0)(x, sigma)
    assert den.batches[-1] == 6  # ONE batched forward over [cond; uncond]
    torch.testing.assert_close(guided, plain_uncond + 4.0 * (plain_cond - plain_uncond))
    # Close to 1, the batched path agrees with the conditional prediction.
    torch.testing.assert_close(cfg_denoise(den, cond, uncond, 1.0 + 1e-7)(x, sigma), plain_cond)


def test_cfg_limited_interval_guides_only_inside():
    """Guidance limited to lo < sigma <= hi: inside, the batched guided prediction; outside, the
    conditional prediction alone from a forward of B items (that is what makes it cheaper)."""
    cond, uncond = _conds()
    x = torch.randn(3, 2, 7)
    den = CountingDenoiser()
    guided = cfg_denoise(den, cond, uncond, 4.0, interval=(0.5, 2.0))
    full = cfg_denoise(den, cond, uncond, 4.0)
    for s, inside in ((0.5, False), (0.7, True), (2.0, True), (2.5, False), (80.0, False)):
        sigma = torch.full((3,), s)
        den.batches.clear()
        out = guided(x, sigma)
        if inside:
            assert den.batches == [6]
            torch.testing.assert_close(out, full(x, sigma))
        else:
            assert den.batches == [3]
            assert torch.equal(out, den(x, sigma, cond))
    # Items at different sigmas: guided if any is inside (one forward for the whole batch).
    den.batches.clear()
    mixed = torch.tensor([0.1, 1.0, 5.0])
    torch.testing.assert_close(guided(x, mixed), full(x, mixed))
    assert den.batches[0] == 6
    for bad in ((2.0, 1.0), (-1.0, 1.0), (1.0,), "low", (0.0, float("nan"))):
        with pytest.raises(ValueError, match="guidance_interval"):
            cfg_denoise(den, cond, uncond, 4.0, interval=bad)


def test_cfg_decides_guided_steps_on_the_host(monkeypatch):
    """The samplers hand the guidance wrapper sigma as a Python float, so whether a step is
    guided is decided without reading a tensor back (on a GPU, a sync per step); the result is
    the one of the tensor path. Any tensor -> bool / item inside sampling fails this test (the
    schedule itself is read once, on the CPU, before the loop)."""
    from audiodiff.diffusion import get_sampler
    from audiodiff.diffusion.schedules import karras_sigmas

    cond, uncond = _conds()
    den = CountingDenoiser()
    guided = cfg_denoise(den, cond, uncond, 4.0, interval=(0.5, 2.0))
    assert guided.takes_float_sigma
    sigmas = karras_sigmas(6, sigma_min=0.05, sigma_max=10.0)
    x = torch.randn(3, 2, 7, generator=torch.Generator().manual_seed(1)) * 10.0
    tensor_path = lambda x, sigma: guided(x, sigma)  # noqa: E731  (no takes_float_sigma: gets tensors)
    reference = get_sampler("dpmpp_2m")(tensor_path, x, sigmas)

    def no_read(*_):
        raise AssertionError("a tensor was read back on the host during sampling")

    den.batches.clear()
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "__bool__", no_read)
        m.setattr(torch.Tensor, "item", no_read)
        out = get_sampler("dpmpp_2m")(guided, x, sigmas)
    assert torch.equal(out, reference)
    inside = [0.5 < s <= 2.0 for s in sigmas[:-1].tolist()]
    assert any(inside) and not all(inside)
    assert den.batches == [6 if i else 3 for i in inside]
    # Called directly with a float, it is the tensor call.
    assert torch.equal(guided(x, 1.0), guided(x, torch.full((3,), 1.0)))


def test_cfg_rejects_bad_scales_and_batches():
    cond, uncond = _conds()
    for bad in (float("nan"), float("inf"), -float("inf"), "high", True):
        with pytest.raises(ValueError, match="guidance_scale"):
            cfg_denoise(CountingDenoiser(), cond, uncond, bad)
    with pytest.raises(ValueError, match="batch size"):
        cfg_denoise(CountingDenoiser(), cond, _conds(2)[0], 3.0)


# ---------------------------------------------------------------- seeded noise


def test_noise_reproducible_per_item():
    shape = (1, 16, 10)
    assert seeds_for_batch(5, 4) == [5, 6, 7, 8]
    batch = randn_from_seeds(shape, seeds_for_batch(5, 4))
    assert batch.shape == (4, *shape) and batch.dtype == torch.float32
    assert torch.equal(batch, randn_from_seeds(shape, [5, 6, 7, 8]))
    for i in range(4):
        assert torch.equal(batch[i], randn_from_seeds(shape, [5 + i])[0])
    assert not torch.allclose(batch[0], batch[1])
    # Same values whatever dtype is asked for (drawn in float32 first).
    torch.testing.assert_close(randn_from_seeds(shape, [5], dtype=torch.float64)[0].float(), batch[0])
    assert abs(batch.std().item() - 1) < 0.05
    with pytest.raises(ValueError, match="seed"):
        randn_from_seeds(shape, [1.5])
    with pytest.raises(ValueError, match="generators for a batch"):
        randn_like_cpu(batch, [torch.Generator()])
