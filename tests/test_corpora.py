"""Corpus builders (issue 4) on tiny fixtures made here: no apt, no network.

A fake unpacked Debian package holds good, corrupt, silent, unnamed, music and voice files; a
reserved package must never reach a training split; reruns must not redo finished work.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import MelConfig, MelSpectrogram, load_audio, normalize_mel
from audiodiff.data import sfx as sfx_mod
from audiodiff.data.card import data_card
from audiodiff.data.cli import register
from audiodiff.data.corpus import BuildError, assign_split, cut_segments, group_key
from audiodiff.data.feature_cache import FeatureShards, build_feature_cache, export_compact
from audiodiff.data.local_corpora import build_folder, build_synth
from audiodiff.data.manifest import read_manifest
from audiodiff.data.midi import NoteEvent
from audiodiff.data.music import MusicPiece
from audiodiff.data.music_corpus import build_music
from audiodiff.data.music_render import chroma_of, estimate_key, melody_pitch
from audiodiff.data.reserved import RESERVED_DEBIAN_PACKAGES
from audiodiff.data.sfx import build_sfx, guitar_strum_caption
from audiodiff.data.sfx_captions import Captioner, caption_words

SR = 22050
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")


def _noise(seconds, sr=SR, level=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * sr)) * level
    return (x * np.hanning(len(x)) ** 0.1).astype(np.float32)


def _package(root, name, files, licence="CC0-1.0"):
    """A fake unpacked package: {relative path: audio array | bytes}."""
    base = root / name
    for rel, data in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            sf.write(path, data, 44100 if path.suffix == ".wav" else SR)
    doc = base / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                                   f"Files: *\nCopyright: someone\nLicense: {licence}\n")
    return base


@pytest.fixture
def game(tmp_path):
    snd = "usr/share/games/fakegame/sounds"
    return _package(tmp_path / "pkgs", "fakegame-data", {
        f"{snd}/lumber_tree_06.wav": _noise(0.8, 44100),
        f"{snd}/arrow_stone_02.ogg": _noise(0.5, seed=1),
        f"{snd}/wolf_die1.wav": _noise(0.6, 44100, seed=2),
        f"{snd}/ambient/rain_long.wav": _noise(70, 44100, 0.1, seed=3),
        f"{snd}/corrupt_01.wav": b"RIFF\x00\x00\x00\x00WAVEfmt garbage",
        f"{snd}/silence_01.wav": np.zeros(22050, dtype=np.float32),
        f"{snd}/x_01.wav": _noise(0.5, 44100, seed=4),
        f"{snd}/voices/hello.wav": _noise(0.5, 44100, seed=5),
        f"{snd}/music/theme.ogg": _noise(2.0, seed=6),
        "usr/share/doc/fakegame-data/README": b"not audio",
    })


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- captions ----------------------------------------------------------------------------------

def test_captions_from_names():
    cap = Captioner()
    lumber = cap.caption_path("resource/lumbering/lumber_tree_06.ogg")
    assert lumber.sentence == "chopping wood, an axe hitting a tree"
    variants = lumber.variants()
    assert len(variants) >= 3 and variants[-1] == "lumber tree"  # raw words always last
    assert cap.caption_path("default_gravel_footstep.3.ogg").sentence == "footsteps on gravel"
    assert cap.caption_path("attack/impact/arrow_stone_02.ogg").sentence == "an arrow hitting stone"
    assert cap.caption_path("actor/fauna/animal/elephant_select2.ogg").sentence == "an elephant trumpeting"
    assert "scream" in cap.caption_path("human-die-2.ogg").sentence  # a person's act differs from a wolf's
    assert cap.caption_path("wolf-die-2.ogg").sentence == "a wolf dying"
    assert cap.caption_path("explosion huge.wav").sentence == "a huge explosion"
    assert cap.caption_path("x_01.wav").variants() == []  # nothing to say: the builder skips it
    assert caption_words("usr/share/sounds/DogBark_02.wav") == ["dog", "bark"]
    assert guitar_strum_caption("Csharp minor7b5_DOWN_01").startswith(
        "an acoustic guitar strumming a C sharp minor seven flat five chord")


def test_vocabulary_parses_without_dead_entries():
    from audiodiff.data.sfx_captions import parse_vocabulary
    from audiodiff.data.sfx_vocabulary import VOCABULARY_TEXT

    terms = [t for t in parse_vocabulary(VOCABULARY_TEXT) if not (t.kind == "act" and t.group)]
    keys = [t.words for t in terms]
    assert len(terms) > 500 and len(keys) == len(set(keys)), "a duplicated key can never match twice"


# -- splits --------------------------------------------------------------------------------------

def test_splits_group_variants_and_hold_out_reserved():
    assert group_key("p", "a/arrow_stone_01.ogg") == group_key("p", "a/arrow_stone_12.ogg")
    assert group_key("p", "a/water.1.ogg") == group_key("p", "a/water.3.ogg")
    assert group_key("p", "a/arrow_stone.ogg") != group_key("p", "a/arrow_wood.ogg")
    for name in RESERVED_DEBIAN_PACKAGES | {"oneills1850"}:
        assert {assign_split(name, f"k{i}", 0.05) for i in range(50)} == {"test"}
    splits = [assign_split("p", f"file{i}", 0.2) for i in range(400)]
    assert 40 < splits.count("valid") < 120 and "test" not in splits
    assert cut_segments(70 * SR, SR, 30) == [(0, 514500), (514500, 1029000), (1029000, 1543500)]


# -- sound effects ---------------------------------------------------------------------------------

def test_sfx_build_skips_bad_inputs_and_keeps_reserved_out_of_training(tmp_path, game):
    reserved = next(iter(sorted(RESERVED_DEBIAN_PACKAGES)))
    held = _package(tmp_path / "pkgs", reserved, {"usr/share/games/x/sounds/fire_01.wav": _noise(0.7, 44100),
                                                  "usr/share/games/x/sounds/fire_02.wav": _noise(0.7, 44100, seed=9)})
    empty = tmp_path / "pkgs" / "empty-data"
    (empty / "usr/share/doc").mkdir(parents=True)
    out = tmp_path / "sfx"
    lines = []
    card = build_sfx(out, ["fakegame-data", reserved, "empty-data", "missing-data"],
                     roots={"fakegame-data": game, reserved: held, "empty-data": empty,
                            "missing-data": tmp_path / "nowhere"}, echo=lines.append)
    entries = read_manifest(out / "manifest.jsonl")
    origins = {e.origin.rsplit("/", 1)[-1] for e in entries}
    assert {"lumber_tree_06.wav", "arrow_stone_02.ogg", "wolf_die1.wav"} <= origins
    rain = [e for e in entries if "rain_long" in e.origin]
    assert len(rain) == 3 and all(e.duration_s <= 30 for e in rain)  # 70 s -> three segments
    assert all(e.sample_rate == SR and e.license == "CC0-1.0" for e in entries if e.source == "fakegame-data")
    for e in entries:
        x, sr = sf.read(e.path)
        assert sr == SR and x.ndim == 1 and np.abs(x).max() < 1.0 and np.abs(x).max() > 0.01
        assert len(e.captions) >= 2
    lumber = next(e for e in entries if "lumber" in e.origin)
    assert lumber.captions[0] == "chopping wood, an axe hitting a tree"
    # the reserved package is only ever "test"
    assert {e.split for e in entries if e.source == reserved} == {"test"}
    assert not [e for e in entries if e.split in ("train", "valid") and e.source in RESERVED_DEBIAN_PACKAGES]
    report = (out / "report.txt").read_text()
    for needle in ("corrupt_01.wav: cannot decode", "silence_01.wav: silent", "x_01.wav: empty caption",
                   "empty-data: (package): no audio files", "skip package missing-data"):
        assert needle in report
    assert "hello.wav" not in {e.origin for e in entries} and "theme.ogg" not in report  # filtered quietly
    assert card["sources"][reserved]["splits"] == {"test": 2}
    assert (out / "card.md").read_text().startswith("# Data card")


def test_sfx_rerun_resumes_without_redoing_work(tmp_path, game, monkeypatch):
    out = tmp_path / "sfx"
    calls = []
    real = sfx_mod._process

    def interrupt_after_two(*args, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[1].rel)
        return real(*args, **kw)

    monkeypatch.setattr(sfx_mod, "_process", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_sfx(out, ["fakegame-data"], roots={"fakegame-data": game}, echo=None)
    assert (out / "parts" / "fakegame-data.partial.jsonl").is_file()

    redone = []
    monkeypatch.setattr(sfx_mod, "_process", lambda *a, **k: (redone.append(a[1].rel), real(*a, **k))[1])
    build_sfx(out, ["fakegame-data"], roots={"fakegame-data": game}, echo=None)
    assert redone and not set(redone) & set(calls)  # the two finished files were not decoded again
    resumed = list(redone)
    first = read_manifest(out / "manifest.jsonl")
    mtimes = {e.path: (tmp_path / e.path).stat().st_mtime_ns for e in first}

    redone.clear()
    build_sfx(out, ["fakegame-data"], roots={"fakegame-data": game}, echo=None)
    assert redone == []
    assert {e.path: (tmp_path / e.path).stat().st_mtime_ns for e in read_manifest(out / "manifest.jsonl")} == mtimes
    with pytest.raises(BuildError):
        build_sfx(out, ["fakegame-data"], roots={"fakegame-data": game}, valid_fraction=0.5, echo=None)
    redone.clear()  # --force: other settings start again from scratch
    build_sfx(out, ["fakegame-data"], roots={"fakegame-data": game}, valid_fraction=0.5, force=True, echo=None)
    assert sorted(redone) == sorted(calls + resumed)
    assert len(read_manifest(out / "manifest.jsonl")) == len(first)


# -- music -----------------------------------------------------------------------------------------

def test_melody_labels_follow_the_top_voice_per_frame():
    mel = MelConfig()
    parts = [[NoteEvent(0.0, 1.0, 72), NoteEvent(1.0, 1.0, 74), NoteEvent(3.0, 1.0, 76)],
             [NoteEvent(0.0, 4.0, 48)]]
    frames = int(4 * 0.5 * SR) // mel.hop_length  # 4 quarters at 120 bpm = 2 s
    pitch = melody_pitch(parts, 120.0, frames, mel)
    t = (np.arange(frames) + 0.5) * mel.hop_length / SR  # frame centres in seconds
    expected = np.where(t < 0.5, 72, np.where(t < 1.0, 74, np.where(t < 1.5, -1, 76)))
    assert np.array_equal(pitch, expected)
    chroma = chroma_of(pitch)
    assert chroma.shape == (12, frames) and chroma[0, 0] == 1 and chroma[:, t.searchsorted(1.2)].sum() == 0
    assert estimate_key([[NoteEvent(i, 1.0, p) for i, p in enumerate([60, 64, 67, 72, 62, 65, 59, 60])]]) == "C major"


def test_music_missing_soundfont_and_bad_score_are_report_lines(tmp_path):
    card = build_music(tmp_path / "m1", hours=0.01, soundfonts=[str(tmp_path / "missing.sf2")], echo=None)
    assert card["clips"] == 0
    assert "skip soundfont" in (tmp_path / "m1" / "report.txt").read_text()
    assert (tmp_path / "m1" / "manifest.jsonl").read_text() == ""

    pytest.importorskip("music21")
    bad = tmp_path / "bad.abc"
    bad.write_text("this is not ABC notation at all")
    font = tmp_path / "font.sf2"
    font.write_bytes(b"not a soundfont either")
    pieces = {"essen": [MusicPiece("essen", str(bad), 0, "a folk song")]}
    card = build_music(tmp_path / "m2", hours=0.01, collections=("essen",), soundfonts=[str(font)],
                       pieces=pieces, batch_size=2, echo=None)
    assert card["clips"] == 0
    report = (tmp_path / "m2" / "report.txt").read_text()
    assert "cannot read score" in report and "stop:" in report


@needs_fluidsynth
def test_music_render_has_aligned_melody_labels(tmp_path):
    pytest.importorskip("music21")
    from audiodiff.data.music import DEFAULT_SOUNDFONT, list_pieces

    if not DEFAULT_SOUNDFONT.is_file():
        pytest.skip("fluid-soundfont-gm is not installed")
    pieces = {"essen": list_pieces("essen")[:3]}
    card = build_music(tmp_path / "m", hours=0.002, collections=("essen",), soundfonts=[str(DEFAULT_SOUNDFONT)],
                       pieces=pieces, batch_size=2, max_piece_s=6.0, echo=None)
    assert card["clips"] >= 1
    for e in read_manifest(tmp_path / "m" / "manifest.jsonl"):
        x, sr = sf.read(e.path)
        melody = np.load(e.melody)
        pitch = np.load(e.melody.replace(".melody.npy", ".pitch.npy"))
        assert sr == SR and melody.shape == (12, len(x) // 256) and pitch.shape == (len(x) // 256,)
        assert (pitch >= 0).mean() > 0.5 and "folk song" in e.captions[0]
        assert np.array_equal(melody.argmax(0)[pitch >= 0], pitch[pitch >= 0] % 12)
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "m" / "clips").rglob("*.flac"))
    build_music(tmp_path / "m", hours=0.002, collections=("essen",), soundfonts=[str(DEFAULT_SOUNDFONT)],
                pieces=pieces, batch_size=2, max_piece_s=6.0, echo=None)
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "m" / "clips").rglob("*.flac")) == before


# -- synth, folder, features, export, CLI -----------------------------------------------------------

def test_relative_output_folder_gives_readable_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_synth("rel/synth", per_class=1, duration_s=0.3, labels=["hum"], echo=None)
    (entry,) = read_manifest(tmp_path / "rel" / "synth" / "manifest.jsonl")
    assert _lines(tmp_path / "rel" / "synth" / "manifest.jsonl")[0]["path"] == "clips/synth/hum-00000.flac"
    assert sf.info(entry.path).samplerate == SR


def test_synth_builder_is_deterministic_and_extends(tmp_path):
    build_synth(tmp_path / "s", per_class=1, duration_s=0.5, echo=None)
    first = read_manifest(tmp_path / "s" / "manifest.jsonl")
    assert len(first) == 7 and all(e.captions for e in first)
    build_synth(tmp_path / "s", per_class=2, duration_s=0.5, echo=None)
    second = read_manifest(tmp_path / "s" / "manifest.jsonl")
    assert len(second) == 14 and {e.path for e in first} <= {e.path for e in second}
    build_synth(tmp_path / "t", per_class=1, duration_s=0.5, echo=None)
    a, b = sorted(e.path for e in first), sorted(e.path for e in read_manifest(tmp_path / "t" / "manifest.jsonl"))
    assert all(np.array_equal(sf.read(x)[0], sf.read(y)[0]) for x, y in zip(a, b))


def test_folder_builder_resamples_and_reports(tmp_path):
    src = tmp_path / "mine"
    src.mkdir()
    sf.write(src / "door.wav", _noise(0.5, 48000), 48000)
    sf.write(src / "long.flac", _noise(40, 16000, 0.1), 16000)
    (src / "broken.wav").write_bytes(b"RIFFxxxxWAVE")
    (src / "metadata.csv").write_text("file_name,caption\ndoor.wav,a door slams\nlong.flac,rain on a roof\n"
                                      "long.flac,\n")
    card = build_folder(tmp_path / "out", src, license="CC0-1.0", echo=None)
    entries = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert card["clips"] == 3 and len(entries) == 3  # long.flac -> two segments of 20 s
    assert {e.captions for e in entries} == {("a door slams",), ("rain on a roof",)}
    assert all(sf.info(e.path).samplerate == SR for e in entries)
    assert "broken.wav" in (tmp_path / "out" / "report.txt").read_text()
    (tmp_path / "nothing").mkdir()
    card = build_folder(tmp_path / "out2", tmp_path / "nothing", echo=None)
    assert card["clips"] == 0 and "no audio clips" in (tmp_path / "out2" / "report.txt").read_text()


def test_feature_cache_matches_the_mel_definition_and_export_fits(tmp_path):
    build_synth(tmp_path / "s", per_class=3, duration_s=1.0, echo=None)
    manifest = tmp_path / "s" / "manifest.jsonl"
    build_feature_cache([manifest], tmp_path / "f", shard_mib=0.05, echo=None)
    build_feature_cache([manifest], tmp_path / "f", shard_mib=0.05, echo=None)  # rerun adds nothing
    shards = FeatureShards(tmp_path / "f")
    entries = read_manifest(manifest)
    assert len(shards) == len(entries) and len(list((tmp_path / "f").glob("mels-*.safetensors"))) > 1
    item = shards[0]
    wav, _ = load_audio(item["path"], sample_rate=SR, mono=True)
    expected = normalize_mel(MelSpectrogram(MelConfig())(wav), MelConfig())
    assert item["mel"].shape == expected.shape == (1, 80, wav.shape[-1] // 256)
    assert torch.allclose(item["mel"], expected, atol=2e-3)
    for dtype, tol in (("float16", 2e-3), ("uint8", 5e-3)):
        info = export_compact(tmp_path / "f", tmp_path / f"e-{dtype}", max_mib=0.2, max_clip_s=0.5,
                              dtype=dtype, echo=None)
        assert 0 < info["clips"] <= len(entries) and info["mib"] <= 0.2
        exported = FeatureShards(tmp_path / f"e-{dtype}")
        clip = exported[0]
        original = next(shards[i] for i in range(len(shards)) if shards[i]["origin"] == clip["origin"])
        assert clip["mel"].shape[-1] == 43 and clip["captions"] == original["captions"]
        assert (clip["mel"] - original["mel"][..., :43]).abs().max() < tol
        assert len(_lines(tmp_path / f"e-{dtype}" / "clips.jsonl")) == info["clips"]


def test_prepare_all_trains_on_the_synth_corpus_too(tmp_path, monkeypatch):
    """`prepare all` builds the synth corpus beside effects and music and caches all three: the
    evaluator's sweeps, hums, drones and noises need training examples (stand-ins here for the
    sfx and music builders, which download packages and render scores)."""
    import audiodiff.data.local_corpora as local
    import audiodiff.data.music_corpus as music_mod

    real_synth = local.build_synth
    monkeypatch.setattr(sfx_mod, "build_sfx", lambda out, **kw: real_synth(out, per_class=1, duration_s=0.5,
                                                                           labels=["clicks"], echo=None))
    monkeypatch.setattr(music_mod, "build_music", lambda out, **kw: real_synth(out, per_class=1, duration_s=0.5,
                                                                               labels=["beep"], echo=None))
    monkeypatch.setattr(local, "build_synth", lambda out, **kw: real_synth(out, per_class=1, duration_s=0.5,
                                                                           echo=None))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["prepare", "all", "--out", str(tmp_path / "c"), "--max-mib", "1"])
    args.func(args)
    cached = FeatureShards(tmp_path / "c" / "features")
    folders = [Path(c["path"]).relative_to(tmp_path / "c").parts[0] for c in cached.clips]
    assert set(folders) == {"sfx", "music", "synth"}
    assert folders.count("synth") == len(read_manifest(tmp_path / "c" / "synth" / "manifest.jsonl")) == 7
    assert len(FeatureShards(tmp_path / "c" / "export")) == len(cached)


def test_prepare_cli_and_data_card(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["prepare", "synth", "--out", str(tmp_path / "s"), "--per-class", "1",
                              "--duration-s", "0.3", "--classes", "hum,beep"])
    args.func(args)
    assert len(read_manifest(tmp_path / "s" / "manifest.jsonl")) == 2
    assert "synth corpus: 2 clips" in capsys.readouterr().out
    card = data_card("x", [{"source": "a", "duration_s": 3600.0, "split": "train", "license": "CC0",
                            "labels": ["rain"]}])
    assert card["hours"] == 1.0 and card["sources"]["a"]["labels"] == {"rain": 1}
