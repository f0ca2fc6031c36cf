"""The melody frame layouts (``TextToAudioConfig.melody_layout``): the pitch-class mel template
against librosa's mel frequencies, its use in training and in the pipeline, and chunked exports."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import torch

from audiodiff.audio.features import (
    MELODY_LAYOUTS, MelConfig, MelSpectrogram, melody_planes, pitch_class_mel_template,
)
from audiodiff.config import ConfigError
from audiodiff.pipelines import TextToAudioConfig


def test_template_peaks_on_the_pitch_class_of_each_narrow_mel_filter():
    """Reference: librosa's slaney mel centre frequencies and its Hz -> MIDI conversion."""
    mel = MelConfig()
    template = pitch_class_mel_template(mel)
    assert template.shape == (12, mel.n_mels) and float(template.min()) >= 0 and float(template.max()) == 1.0
    edges = librosa.mel_frequencies(n_mels=mel.n_mels + 2, fmin=mel.f_min, fmax=mel.f_max, htk=False)
    centres, widths = edges[1:-1], edges[2:] - edges[:-2]
    semitones_wide = 12 * np.log2((centres + widths / 2) / np.maximum(centres - widths / 2, 1e-3))
    narrow = semitones_wide < 2.5  # filters spanning under ~2 semitones: one class dominates
    assert narrow.sum() >= 30
    expected = np.round(librosa.hz_to_midi(centres[narrow])).astype(int) % 12
    got = template[:, torch.from_numpy(narrow)].argmax(dim=0).numpy()
    # A filter centred near a semitone boundary may lean either way: within one class.
    off = np.minimum((got - expected) % 12, (expected - got) % 12)
    assert (off <= 1).all() and (off == 0).mean() > 0.7, (got, expected)


@pytest.mark.parametrize("hz, pitch_class", [(440.0, 9), (659.26, 4), (1046.5, 0)])
def test_a_tone_lights_the_mel_rows_of_its_template(hz, pitch_class):
    """A tone's mel profile (its fundamental and harmonics) matches its own class's rows best."""
    mel = MelConfig()
    t = torch.arange(mel.sample_rate) / mel.sample_rate
    wav = sum(0.3 / k * torch.sin(2 * torch.pi * k * hz * t) for k in (1, 2, 4))
    profile = MelSpectrogram(mel).magnitude(wav[None])[0].mean(dim=-1)  # (n_mels,)
    template = pitch_class_mel_template(mel)
    scores = (template * profile[None]).sum(dim=1) / template.sum(dim=1)
    assert int(scores.argmax()) == pitch_class


def test_melody_planes_layouts_and_errors():
    chroma = torch.zeros(2, 12, 5)
    chroma[0, 9, :] = 1.0
    flat = melody_planes(chroma, 80, "broadcast")
    assert flat.shape == (2, 12, 80, 5) and torch.equal(flat[0, 9], torch.ones(80, 5))
    template = pitch_class_mel_template(MelConfig())
    planes = melody_planes(chroma, 80, "pitch_class_mel", template)
    assert torch.allclose(planes[0, 9], template[9][:, None].expand(80, 5))
    assert float(planes[1].abs().sum()) == 0.0 and float(planes[0, :9].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="must be one of"):
        melody_planes(chroma, 80, "stacked")
    with pytest.raises(ValueError, match=r"needs a \(12, 80\) template"):
        melody_planes(chroma, 80, "pitch_class_mel")
    with pytest.raises(ValueError, match=r"\(B, 12, N\)"):
        melody_planes(chroma[:, :6], 80, "broadcast")


def test_config_layout_is_checked_and_old_files_load_as_broadcast(tmp_path):
    assert set(MELODY_LAYOUTS) == {"broadcast", "pitch_class_mel"}
    with pytest.raises(ConfigError, match="melody_layout must be one of"):
        TextToAudioConfig(melody_layout="stacked")
    data = json.loads(TextToAudioConfig().to_json())
    data.pop("melody_layout")  # a pipeline.json written before the field existed
    (tmp_path / "pipeline.json").write_text(json.dumps(data))
    assert TextToAudioConfig.load(tmp_path / "pipeline.json").melody_layout == "broadcast"


