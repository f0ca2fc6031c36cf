"""Contracts of the denoising networks UNetMel and UNetWave (tiny configs, CPU, a few seconds)."""

from __future__ import annotations

import time

import pytest
import torch

from audiodiff.conditioning.base import Conditioning
from audiodiff.config import ConfigError
from audiodiff.models.unet_mel import UNetMel, UNetMelConfig
from audiodiff.models.unet_wave import UNetWave, UNetWaveConfig

TEXT_DIM = 16
POOLED_DIM = 12

# n_mels=10 is not a multiple of the 4x downsampling, so the mel axis is padded too.
TINY_MEL = UNetMelConfig(
    n_mels=10, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1,
    self_attention_levels=(2,), cross_attention_levels=(1, 2), num_heads=2,
    text_dim=TEXT_DIM, pooled_dim=POOLED_DIM,
)
TINY_WAVE = UNetWaveConfig(
    in_channels=2, base_channels=8, channel_mults=(1, 2, 2), factors=(4, 4), num_res_blocks=1,
    self_attention_levels=(2,), cross_attention_levels=(1, 2), num_heads=2,
    text_dim=TEXT_DIM, pooled_dim=POOLED_DIM,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run these small-tensor tests on one thread: on a shared, busy machine intra-op threads
    of tiny convolutions mostly wait on each other (measured 100x slower with 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(config: UNetMelConfig | UNetWaveConfig, unzero: bool = True) -> torch.nn.Module:
    """Build a model in eval mode; ``unzero`` re-initialises the zero-initialised layers.

    A fresh network outputs exactly 0 and its zero-init residual branches block gradients, so
    contracts about what changes the output need those layers randomised.
    """
    torch.manual_seed(0)
    model = UNetMel(config) if isinstance(config, UNetMelConfig) else UNetWave(config)
    if unzero:
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.ndim > 1 and not weight.any():
                module.reset_parameters()
    return model.eval()


def make_x(config, batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if isinstance(config, UNetMelConfig):
        return torch.randn(batch, config.in_channels, config.n_mels, length, generator=g)
    return torch.randn(batch, config.in_channels, length, generator=g)


def make_cond(batch: int, length: int = 5, seed: int = 2) -> Conditioning:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 3:] = False  # item 0 has 2 padding tokens
    return Conditioning(
        tokens=torch.randn(batch, length, TEXT_DIM, generator=g),
        token_mask=mask,
        pooled=torch.randn(batch, POOLED_DIM, generator=g),
    )


def run(model, x, c_noise=None, cond=None) -> torch.Tensor:
    c_noise = torch.full((x.shape[0],), 0.3) if c_noise is None else c_noise
    with torch.no_grad():
        return model(x, c_noise, make_cond(x.shape[0]) if cond is None else cond)


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() > 1e-4


@pytest.mark.parametrize("n_frames", [1, 7, 86, 431, 2584])
def test_mel_output_shape_any_length(n_frames):
    model = make_model(TINY_MEL.replace(cond_channels=2))
    x = make_x(TINY_MEL, 2, n_frames)
    cond = make_cond(2)
    cond.frames = torch.randn(2, 2, TINY_MEL.n_mels, n_frames)
    out = run(model, x, cond=cond)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("length", [1, 7, 1000, 22050, 3 * 22050])
def test_wave_output_shape_any_length(length):
    model = make_model(TINY_WAVE.replace(factors=(4, 8)) if length > 22050 else TINY_WAVE)
    x = make_x(TINY_WAVE, 1, length)
    out = run(model, x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE], ids=["mel", "wave"])
def test_fresh_network_outputs_zero(config):
    out = run(make_model(config, unzero=False), make_x(config, 2, 40))
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("config", [TINY_MEL.replace(cond_channels=1), TINY_WAVE], ids=["mel", "wave"])
def test_gradients_reach_every_parameter_and_the_input(config):
    model = make_model(config).train()
    x = make_x(config, 2, 37).requires_grad_(True)
    cond = make_cond(2)
    if config.cond_channels:
        cond.frames = torch.randn(2, config.cond_channels, *x.shape[2:])
    out = model(x, torch.tensor([-2.0, 1.0]), cond)
    (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"no gradient reaches {dead}"
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE], ids=["mel", "wave"])
def test_cross_attention_respects_token_mask(config):
    model = make_model(config)
    x = make_x(config, 2, 24)
    cond = make_cond(2)
    base = run(model, x, cond=cond)

    padded = make_cond(2)
    padded.tokens[0, 3:] = 100.0  # item 0's padding tokens
    assert torch.allclose(run(model, x, cond=padded), base, atol=1e-6)

    real = make_cond(2)
    real.tokens[0, 1] = torch.randn(TEXT_DIM)  # a real token of item 0 (not a constant shift,
    # which the keys' LayerNorm would remove)
    out = run(model, x, cond=real)
    assert differs(out[0], base[0])
    assert torch.allclose(out[1], base[1], atol=1e-6)


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE], ids=["mel", "wave"])
def test_all_masked_tokens_equal_no_tokens(config):
    model = make_model(config)
    x = make_x(config, 2, 24)
    cond = make_cond(2)
    cond.token_mask[:] = False
    out = run(model, x, cond=cond)
    assert torch.isfinite(out).all()
    no_tokens = Conditioning(pooled=cond.pooled)
    assert torch.allclose(out, run(model, x, cond=no_tokens), atol=1e-6)
    assert differs(out, run(model, x))  # and the real tokens do matter


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE], ids=["mel", "wave"])
def test_pooled_and_noise_level_change_the_output(config):
    model = make_model(config)
    x = make_x(config, 2, 24)
    base = run(model, x)
    cond = make_cond(2)
    cond.pooled = cond.pooled + 1.0
    assert differs(run(model, x, cond=cond), base)
    assert differs(run(model, x, c_noise=torch.full((2,), -1.0)), base)


