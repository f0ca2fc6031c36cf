"""The timing input: a UNetMel told how long the sound lasts (then silence) learns to stop there."""

import numpy as np
import pytest
import torch

from audiodiff.audio import MelConfig, MelSpectrogram, normalize_mel
from audiodiff.conditioning.base import Conditioning
from audiodiff.diffusion import EDMLoss, NoiseScheduleConfig
from audiodiff.models.unet_mel import UNetMel, timing_plane
from audiodiff.testing import tiny_text_to_audio_pipeline, tiny_unet_mel_config, train_with_ema
from audiodiff.training.config import DiffusionTaskConfig
from audiodiff.training.tasks import DiffusionTask

SCHEDULE = NoiseScheduleConfig(sigma_max=20.0, p_mean=-0.5, p_std=1.5)


def test_timing_plane_marks_the_sound_then_the_silence():
    x = torch.zeros(3, 1, 4, 6)
    plane = timing_plane(torch.tensor([2.0, -1.0, 10.0]), x)
    assert plane.shape == (3, 1, 4, 6)
    assert plane[0, 0, 0].tolist() == [1, 1, -1, -1, -1, -1]
    assert plane[1].abs().sum() == 0  # not said
    assert torch.all(plane[2] == 1)   # longer than the clip: sound throughout
    assert timing_plane(torch.tensor([2.5, 0.0, 6.0]), x)[:, 0, 0].tolist() == [
        [1, 1, 1, -1, -1, -1], [-1] * 6, [1] * 6]
    assert torch.all(timing_plane(None, x) == 0)
    with pytest.raises(ValueError, match=r"sound_frames must have shape \(B,\)"):
        timing_plane(torch.ones(2), x)


def test_a_grown_unet_computes_what_it_grew_from():
    torch.manual_seed(0)
    unet = UNetMel(tiny_unet_mel_config(n_mels=16, cond_channels=12)).eval()
    grown = unet.with_timing_input().eval()
    assert grown.config.timing_channels == 1 and unet.config.timing_channels == 0
    x, c_noise = torch.randn(2, 1, 16, 24), torch.tensor([0.3, -1.0])
    frames = torch.randn(2, 12, 16, 24)
    with torch.no_grad():
        ref = unet(x, c_noise, Conditioning(frames=frames))
        for said in (None, torch.tensor([5.0, -1.0])):
            out = grown(x, c_noise, Conditioning(frames=frames, sound_frames=said))
            torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="already has a timing input"):
        grown.with_timing_input()
    with pytest.raises(ValueError, match="no timing input"):
        unet(x, c_noise, Conditioning(frames=frames, sound_frames=torch.tensor([5.0, 5.0])))


def test_sound_s_is_checked_and_reported():
    plain = tiny_text_to_audio_pipeline(n_mels=16)
    with pytest.raises(ValueError, match="timing input"):
        plain("a beep", duration_s=1.0, sound_s=0.5)
    timed = tiny_text_to_audio_pipeline(n_mels=16, timing_channels=1)
    for bad in (0.0, 1.5, "long"):
        with pytest.raises(ValueError, match="sound_s must be"):
            timed("a beep", duration_s=1.0, sound_s=bad)
    out = timed("a beep", duration_s=1.0, sound_s=0.25, num_steps=2, seed=0)
    assert out.settings["sound_s"] == 0.25 and out.waveforms.shape == (1, 1, 22050)
    assert "sound_s" not in timed("a beep", duration_s=1.0, num_steps=2, seed=0).settings
    # One length per item.
    out = timed(["a beep", "a hum"], duration_s=1.0, sound_s=[0.25, 0.5], num_steps=2, seed=0)
    assert out.settings["sound_s"] == [0.25, 0.5]
    with pytest.raises(ValueError, match="3 values for 2 items"):
        timed(["a beep", "a hum"], duration_s=1.0, sound_s=[0.25, 0.5, 0.5])


def test_training_says_the_length_or_drops_it():
    unet = tiny_unet_mel_config(n_mels=80, timing_channels=1)
    seen = []

    def spy(module, args):
        seen.append(args[2].sound_frames.clone())

    batch = {"x": torch.randn(4, 1, 80, 16), "mask": torch.ones(4, 16), "noise_seeds": [1, 2, 3, 4],
             "sound_frames": torch.tensor([3.0, 16.0, 7.0, 9.0]), "pooled": torch.randn(4, 32),
             "tokens": torch.randn(4, 5, 32), "token_mask": torch.ones(4, 5, dtype=torch.bool)}
    for dropout, expect in ((0.0, [3.0, 16.0, 7.0, 9.0]), (1.0, [-1.0] * 4)):
        task = DiffusionTask(DiffusionTaskConfig(unet=unet, timing_dropout=dropout,
                                                 text=_tiny_text_config()))
        task.net.register_forward_pre_hook(spy)
        task.objective.train()
        task.objective(batch)
        assert seen[-1].tolist() == expect


