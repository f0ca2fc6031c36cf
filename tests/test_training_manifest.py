"""The manifest format and scanning a user's folder of captioned clips."""

from __future__ import annotations

import json
import re

import pytest
import torch

from audiodiff.audio import save_audio
from audiodiff.data.manifest import (
    ManifestEntry,
    ManifestError,
    read_manifest,
    scan_folder,
    split_of,
    write_manifest,
)


def _clip(path, seconds=0.2, sr=8000):
    save_audio(path, 0.1 * torch.randn(1, int(seconds * sr)), sr)
    return path


def _entry(path, **kw):
    base = dict(path=str(path), captions=("rain on a roof",), duration_s=1.5, sample_rate=22050,
                source="user", license="CC0-1.0", split="train")
    return ManifestEntry(**{**base, **kw})


def test_round_trip_stores_relative_paths(tmp_path):
    clip = tmp_path / "clips" / "a.wav"
    outside = tmp_path.parent / "elsewhere.wav"
    entries = [_entry(clip, captions=("rain", "rain falling"), melody=str(tmp_path / "clips" / "a.npy")),
               _entry(outside, split="valid")]
    path = write_manifest(tmp_path / "manifest.jsonl", entries)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["path"] == "clips/a.wav" and lines[0]["melody"] == "clips/a.npy"
    assert lines[1]["path"] == str(outside) and "melody" not in lines[1]
    back = read_manifest(path)
    assert back == entries
    assert read_manifest(path, split="valid") == entries[1:]


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ('{"path": "a.wav"}', "line 2: missing fields"),
    ('{"path": "a.wav", "captions": ["x"], "duration_s": 1, "sample_rate": 8000, "source": "user", '
     '"license": "x", "split": "train", "mood": "happy"}', "unknown fields ['mood']"),
    ('{"path": "a.wav", "captions": [], "duration_s": 1, "sample_rate": 8000, "source": "user", '
     '"license": "x", "split": "train"}', "line 2: captions must hold at least one"),
    ('{"path": "a.wav", "captions": "x", "duration_s": 1, "sample_rate": 8000, "source": "user", '
     '"license": "x", "split": "train"}', "captions must be a list"),
    ('{"path": "a.wav", "captions": ["x"], "duration_s": -1, "sample_rate": 8000, "source": "user", '
     '"license": "x", "split": "train"}', "duration_s must be a positive"),
    ('{"path": "a.wav", "captions": ["x"], "duration_s": 1, "sample_rate": 8000, "source": "user", '
     '"license": "x", "split": "training"}', "split must be one of"),
])
def test_bad_lines_name_the_line(tmp_path, line, message):
    good = _entry(tmp_path / "a.wav").to_json()
    path = tmp_path / "m.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ManifestError, match=re.escape(message)):
        read_manifest(path)


def test_missing_manifest_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_scan_folder_caption_sources(tmp_path):
    _clip(tmp_path / "a.wav")
    _clip(tmp_path / "sub" / "b.flac")
    _clip(tmp_path / "c.wav")
    _clip(tmp_path / "dog_bark_01.wav")
    (tmp_path / "metadata.csv").write_text("file_name,caption\na.wav,a soft click\na.wav,one click\n")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "sub/b.flac", "captions": ["wind", "gusts"],
                                                         "license": "CC-BY-4.0"}) + "\n")
    (tmp_path / "c.txt").write_text("a bell\n\na ringing bell\n")
    with pytest.warns(UserWarning, match="file names were used"):
        entries = scan_folder(tmp_path, valid_fraction=0.0)
    by_name = {e.path.rsplit("/", 1)[-1]: e for e in entries}
    assert by_name["a.wav"].captions == ("a soft click", "one click")
    assert by_name["b.flac"].captions == ("wind", "gusts") and by_name["b.flac"].license == "CC-BY-4.0"
    assert by_name["c.wav"].captions == ("a bell", "a ringing bell")
    assert by_name["dog_bark_01.wav"].captions == ("dog bark",)
    assert by_name["a.wav"].sample_rate == 8000 and by_name["a.wav"].duration_s == pytest.approx(0.2)
    assert all(e.source == "user" and e.split == "train" for e in entries)


@pytest.mark.filterwarnings("ignore:.*file names were used")
def test_split_is_deterministic_by_path_and_has_a_valid_clip(tmp_path):
    names = [f"clip_{i:03d}.wav" for i in range(40)]
    for n in names:
        _clip(tmp_path / n, seconds=0.05)
    first = scan_folder(tmp_path, valid_fraction=0.1)
    again = scan_folder(tmp_path, valid_fraction=0.1)
    assert [e.split for e in first] == [e.split for e in again]
    assert [e.split for e in first] == [split_of(n, 0.1) for n in names]
    assert 0 < sum(e.split == "valid" for e in first) < 40
    # Adding files never moves existing ones between splits.
    _clip(tmp_path / "zzz_new.wav", seconds=0.05)
    grown = {e.path: e.split for e in scan_folder(tmp_path, valid_fraction=0.1)}
    assert all(grown[e.path] == e.split for e in first)
    # A tiny folder still gets one validation clip.
    small = tmp_path / "small"
    for n in ("x.wav", "y.wav", "z.wav"):
        _clip(small / n, seconds=0.05)
    assert sum(e.split == "valid" for e in scan_folder(small, valid_fraction=0.05)) == 1


def test_folder_without_clips_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(ManifestError, match="no audio clips found"):
        scan_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        scan_folder(tmp_path / "missing")


def test_unreadable_files_are_skipped_with_a_warning(tmp_path):
    _clip(tmp_path / "good.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    (tmp_path / "good.txt").write_text("a good clip\n")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        entries = scan_folder(tmp_path)
    assert [e.captions for e in entries] == [("a good clip",)]


def test_bad_metadata_csv(tmp_path):
    _clip(tmp_path / "a.wav")
    (tmp_path / "metadata.csv").write_text("name,text\na.wav,x\n")
    with pytest.raises(ManifestError, match="file_name and caption"):
        scan_folder(tmp_path)
