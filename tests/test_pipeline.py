"""TextToAudioPipeline and WaveformPipeline: contracts users rely on."""

import math

import pytest
import torch

from audiodiff.pipelines import TextToAudioPipeline, WaveformPipeline
from audiodiff.testing import tiny_text_to_audio_pipeline, tiny_waveform_pipeline


@pytest.fixture(scope="module")
def pipe():
    p = tiny_text_to_audio_pipeline(seed=0)
    # A randomly initialised UNet has a zero output layer; perturb it so conditioning matters.
    with torch.no_grad():
        for param in p.unet.parameters():
            param.add_(torch.randn_like(param) * 0.02)
        p.text.null_pooled.normal_()
    return p


def gen(pipe, prompt="a low hum", **kw):
    kw.setdefault("duration_s", 0.5)
    kw.setdefault("num_steps", 3)
    kw.setdefault("seed", 0)
    return pipe(prompt, **kw)


def test_output_contract(pipe):
    out = gen(pipe, batch_size=2, seed=10)
    assert out.waveforms.shape == (2, 1, round(0.5 * 22050))
    assert out.waveforms.dtype == torch.float32 and out.sample_rate == 22050
    assert out.seeds == [10, 11] and out.prompts == ["a low hum"] * 2
    assert out.settings["num_steps"] == 3 and out.settings["sampler"] == "dpmpp_2m"
    assert torch.isfinite(out.waveforms).all() and out.waveforms.abs().max() <= 1.0


def test_seeds_reproduce_per_item(pipe):
    a = gen(pipe, seed=3)
    b = gen(pipe, seed=3)
    c = gen(pipe, seed=4)
    assert torch.equal(a.waveforms, b.waveforms)
    assert not torch.allclose(a.waveforms, c.waveforms)
    # Item i of a batch is the item generated alone with seed + i (up to float reassociation;
    # compared on the mel, since Griffin-Lim's phase iterations amplify 1e-6 differences).
    mel_kw = dict(duration_s=0.5, num_steps=3)
    batch = pipe.generate_mel("a low hum", seed=3, batch_size=2, **mel_kw)[0]
    single = pipe.generate_mel("a low hum", seed=4, **mel_kw)[0]
    assert torch.allclose(batch[1], single[0], atol=1e-4)
    assert not torch.allclose(batch[0], single[0], atol=1e-2)


def test_guidance_zero_ignores_prompt_and_one_ignores_negative(pipe):
    hum = pipe.generate_mel("a low hum", guidance_scale=0.0, duration_s=0.5, num_steps=2, seed=1)[0]
    beep = pipe.generate_mel("a high beep", guidance_scale=0.0, duration_s=0.5, num_steps=2, seed=1)[0]
    assert torch.allclose(hum, beep, atol=1e-6)
    plain = pipe.generate_mel("a low hum", guidance_scale=1.0, duration_s=0.5, num_steps=2, seed=1)[0]
    neg = pipe.generate_mel("a low hum", negative_prompt="noise", guidance_scale=1.0, duration_s=0.5,
                            num_steps=2, seed=1)[0]
    assert torch.allclose(plain, neg, atol=1e-6)
    guided = pipe.generate_mel("a low hum", negative_prompt="noise", guidance_scale=3.0, duration_s=0.5,
                               num_steps=2, seed=1)[0]
    assert not torch.allclose(plain, guided, atol=1e-4)


