"""Issue 7's GPU recipe for fine-tuning HiFi-GAN, at toy size on the CPU: the data preparation's
exclusions and piece cutting (scripts/vocoder_prepare.py), a vocoder folder through
scripts/gpu_train.py's publish / unpublish, fp16 weights as init_from, and a short dry run of the
vocoder task through scripts/gpu_train.py."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiodiff.audio import load_audio, save_audio
from audiodiff.data.manifest import ManifestEntry, read_manifest, write_manifest
from audiodiff.hub import save_component
from audiodiff.models.vocoder import HiFiGAN, HiFiGANConfig, load_vocoder
from audiodiff.training.testing import TINY_SAMPLE_RATE, tiny_vocoder_task_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_train  # noqa: E402
import vocoder_prepare as prep  # noqa: E402


def _entry(path: str, source: str, split: str = "train", origin: str | None = None) -> ManifestEntry:
    return ManifestEntry(path=path, captions=("a sound",), duration_s=3.0, sample_rate=22050, source=source,
                         license="CC0", split=split, origin=origin)


def test_exclusions_follow_the_benchmark():
    from benchmarks.vocoder import HELDOUT_PACKAGES, SFX_PACKAGES

    packages = prep.benchmark_sfx_packages()
    assert set(SFX_PACKAGES) | set(HELDOUT_PACKAGES) == packages
    keys20, keys40 = prep.benchmark_music_keys((20,), 0), prep.benchmark_music_keys((40,), 0)
    # sample_music draws the same pieces first for any n: n = 40 covers n = 20
    assert 0 < len(keys20) <= 25 and keys20 < keys40 and len(keys40) <= 45
    assert prep.benchmark_music_keys((20, 40), 0) == keys40
    assert all(k.startswith(("music21:bach/", "music21:essenFolksong/")) for k in keys40)
    bach = sorted(k for k in keys20 if k.startswith("music21:bach/"))[0]
    folk = sorted(k for k in keys20 if "#" in k)[0]

    sfx = [_entry("a.flac", "sonic-pi-samples"), _entry("b.flac", "flare-game"), _entry("c.flac", "0ad-data"),
           _entry("d.flac", "tuxpaint-stamps-default"), _entry("e.flac", "0ad-data")]
    kept, excluded = prep.split_excluded(sfx, "sfx", packages, keys40)
    assert [e.path for e in kept] == ["c.flac", "e.flac"]
    assert excluded == {"benchmark package sonic-pi-samples": 1, "benchmark package flare-game": 1,
                        "reserved package tuxpaint-stamps-default": 1}
    music = [_entry("m1.flac", "bach-chorales", origin=f"{bach} render 3 part 1/2"),
             _entry("m2.flac", "essen", origin=f"{folk} render 7"),
             _entry("m3.flac", "essen", origin=f"{folk}0 render 8"),  # another tune number of that file
             _entry("m4.flac", "bach-chorales", origin="music21:bach/bwv9999.mxl render 1 part 1/1")]
    kept, excluded = prep.split_excluded(music, "music", packages, keys40)
    assert [e.path for e in kept] == ["m3.flac", "m4.flac"] and excluded == {"benchmark music piece": 2}


def test_speech_texts_avoid_the_benchmark_sentences():
    from audiodiff.data import ENGLISH_SENTENCES

    entries = [ManifestEntry(path="a.flac", captions=(ENGLISH_SENTENCES[0], "a dog barking loudly", "dog"),
                             duration_s=1.0, sample_rate=22050, source="x", license="CC0")]
    texts = prep.speech_texts(entries)
    assert texts == ["a dog barking loudly"]
    spec = next(prep.speech_specs(texts, random.Random(0)))
    assert "A dog barking loudly." in spec["text"] and 110 <= spec["speed"] <= 230 and 20 <= spec["pitch"] <= 80


def test_choose_window_skips_silence():
    sr = prep.SAMPLE_RATE
    g = torch.Generator().manual_seed(0)
    wav = torch.cat([torch.zeros(1, int(2.5 * sr)),                            # silent
                     0.3 * torch.randn(1, int(2.5 * sr), generator=g),          # the one good window
                     1e-4 * torch.randn(1, int(2.5 * sr), generator=g),         # near-silent (-80 dBFS)
                     torch.zeros(1, int(0.3 * sr))], dim=-1)                     # too short
    for seed in range(5):
        assert prep.choose_window(wav, 2.5, 0.6, random.Random(seed)) == (int(2.5 * sr), int(2.5 * sr))
    click = torch.zeros(1, int(2.5 * sr))
    click[0, 100:200] = 0.9  # a click, then silence: mostly inactive
    assert prep.choose_window(click, 2.5, 0.6, random.Random(0)) is None
    assert prep.choose_window(torch.zeros(1, sr), 2.5, 0.6, random.Random(0)) is None


def test_select_balances_kinds_by_duration_within_the_budget():
    def stream(kind, seconds, size):
        for i in range(1000):
            yield {"kind": kind, "duration_s": seconds, "bytes": size, "file": f"{kind}{i}"}

    taken = prep.select({"sfx": stream("sfx", 1.0, 30), "music": stream("music", 2.5, 60),
                         "speech": stream("speech", 2.0, 40)}, 3000, {"sfx": 1, "music": 1, "speech": 1})
    assert sum(r["bytes"] for r in taken) <= 3000
    seconds = {k: sum(r["duration_s"] for r in taken if r["kind"] == k) for k in ("sfx", "music", "speech")}
    assert max(seconds.values()) - min(seconds.values()) <= 2.5
    # an exhausted kind leaves the budget to the others
    taken = prep.select({"sfx": iter([]), "music": stream("music", 2.5, 60)}, 600, {"sfx": 1, "music": 1})
    assert len(taken) == 10


def test_prepare_writes_a_resumable_manifest(tmp_path, capsys):
    """The whole preparation on a tiny corpus (no speech, vocoder or wheels: no espeak-ng needed)."""
    corpus = tmp_path / "corpus"
    g = torch.Generator().manual_seed(1)
    rows = {"sfx": [], "music": []}
    for kind, sources in (("sfx", ("0ad-data", "sonic-pi-samples", "wesnoth-1.16-data")),
                          ("music", ("bach-chorales",))):
        for i in range(6):
            source = sources[i % len(sources)]
            path = corpus / kind / f"{source}-{i}.wav"
            save_audio(path, 0.2 * torch.randn(1, int(44100 * 3.2), generator=g), 44100)  # resampled on load
            rows[kind].append(ManifestEntry(path=str(path), captions=("noise",), duration_s=3.2, sample_rate=44100,
                                            source=source, license="CC0", split="valid" if i == 5 else "train",
                                            origin=f"music21:bach/bwv{9000 + i}.mxl render {i} part 1/1"
                                            if kind == "music" else None))
        write_manifest(corpus / kind / "manifest.jsonl", rows[kind])
    out = tmp_path / "carry"
    args = ["--out", str(out), "--sfx-manifest", str(corpus / "sfx" / "manifest.jsonl"),
            "--music-manifest", str(corpus / "music" / "manifest.jsonl"), "--audio-mib", "0.4",
            "--shares", "1,1,0", "--valid-per-kind", "1", "--no-vocoder", "--no-wheels", "--bench-n", "2"]
    info = prep.main(args)
    assert info["exclusions"]["clips_excluded"]["sfx/train"] == {"benchmark package sonic-pi-samples": 2}
    entries = read_manifest(out / "manifest.jsonl")
    assert {e.split for e in entries} == {"train", "valid"}
    assert not any(e.source == "sonic-pi-samples" for e in entries)
    assert sum(e.duration_s for e in entries if e.split == "train") > 0
    sizes = sum(Path(e.path).stat().st_size for e in entries if e.split == "train")
    assert sizes <= 0.4 * 2**20
    import soundfile as sf

    info_sf = sf.info(entries[0].path)
    assert (info_sf.samplerate, info_sf.channels, info_sf.subtype, info_sf.format) == (22050, 1, "PCM_16", "FLAC")
    wav, _ = load_audio(entries[0].path)
    assert 10 ** (-6.5 / 20) <= float(wav.abs().max()) <= 10 ** (-0.9 / 20)
    assert len(list((out / "clips").rglob("*.flac"))) == len(entries)
    # a rerun reuses every piece and writes the same manifest
    before = (out / "manifest.jsonl").read_text()
    again = prep.main(args)
    assert again["pieces_written"] == 0 and (out / "manifest.jsonl").read_text() == before


def _tiny_vocoder() -> HiFiGAN:
    torch.manual_seed(0)
    return HiFiGAN(HiFiGANConfig.from_dict(tiny_vocoder_task_dict()["generator"])).eval()


def test_fp16_folder_publishes_and_initialises_training(tmp_path, monkeypatch):
    from audiodiff.training.config import VocoderTaskConfig
    from audiodiff.training.vocoder import VocoderTask

    vocoder = _tiny_vocoder()
    model = save_component(vocoder, tmp_path / "model", dtype=torch.float16)
    (model / "training.json").write_text(json.dumps({"step": 7}))
    monkeypatch.setattr(gpu_train, "PART_BYTES", 20_000)  # several parts from a small model
    gpu_train.publish(model, tmp_path / "pub", 7, tmp_path / "no-metrics.jsonl")
    parts = sorted((tmp_path / "pub").glob("model-step00000007.tar.part*"))
    assert len(parts) >= 2 and (tmp_path / "pub" / "model-step00000007.tar.count").read_text() == str(len(parts))
    unpacked = gpu_train.unpublish(tmp_path / "pub", tmp_path / "unpacked")
    loaded = load_vocoder(unpacked)
    mel = torch.randn(1, 16, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), vocoder(mel), atol=2e-3, rtol=0)  # fp16 weights
        # fp16 weights as init_from: loaded into the fp32 (weight-normed) training generator
        config = VocoderTask.resolve_init(VocoderTaskConfig.from_dict(
            {k: v for k, v in tiny_vocoder_task_dict().items() if k != "type"}), str(unpacked))
        task = VocoderTask(config)
        task.load_init(str(unpacked))
        assert all(p.dtype == torch.float32 for p in task.generator.parameters())
        torch.testing.assert_close(task.generator.eval()(mel), loaded(mel), atol=1e-5, rtol=1e-4)


def test_gpu_script_trains_the_vocoder_task(tmp_path):
    """scripts/gpu_train.py with --export "" on a manifest of audio, the vocoder config, a fp16
    init folder; 1D-conv modules keep their layout under --channels-last on; published parts
    unpack into a loadable vocoder."""
    clips = []
    g = torch.Generator().manual_seed(2)
    for i in range(5):
        path = tmp_path / "clips" / f"c{i}.flac"
        t = torch.arange(int(0.6 * TINY_SAMPLE_RATE)) / TINY_SAMPLE_RATE
        wav = 0.3 * torch.sin(2 * torch.pi * (200 + 60 * i) * t)[None] + 0.02 * torch.randn(1, t.numel(), generator=g)
        save_audio(path, wav, TINY_SAMPLE_RATE)
        clips.append(ManifestEntry(path=str(path), captions=("a tone",), duration_s=0.6, sample_rate=TINY_SAMPLE_RATE,
                                   source="test", license="CC0", split="valid" if i == 0 else "train"))
    manifest = write_manifest(tmp_path / "manifest.jsonl", clips)
    init = save_component(_tiny_vocoder(), tmp_path / "init", dtype=torch.float16)
    task = {k: v for k, v in tiny_vocoder_task_dict().items()}
    task["disc_warmup_steps"] = 1
    out, pub = tmp_path / "out", tmp_path / "pub"
    sets = [f"task={json.dumps(task)}", f"data.manifest={json.dumps(str(manifest))}",
            f"init_from={json.dumps(str(init))}", "data.crop_s=0.128", "batch_size=2", "data.num_workers=0",
            "log_every=1", "valid_every=2", "data.max_valid_clips=1"]
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_train.py"),
           "--config", str(ROOT / "configs" / "vocoder_gpu.toml"), "--export", "", "--device", "cpu", "--out", str(out), "--publish", str(pub), "--max-minutes", "0.08",
           "--checkpoint-minutes", "0.04", "--channels-last", "on"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "VocoderTaskConfig" and summary["crop_kind"] == "wave" and not summary["bf16"]
    assert summary["channels_last_modules"] == ["mpd", "mrd"]  # not the 1D-conv generator
    assert summary["reason"] == "time_budget" and summary["step"] >= 1
    assert summary["exports"][-1]["step"] == summary["step"] and summary["valid_loss_ema_curve"]
    assert (pub / "metrics.jsonl").is_file() and (pub / "summary.json").is_file()
    vocoder = load_vocoder(gpu_train.unpublish(pub, tmp_path / "unpacked"))
    assert isinstance(vocoder, HiFiGAN) and vocoder.config.mel.sample_rate == TINY_SAMPLE_RATE


def test_benchmark_counts_paired_wins_against_the_first_vocoder():
    from benchmarks.vocoder import paired_wins, wins_markdown

    def rows(values):
        return [{"id": f"c{i}", "category": "music" if i < 2 else "speech", "mel_l1": v, "mrstft_total": 1.0,
                 "mrstft_sc": 0.5} for i, v in enumerate(values)]

    results = {"base": rows([0.3, 0.3, 0.3]), "new": rows([0.2, 0.4, 0.1])}
    wins = {w["category"]: w for w in paired_wins(results)}
    assert (wins["music"]["mel_l1"], wins["speech"]["mel_l1"], wins["all"]["mel_l1"]) == (1, 1, 2)
    assert wins["all"]["mrstft_total"] == 0 and "emb_dist" not in wins["all"]  # ties are not wins
    assert "| all | new | 2/3 | 0/3 | 0/3 |" in wins_markdown(list(wins.values()))
    assert paired_wins({"base": rows([0.3])}) == []


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_benchmark_feeds_the_mel_as_an_export_of_that_many_bits_stores_it(bits):
    """--mel-bits: the vocoder gets the mel on the export's grid: at most 2**bits levels, each value
    within half a step of the original (a step of 2**(8 - bits) uint8 codes over the mel's range)."""
    from benchmarks.vocoder import requantised

    from audiodiff.audio import MelConfig

    config = MelConfig()
    log_mel = torch.linspace(config.norm_min, config.norm_max, 80 * 50).reshape(1, 80, 50)
    out = requantised(log_mel, config, bits)
    step = 2 ** (8 - bits) * (config.norm_max - config.norm_min) / 255
    assert out.shape == log_mel.shape and out.dtype == log_mel.dtype
    assert (out - log_mel).abs().max() <= step / 2 + 1e-4
    assert (out - log_mel).abs().max() > step / 4  # it did quantise
    assert len(out.unique()) <= 2 ** bits


@pytest.mark.parametrize("key, use", [("run_dir", "--out"), ("max_minutes", "--max-minutes"), ("device", "--device")])
def test_gpu_script_refuses_to_override_what_it_sets(key, use, tmp_path, capsys):
    """A --set of run_dir used to train into one folder and export from another, then crash at the
    first checkpoint; the script refuses it before anything starts."""
    with pytest.raises(SystemExit) as exit_info:
        gpu_train.main(["--config", str(ROOT / "configs" / "timing_finetune.toml"), "--out", str(tmp_path / "o"),
                        "--set", f"{key}=x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--set {key}=... is not accepted" in err and use in err
    assert not (tmp_path / "o").exists()