def test_training_and_the_pipeline_feed_the_same_planes():
    """The objective lays training chroma out as the pipeline lays out a reference's chroma."""
    from audiodiff.training.tasks import DiffusionObjective
    from audiodiff.diffusion import EDMLoss
    from audiodiff.conditioning.text import TextConditioner, TextConditionerConfig

    seen = {}

    class Recorder(torch.nn.Module):
        config = type("C", (), {"text_dim": 0, "pooled_dim": 32, "cond_channels": 12})()

        def forward(self, x, c_noise, cond=None):
            seen["frames"] = cond.frames
            return torch.zeros_like(x)

    mel = MelConfig(n_mels=40)
    text = TextConditioner(TextConditionerConfig(encoder="hash", dim=32))
    objective = DiffusionObjective(Recorder(), text, EDMLoss(), cfg_dropout=0.0, frame_dropout=0.0,
                                   melody_layout="pitch_class_mel", mel=mel).eval()
    chroma = torch.zeros(1, 12, 7)
    chroma[0, 4, :3] = 1.0
    chroma[0, 11, 3:] = 1.0
    batch = {"x": torch.randn(1, 1, 40, 7), "mask": torch.ones(1, 7), "frames": chroma,
             "pooled": torch.randn(1, 32), "noise_seeds": [3]}
    objective(batch)
    expected = melody_planes(chroma, 40, "pitch_class_mel", pitch_class_mel_template(mel))
    assert torch.allclose(seen["frames"], expected)


def test_chunked_export_keeps_every_part_of_long_music(tmp_path):
    from audiodiff.data.feature_cache import FeatureShards, export_compact
    from safetensors.torch import save_file

    mel = MelConfig(n_mels=16)
    rate = mel.frame_rate
    cache = tmp_path / "cache"
    cache.mkdir()
    lengths = {"music-a": int(5.5 * rate), "sfx-a": int(0.8 * rate)}
    tensors, clips = {}, []
    for i, (source, frames) in enumerate(lengths.items()):
        key = f"{i:06d}"
        tensors[f"{key}.mel"] = torch.linspace(-1, 1, frames).expand(16, frames).half().contiguous()
        music = source.startswith("music")
        if music:
            tensors[f"{key}.pitch"] = (torch.arange(frames) % 50 + 40).to(torch.int16)
        clips.append({"key": key, "shard": "mels-00000.safetensors", "frames": frames, "has_pitch": music,
                      "captions": [source], "split": "train", "source": source, "license": "CC0",
                      "origin": source, "duration_s": frames / rate})
    save_file(tensors, str(cache / "mels-00000.safetensors"))
    (cache / "index.json").write_text(json.dumps({"format_version": 1, "kind": "feature-cache",
                                                  "mel_config": json.loads(mel.to_json()),
                                                  "normalized": True, "clips": clips}))
    export_compact(cache, tmp_path / "first", max_mib=4, max_clip_s=2.0, echo=None)
    export_compact(cache, tmp_path / "chunks", max_mib=4, max_clip_s=2.0, chunks=True, echo=None)
    first, chunked = FeatureShards(tmp_path / "first"), FeatureShards(tmp_path / "chunks")
    assert len(first.clips) == 2
    music = [c for c in chunked.clips if c["source"] == "music-a"]
    # 5.5 s in 2 s chunks: 2 + 2 + 1.5 (kept: over 1 s); the 0.8 s effect stays whole
    assert [c["frames"] for c in music] == [int(2 * rate), int(2 * rate), lengths["music-a"] - 2 * int(2 * rate)]
    assert [c["frames"] for c in chunked.clips if c["source"] == "sfx-a"] == [lengths["sfx-a"]]
    whole = torch.cat([chunked[chunked.clips.index(c)]["pitch"] for c in music])
    assert torch.equal(whole, torch.arange(lengths["music-a"]) % 50 + 40)
    assert music[1]["origin"].endswith("@2.0s")