def test_guidance_interval_default_and_override(pipe):
    """The config's interval limits guidance (cheaper unguided steps, reported in the settings);
    a call can widen it to every step, which reproduces unlimited guidance exactly."""
    kw = dict(duration_s=0.5, num_steps=4, seed=2, guidance_scale=3.0)
    batches = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        everywhere = gen(pipe, **kw)
        assert batches == [2] * 4
        batches.clear()
        limited_cfg = pipe.config.replace(guidance_interval=(0.5, 10.0))
        old, pipe.config = pipe.config, limited_cfg
        try:
            sigmas = pipe.config.schedule.sigmas(4)[:-1]
            limited = gen(pipe, **kw)
            assert batches == [2 if 0.5 < s <= 10 else 1 for s in sigmas.tolist()] and 1 in batches and 2 in batches
            assert limited.settings["guidance_interval"] == [0.5, 10.0]
            assert not torch.allclose(limited.waveforms, everywhere.waveforms, atol=1e-4)
            wide = gen(pipe, guidance_interval=(0, float("inf")), **kw)
            torch.testing.assert_close(wide.waveforms, everywhere.waveforms)
            with pytest.raises(ValueError, match="guidance_interval"):
                gen(pipe, guidance_interval=(3.0, 1.0), **kw)
        finally:
            pipe.config = old
    finally:
        hook.remove()


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m", "ddim"])
def test_every_sampler_runs(pipe, sampler):
    out = gen(pipe, sampler=sampler, num_steps=2)
    assert torch.isfinite(out.waveforms).all() and out.settings["sampler"] == sampler


def test_stochastic_sampler_is_seeded_per_item(pipe):
    # The SDE sampler's fresh noise at each step comes from per-item seeded generators: a seed
    # reproduces, and item i of a batch is the item generated alone with seed + i.
    kw = dict(duration_s=0.5, num_steps=4, sampler="dpmpp_2m_sde")
    batch = pipe.generate_mel("a low hum", seed=3, batch_size=2, **kw)[0]
    assert torch.equal(batch, pipe.generate_mel("a low hum", seed=3, batch_size=2, **kw)[0])
    torch.testing.assert_close(batch[1], pipe.generate_mel("a low hum", seed=4, **kw)[0][0], rtol=0, atol=1e-4)
    ode = pipe.generate_mel("a low hum", seed=3, batch_size=2, **(kw | {"sampler": "dpmpp_2m"}))[0]
    assert not torch.allclose(batch, ode, atol=1e-2)  # the noise does change the result


@pytest.mark.parametrize("duration_s", [1.0, 5.0, 10.0, 30.0, 0.37])
def test_exact_duration(pipe, duration_s):
    out = gen(pipe, duration_s=duration_s, num_steps=1)
    assert out.waveforms.shape[-1] == round(duration_s * 22050)


def test_save_load_identical(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "model")
    back = TextToAudioPipeline.from_pretrained(tmp_path / "model")
    assert torch.equal(gen(pipe).waveforms, gen(back).waveforms)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["pipeline.json", "text", "unet"]


def test_bf16_weights_run(pipe):
    p = tiny_text_to_audio_pipeline(seed=0).to(dtype=torch.bfloat16)
    out = gen(p, num_steps=2)
    assert out.waveforms.dtype == torch.float32 and torch.isfinite(out.waveforms).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="   "), "prompt is empty"),
    (dict(duration_s=0), "positive"),
    (dict(duration_s=-1), "positive"),
    (dict(duration_s=61), "between"),
    (dict(duration_s=float("nan")), "positive"),
    (dict(num_steps=0), "num_steps"),
    (dict(num_steps=2.5), "num_steps"),
    (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(guidance_scale=-1), "guidance_scale"),
    (dict(sampler="plms"), "unknown sampler.*known samplers"),
    (dict(batch_size=0), "batch_size"),
    (dict(seed=-3), "seed"),
])
def test_bad_input(pipe, kwargs, match):
    prompt = kwargs.pop("prompt", "a low hum")
    with pytest.raises(ValueError, match=match):
        gen(pipe, prompt, **kwargs)


def test_long_prompt_is_truncated_with_a_warning():
    p = tiny_text_to_audio_pipeline(seed=0, encoder="minilm")
    long_prompt = " ".join(["a very long description of rain falling on a metal roof"] * 20)
    with pytest.warns(UserWarning, match="truncated"):
        out = gen(p, long_prompt, num_steps=1)
    assert out.waveforms.shape[-1] == round(0.5 * 22050)