def test_frames_required_checked_and_used():
    config = TINY_MEL.replace(cond_channels=3)
    model = make_model(config)
    x = make_x(config, 2, 16)
    cond = make_cond(2)
    with pytest.raises(ValueError, match="frames"):
        run(model, x, cond=cond)
    cond.frames = torch.randn(2, 2, config.n_mels, 16)
    with pytest.raises(ValueError, match="cond_channels=3"):
        run(model, x, cond=cond)
    cond.frames = torch.randn(2, 3, config.n_mels, 15)
    with pytest.raises(ValueError, match="frames"):
        run(model, x, cond=cond)
    cond.frames = torch.zeros(2, 3, config.n_mels, 16)
    base = run(model, x, cond=cond)
    cond.frames = torch.ones(2, 3, config.n_mels, 16)
    assert differs(run(model, x, cond=cond), base)
    with pytest.raises(ValueError, match="cond_channels=0"):
        run(make_model(TINY_MEL), x, cond=cond)


def test_wrong_input_shapes_raise():
    model = make_model(TINY_MEL)
    with pytest.raises(ValueError, match="n_mels=10"):
        run(model, torch.randn(1, 1, 11, 8))
    bad_tokens = make_cond(1)
    bad_tokens.tokens = torch.randn(1, 5, TEXT_DIM + 1)
    with pytest.raises(ValueError, match="text_dim"):
        run(model, torch.randn(1, 1, 10, 8), cond=bad_tokens)
    with pytest.raises(ValueError, match="c_noise"):
        model(torch.randn(2, 1, 10, 8), torch.zeros(3), None)


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE], ids=["mel", "wave"])
def test_batch_consistency(config):
    model = make_model(config)
    x = make_x(config, 3, 30)
    c_noise = torch.tensor([-2.5, 0.0, 1.2])
    cond = make_cond(3)
    batched = run(model, x, c_noise, cond)
    for i in range(3):
        alone = Conditioning(tokens=cond.tokens[i:i + 1], token_mask=cond.token_mask[i:i + 1],
                             pooled=cond.pooled[i:i + 1])
        single = run(model, x[i:i + 1], c_noise[i:i + 1], alone)
        torch.testing.assert_close(single[0], batched[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE, UNetMelConfig(), UNetWaveConfig()],
                         ids=["mel", "wave", "mel-default", "wave-default"])