def _tiny_text_config():
    from audiodiff.testing import tiny_text_conditioner

    return tiny_text_conditioner("hash").config


def _sound_end(mel: torch.Tensor, level: float) -> float:
    """Frames before the last frame louder than ``level`` (mean over mel rows), +1."""
    loud = (mel.mean(dim=0) > level).nonzero()
    return float(loud[-1]) + 1 if len(loud) else 0.0


def test_unet_mel_learns_to_stop_the_sound_where_it_is_told():
    """Steady noise of random length, then silence; asked for a quarter or three quarters of the
    clip, the trained model ends its sound there (a model blind to the input could not: the same
    seeds and prompt give both)."""
    sr, n = 22050, 64
    mel_config = MelConfig(n_mels=16)
    hop = mel_config.hop_length
    mel_fn = MelSpectrogram(mel_config)
    wavs = 0.1 * torch.randn(32, n * hop, generator=torch.Generator().manual_seed(1))  # steady noise
    loud = normalize_mel(mel_fn(wavs), mel_config)[:, None, :, :n]
    pipe = tiny_text_to_audio_pipeline(seed=0, n_mels=16, timing_channels=1)
    frames = torch.arange(n)

    def draw(g):
        idx = torch.randint(len(wavs), (16,), generator=g)
        length = torch.randint(n // 8, n - n // 8, (16,), generator=g)
        cond = pipe.text(["static noise"] * 16)
        cond.sound_frames = length.float()
        return torch.where(frames < length[:, None, None, None], loud[idx], -1.0), cond

    losses = train_with_ema(pipe, EDMLoss.from_config(SCHEDULE), draw, steps=150)
    pipe.config = pipe.config.replace(schedule=SCHEDULE)
    assert np.mean(losses[-25:]) < 0.6 * np.mean(losses[:25])

    duration = n * hop / sr
    level = float((loud.mean() - 1.0) / 2)  # halfway between the bursts' mean level and silence
    ends = {}
    for share in (0.25, 0.75):
        mel, _ = pipe.generate_mel("static noise", duration_s=duration, sound_s=share * duration,
                                   num_steps=12, guidance_scale=1.0, seed=0, batch_size=4)
        ends[share] = [_sound_end(m[0, :, :n], level) / n for m in mel]
    for share, got in ends.items():
        assert np.median(np.abs(np.array(got) - share)) < 0.1, ends
    assert min(ends[0.75]) - max(ends[0.25]) > 0.3, ends


@pytest.mark.parametrize("timing_channels", [0, 1])
def test_audio_to_audio_modes_say_the_sound_fills_the_clip(timing_channels, monkeypatch):
    """vary / inpaint / continuation / long / melody work inside a clip that the sound fills, so a
    model with a timing input is told so (both guidance branches, every window); one without is
    told nothing."""
    pipe = tiny_text_to_audio_pipeline(n_mels=16, cond_channels=12, timing_channels=timing_channels)
    seen = []
    real = pipe.denoiser

    def recording(x, sigma, cond):
        seen.append((x.shape[0], x.shape[-1], cond.sound_frames))
        return real(x, sigma, cond)

    monkeypatch.setattr(pipe, "denoiser", recording)
    sr = 22050
    t = torch.arange(int(1.2 * sr)) / sr
    wav = 0.3 * torch.sin(2 * np.pi * 440 * t)
    kw = dict(sample_rate=sr, num_steps=2, seed=0, batch_size=2, guidance_scale=2.0, prompt="a flute")
    calls = {
        "vary": lambda: pipe.vary(wav, 0.6, **kw),
        "inpaint": lambda: pipe.inpaint(wav, 0.3, 0.6, **kw),
        "continuation": lambda: pipe.continuation(wav, 1.0, **kw),
        "melody": lambda: pipe.melody(wav, **kw),
        "long": lambda: pipe.generate_long("a flute", 2.0, window_s=1.0, overlap_s=0.25, num_steps=2, seed=0,
                                           batch_size=2),
    }
    monkeypatch.setattr(pipe, "config", pipe.config.replace(window_s=0.5))  # continuation: two windows
    for mode, call in calls.items():
        seen.clear()
        out = call()
        assert seen, mode
        widths = {width for _, width, _ in seen}
        if mode in ("continuation", "long"):
            assert len(widths) > 1, f"{mode}: one window only, {widths}"
        for batch, width, told in seen:
            if timing_channels:
                assert told is not None and told.shape == (batch,), mode
                assert told.tolist() == [float(width)] * batch, mode
            else:
                assert told is None, mode
        if timing_channels:
            assert out.settings["sound_s"] == out.settings["duration_s"] > 0, mode
        else:
            assert "sound_s" not in out.settings, mode