def test_waveform_pipeline_contract(tmp_path):
    p = tiny_waveform_pipeline(seed=0, sample_rate=8000)
    out = p("a beep", duration_s=0.3, num_steps=2, seed=5, batch_size=2)
    assert out.waveforms.shape == (2, 1, 2400) and out.seeds == [5, 6]
    p.save_pretrained(tmp_path / "w")
    back = WaveformPipeline.from_pretrained(tmp_path / "w")
    again = back("a beep", duration_s=0.3, num_steps=2, seed=5, batch_size=2)
    assert torch.equal(out.waveforms, again.waveforms)
    with pytest.raises(ValueError, match="between"):
        p("a beep", duration_s=31)
    assert math.isclose(out.settings["duration_s"], 0.3)


def test_bundled_default_model_loads_offline_and_stays_small():
    """The model shipped in audiodiff/assets/default: at most 60 MB in git, loaded by
    from_pretrained() with no argument, with its own fine-tuned vocoder (not the packaged
    universal HiFi-GAN's weights) and its guide network, and it generates audio."""
    from audiodiff.models.vocoder import HiFiGAN, load_vocoder
    from audiodiff.pipelines.text_to_audio import DEFAULT_MODEL_DIR

    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.rglob("*") if f.is_file())
    assert size <= 60e6, f"the bundled model is {size / 1e6:.1f} MB"
    pipe = TextToAudioPipeline.from_pretrained()
    assert pipe.config.vocoder == "vocoder" and isinstance(pipe.vocoder, HiFiGAN)
    universal = load_vocoder("hifigan-universal").conv_post.weight
    assert not torch.allclose(pipe.vocoder.conv_post.weight.float(), universal, atol=1e-3)
    out = pipe("rain on a tin roof", duration_s=0.5, num_steps=2, seed=0)
    assert out.waveforms.shape[-1] == round(0.5 * pipe.sample_rate)
    assert torch.isfinite(out.waveforms).all() and 0 < out.waveforms.abs().max() <= 1
    # v0.5 has the timing input (the model card): a sound length can be asked for.
    assert pipe.unet.config.timing_channels == 1
    told = pipe("a door slam", duration_s=0.5, sound_s=0.25, num_steps=2, seed=0)
    assert told.settings["sound_s"] == 0.25 and not torch.equal(told.waveforms, pipe(
        "a door slam", duration_s=0.5, num_steps=2, seed=0, sound_s=None).waveforms)
    # v0.6 has a sound length head: by default a beep is told it is short, rain fills the clip.
    beep, rain = pipe.predict_sound_s(["a single short beep", "heavy rain falling on a roof"], 5.0)
    assert 0.1 <= beep <= 2.0 and rain == 5.0, (beep, rain)
    assert pipe("a single short beep", duration_s=2.0, num_steps=1, seed=0).settings["sound_s_from"] == "prompt"
    # Since v0.10 the bundled model has a guide network (v0.5 of its UNet, a 6-bit difference)
    # and autoguides by default, except in the melody mode (where the guide pulled the tune away)
    from audiodiff.delta import is_delta_folder

    assert is_delta_folder(DEFAULT_MODEL_DIR / "guide") and pipe.autoguidance() == 1.0
    assert pipe.autoguidance(mode="melody") == 0.0
    assert out.settings["autoguidance"] == 1.0
    guide_w, unet_w = pipe.guide.backbone.embed.noise_mlp.fc1.weight, pipe.unet.backbone.embed.noise_mlp.fc1.weight
    assert (guide_w - unet_w).abs().max() > 1e-3