def test_config_json_round_trip_and_strict_keys(config):
    cls = type(config)
    assert cls.from_json(config.to_json()) == config
    data = config.to_dict()
    data["n_layers"] = 3
    with pytest.raises(ConfigError, match="n_layers"):
        cls.from_dict(data)


def test_config_type_is_checked():
    with pytest.raises(ConfigError):
        UNetMelConfig.from_json(UNetWaveConfig().to_json())


@pytest.mark.parametrize(("field", "value"), [
    ("base_channels", -8), ("n_mels", 0), ("cond_channels", -1), ("channel_mults", ()),
    ("channel_mults", (1, 0)), ("num_res_blocks", 0), ("self_attention_levels", (3,)),
    ("cross_attention_levels", (-1,)), ("num_heads", 3), ("text_dim", -1), ("dropout", 1.0),
])
def test_invalid_mel_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"UNetMelConfig.{field}"):
        TINY_MEL.replace(**{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("factors", (4,)), ("factors", (4, 1)), ("kernel_size", 4), ("in_channels", 0),
])
def test_invalid_wave_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"UNetWaveConfig.{field}"):
        TINY_WAVE.replace(**{field: value})


# The wave model at 16 base channels: oneDNN's bf16 conv1d is wrong (errors ~100% of the output)
# for 8 or 12 input channels with 8 taps (TINY_WAVE's stride-4 downsampler) on an AMX Xeon with
# torch 2.14.1; 16 or more channels (every real config: 32 up) are exact to bf16 rounding there.
@pytest.mark.parametrize("config", [TINY_MEL, TINY_WAVE.replace(base_channels=16)], ids=["mel", "wave"])
def test_bf16_autocast_and_low_precision_weights(config):
    model = make_model(config)
    x = make_x(config, 2, 24)
    ref = run(model, x)
    scale = ref.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, x)
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.1 * scale
    for dtype in (torch.bfloat16, torch.float16):
        low = run(make_model(config).to(dtype), x)  # float32 in -> float32 out
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        assert (low - ref).abs().max() < 0.1 * scale


def test_config_and_weights_rebuild_identical_outputs():
    model = make_model(TINY_MEL.replace(cond_channels=1))
    rebuilt = UNetMel(UNetMelConfig.from_json(model.config.to_json())).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = make_x(model.config, 1, 20)
    cond = make_cond(1)
    cond.frames = torch.randn(1, 1, model.config.n_mels, 20)
    assert torch.equal(run(rebuilt, x, cond=cond), run(model, x, cond=cond))


def test_channels_last_matches():
    model = make_model(TINY_MEL)
    x = make_x(TINY_MEL, 2, 24)
    ref = run(model, x)
    model = model.to(memory_format=torch.channels_last)
    out = run(model, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_default_mel_size_report():
    """Print (not assert) the default UNetMel's size and CPU forward time on a 5 s mel."""
    model = make_model(UNetMelConfig(), unzero=False)
    x = torch.randn(1, 1, 80, 431)
    cond = Conditioning(tokens=torch.randn(1, 12, 384), pooled=torch.randn(1, 384))
    with torch.inference_mode():
        model(x, torch.zeros(1), cond)
        start = time.perf_counter()
        model(x, torch.zeros(1), cond)
        elapsed = time.perf_counter() - start
    print(f"\ndefault UNetMel: {model.num_parameters() / 1e6:.2f}M params, "
          f"forward (1, 1, 80, 431) on CPU ({torch.get_num_threads()} threads): {elapsed:.3f} s")