def test_bundled_model_ends_a_finished_sound_in_silence():
    """Frames sampled past the clip's end and cut off (config.end_margin_frames): without them
    the UNet's zero padding made the last ~4 frames rise, a click after silence (a bark, seed
    101: -24 dBFS in its last 256 samples up to v0.12; with the margin the floor, -84 dBFS).
    v0.13 ends this bark at the floor even without the margin (-81 dBFS): the margin must keep it
    there and be no worse than none."""
    pipe = TextToAudioPipeline.from_pretrained()
    tails = {}
    for margin in (0, pipe.config.end_margin_frames):
        pipe.config = pipe.config.replace(end_margin_frames=margin)
        wav = pipe("a dog barking", duration_s=5.0, seed=101).waveforms[0, 0]
        assert wav[-4096:-1024].abs().max() < 1e-3, "the bark was expected to end well before the clip"
        tails[margin] = 20 * math.log10(float(wav[-256:].abs().max()) + 1e-9)
    assert tails[8] < -70 and tails[8] <= tails[0] + 3, tails


def test_resolve_dtype_names_auto_and_errors(monkeypatch):
    from audiodiff.pipelines import base

    assert base.resolve_dtype(None, "cpu") is None
    assert base.resolve_dtype("fp32", None) == torch.float32
    assert base.resolve_dtype("BF16", "cpu") == torch.bfloat16
    assert base.resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    assert base.resolve_dtype("fp16", "cuda") == torch.float16  # a name check only: no GPU needed
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: True)
    assert base.resolve_dtype("auto", "cpu") == torch.bfloat16 and base.resolve_dtype("auto", None) == torch.bfloat16
    assert base.resolve_dtype("auto", "cuda") is None  # GPUs keep float32 until measured there
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    assert base.resolve_dtype("auto", "cpu") is None
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        base.resolve_dtype("half", "cpu")
    with pytest.raises(ValueError, match="fp16 on the CPU.*bf16"):
        base.resolve_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="fp16 on the CPU"):
        base.resolve_dtype(torch.float16, None)


def test_bundled_model_in_bf16_stays_close_to_fp32():
    """dtype="bf16" (what "auto" picks on CPUs with native bf16): the denoiser's mel stays near
    the float32 pipeline's, the vocoder (its last stage float32) resynthesises a decaying bell,
    silence included, as closely as in float32, and outputs are float32."""
    from audiodiff.audio.features import MelSpectrogram, denormalize_mel

    fp32 = TextToAudioPipeline.from_pretrained(dtype="fp32")
    bf16 = TextToAudioPipeline.from_pretrained(dtype="bf16")
    assert next(bf16.unet.parameters()).dtype == torch.bfloat16
    assert bf16.vocoder.conv_pre.weight.dtype == torch.bfloat16
    assert bf16.vocoder.ups[-1].weight.dtype == bf16.vocoder.conv_post.weight.dtype == torch.float32
    kw = dict(duration_s=2.0, seed=3, sound_s=None)
    mel32, _ = fp32.generate_mel("a church bell ringing", **kw)
    mel16, _ = bf16.generate_mel("a church bell ringing", **kw)
    other_seed, _ = fp32.generate_mel("a church bell ringing", **{**kw, "seed": 4})
    assert mel16.dtype == torch.float32
    # bf16 moves the sample far less than another seed does (measured: 0.08 vs 0.41)
    drift, spread = (mel16 - mel32).abs().mean(), (other_seed - mel32).abs().mean()
    assert drift < 0.3 * spread, f"bf16 sampling drifted from float32: {drift:.3f} (another seed: {spread:.3f})"
    wav32, wav16 = fp32.decode(mel32), bf16.decode(mel32)
    assert wav16.dtype == torch.float32
    to_mel = MelSpectrogram(fp32.config.mel)
    target = denormalize_mel(mel32[:, 0], fp32.config.mel)
    n = target.shape[-1]
    err32 = (to_mel(wav32[:, 0])[..., :n] - target).abs().mean()
    err16 = (to_mel(wav16[:, 0])[..., :n] - target).abs().mean()
    assert err16 < 1.03 * err32, f"bf16 vocoder: log-mel L1 {err16:.3f} vs float32 {err32:.3f}"


def _with_guide(pipe, guide, **config):
    """The fixture's networks with a guide network (and config changes)."""
    return TextToAudioPipeline(pipe.unet, pipe.text, pipe.vocoder, pipe.config.replace(**config),
                               pipe.sound_length, guide)


def test_autoguidance_extrapolates_away_from_the_guide(pipe):
    """D + w (D - G): a guide equal to the UNet changes nothing; a different one moves the output
    linearly in w, and w = 0 is exactly the model without a guide."""
    import copy

    kw = dict(duration_s=0.5, num_steps=1, seed=2, guidance_scale=3.0)  # one step: x0 = D(x, sigma_max)
    plain = pipe.generate_mel("a low hum", **kw)[0]
    twin = _with_guide(pipe, copy.deepcopy(pipe.unet))
    assert torch.allclose(twin.generate_mel("a low hum", autoguidance=2.0, **kw)[0], plain, atol=1e-5)
    guide = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    guided = _with_guide(pipe, guide, default_autoguidance=1.0)
    assert torch.equal(guided.generate_mel("a low hum", autoguidance=0.0, **kw)[0], plain)
    one, settings = guided.generate_mel("a low hum", **kw)  # the config's default weight
    two = guided.generate_mel("a low hum", autoguidance=2.0, **kw)[0]
    assert settings.autoguidance == 1.0 and (one - plain).abs().max() > 1e-3
    # sigma_max's step is linear in the denoiser's output: w = 2 moves twice as far as w = 1
    assert torch.allclose(two - plain, 2 * (one - plain), atol=1e-4)
    out = guided("a low hum", duration_s=0.5, num_steps=2, seed=0)
    assert out.settings["autoguidance"] == 1.0 and "autoguidance" not in gen(pipe).settings


def test_autoguidance_guide_is_saved_checked_and_required(tmp_path, pipe):
    import copy

    from audiodiff.config import ConfigError
    from audiodiff.models.unet_mel import UNetMel

    guided = _with_guide(pipe, copy.deepcopy(pipe.unet), default_autoguidance=0.5)
    with torch.no_grad():
        next(guided.guide.parameters()).add_(0.1)
    loaded = TextToAudioPipeline.from_pretrained(guided.save_pretrained(tmp_path / "m"))
    assert (tmp_path / "m" / "guide" / "model.safetensors").is_file() and loaded.autoguidance() == 0.5
    for a, b in zip(loaded.guide.state_dict().values(), guided.guide.state_dict().values()):
        assert torch.equal(a, b)
    # a guide from elsewhere: another pipeline folder (its unet/) or a UNet folder
    plain = pipe.save_pretrained(tmp_path / "plain")
    for source in (tmp_path / "m", tmp_path / "m" / "guide"):
        attached = TextToAudioPipeline.from_pretrained(plain, guide=source)
        expected = guided.unet if source.name == "m" else guided.guide
        assert all(torch.equal(a, b) for a, b in zip(attached.guide.state_dict().values(),
                                                     expected.state_dict().values()))
    assert TextToAudioPipeline.from_pretrained(plain).guide is None
    assert pipe.autoguidance() == 0.0  # no guide: the default is off, whatever the config says
    with pytest.raises(ValueError, match="needs a guide network"):
        gen(pipe, autoguidance=1.0)
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="autoguidance must be"):
            gen(loaded, autoguidance=bad)
    other = UNetMel(pipe.unet.config.replace(cond_channels=pipe.unet.config.cond_channels + 1))
    with pytest.raises(ConfigError, match="cond_channels"):
        _with_guide(pipe, other)


def test_guide_stored_as_a_low_bit_difference(tmp_path, pipe):
    """save_pretrained(guide_bits=6): the guide/ folder holds the guide's difference to the UNet
    (3/8 of an fp16 copy of the guide) and loads back within half a rounding step, samples with
    it, and is refused by another UNet and without one."""
    import copy

    from audiodiff.pipelines.text_to_audio import load_guide

    guide = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.01)
    guided = _with_guide(pipe, guide, default_autoguidance=1.0)
    full = guided.save_pretrained(tmp_path / "full", dtype=torch.float16)
    small = guided.save_pretrained(tmp_path / "small", dtype=torch.float16, guide_bits=6)
    size = {k: (f / "guide" / "model.safetensors").stat().st_size for k, f in (("full", full), ("small", small))}
    assert size["small"] < 0.45 * size["full"], size
    loaded = TextToAudioPipeline.from_pretrained(small)
    stored_unet = loaded.unet.state_dict()
    for name, value in guide.state_dict().items():
        got = loaded.guide.state_dict()[name]
        if value.ndim >= 2:
            step = (value - stored_unet[name]).abs().amax() / 31
            assert (got - value).abs().max() <= 0.5 * step * 1.001 + 1e-6, name
        else:
            assert torch.equal(got, value.half().float()), name
    # autoguidance by the stored guide moves the sample where the full guide does
    kw = dict(duration_s=0.5, num_steps=2, seed=0)
    plain = loaded.generate_mel("a low hum", autoguidance=0.0, **kw)[0]
    by_full = TextToAudioPipeline.from_pretrained(full).generate_mel("a low hum", **kw)[0]
    by_small, settings = loaded.generate_mel("a low hum", **kw)
    assert settings.autoguidance == 1.0
    moved, missed = (by_full - plain).abs().mean(), (by_small - by_full).abs().mean()
    assert missed < 0.1 * moved, (missed, moved)
    with pytest.raises(ValueError, match="load it with that model"):
        load_guide(small / "guide")
    from audiodiff.config import ConfigError

    with pytest.raises(ConfigError, match="bits must be an integer from 2 to 8"):
        guided.save_pretrained(tmp_path / "bad", guide_bits=12)
    with pytest.raises(ValueError, match="has none"):
        pipe.save_pretrained(tmp_path / "bad", guide_bits=6)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    retrained = copy.deepcopy(pipe.unet)  # the same architecture, other weights
    with torch.no_grad():
        next(retrained.parameters()).add_(0.5)
    other = TextToAudioPipeline(retrained, pipe.text, pipe.vocoder, pipe.config).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="fingerprints differ"):
        TextToAudioPipeline.from_pretrained(other, guide=small / "guide")


def test_autoguidance_default_reaches_the_audio_to_audio_modes(pipe):
    """The modes run the model's default weight: a guide equal to the UNet changes nothing, a
    different one changes the variation."""
    import copy

    audio = torch.sin(torch.arange(11025) * 0.05) * 0.5
    kw = dict(sample_rate=22050, num_steps=2, seed=0)
    plain = pipe.vary(audio, 0.6, "a low hum", **kw).waveforms
    twin = _with_guide(pipe, copy.deepcopy(pipe.unet), default_autoguidance=1.0)
    assert torch.allclose(twin.vary(audio, 0.6, "a low hum", **kw).waveforms, plain, atol=1e-4)
    guide = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    guided = _with_guide(pipe, guide, default_autoguidance=1.0)
    varied = guided.vary(audio, 0.6, "a low hum", **kw)
    assert (varied.waveforms - plain).abs().max() > 1e-3 and varied.settings["autoguidance"] == 1.0
    # a per-call weight: 0 is the unguided variation, for every mode
    off = guided.vary(audio, 0.6, "a low hum", autoguidance=0.0, **kw)
    assert torch.equal(off.waveforms, plain) and "autoguidance" not in off.settings
    assert guided.inpaint(audio, 0.1, 0.3, "a low hum", autoguidance=2.0, **kw).settings["autoguidance"] == 2.0
    with pytest.raises(ValueError, match="needs a guide network"):
        pipe.continuation(audio, 0.5, "a low hum", autoguidance=1.0, **kw)
