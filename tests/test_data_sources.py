"""Data sources: espeak-ng speech, music21 + fluidsynth music, Debian packages.

Tests needing an external program skip with the reason when it is missing. Everything is
cached in a per-test folder, never in the repository or the user's cache.
"""

import shutil

import numpy as np
import pytest
import soundfile as sf

from audiodiff.data import debian as debian_mod
from audiodiff.data import (
    ENGLISH_SENTENCES, ENGLISH_VOICES, DebianPackageError, NoteEvent, ReservedSourceError,
    SpeechSynthesisError, Track, debian_package, fetch_debian_package, find_audio_files,
    list_pieces, render_piece, sample_music, synthesize_speech, write_midi,
)
from audiodiff.data.debian import MARKER_NAME, parse_copyright_licence

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None, reason="fluidsynth is not installed (apt-get install fluidsynth)")
needs_apt = pytest.mark.skipif(
    shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
    reason="apt-get/dpkg-deb are not available (not a Debian-based system)")


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def _midi_programs(path):
    """Program-change values per track, read back with music21's MIDI reader (not ours)."""
    midi = pytest.importorskip("music21.midi")
    mf = midi.MidiFile()
    mf.open(str(path))
    mf.read()
    mf.close()
    return [[e.data for e in t.events if e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE]
            for t in mf.tracks]


# -- speech ---------------------------------------------------------------------------------

def test_sentences_and_voices_are_varied():
    assert len(set(ENGLISH_SENTENCES)) == len(ENGLISH_SENTENCES) >= 30
    assert len(set(ENGLISH_VOICES)) >= 10


@needs_espeak
def test_speech_is_non_silent_with_plausible_length(tmp_path):
    path = synthesize_speech("Please close the window before the rain starts.",
                             tmp_path / "a.wav", voice="en-us+f3", speed=160)
    x, sr = sf.read(path)
    assert sr == 22050 and x.ndim == 1
    assert 1.0 < len(x) / sr < 6.0  # nine words at 160 words per minute: about 3 s
    assert _rms(x) > 0.01


@needs_espeak
def test_speech_errors_are_clear(tmp_path):
    with pytest.raises(SpeechSynthesisError, match="voice"):
        synthesize_speech("hello", tmp_path / "a.wav", voice="xx-no-such-voice")
    with pytest.raises(SpeechSynthesisError, match="empty"):
        synthesize_speech("   ", tmp_path / "b.wav")
    assert not list(tmp_path.iterdir())  # no partial files left behind


def test_missing_espeak_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SpeechSynthesisError, match="espeak-ng was not found"):
        synthesize_speech("hello", tmp_path / "a.wav")


# -- music ----------------------------------------------------------------------------------

def test_midi_writer_round_trips_through_music21(tmp_path):
    converter = pytest.importorskip("music21.converter")
    notes = (NoteEvent(0.0, 1.0, 60, 90), NoteEvent(1.0, 0.5, 62), NoteEvent(1.5, 0.5, 64))
    path = tmp_path / "x.mid"
    path.write_bytes(write_midi([Track("melody", 73, notes), Track("bass", 42, notes[:1])],
                                tempo_bpm=100))
    assert _midi_programs(path) == [[], [73], [42]]
    score = converter.parse(path)
    assert [n.pitch.midi for n in score.parts[0].flatten().notes] == [60, 62, 64]
    assert score.metronomeMarkBoundaries()[0][2].number == 100
    with pytest.raises(ValueError, match="program"):
        Track("bad", 128, notes)


@needs_fluidsynth
def test_chorale_render_has_instrument_and_sound(tmp_path):
    pytest.importorskip("music21")
    chorale = list_pieces("bach-chorales")[0]
    r = render_piece(chorale, "church organ", tempo_bpm=80, max_duration_s=3.0, cache_dir=tmp_path)
    assert r.caption == "a Bach chorale played on a church organ"
    assert set(r.programs) == {19} and len(r.programs) >= 4
    tracks = _midi_programs(r.midi_path)
    assert [p for t in tracks for p in t] == list(r.programs)  # one program change per part
    x, sr = sf.read(r.wav_path)
    assert sr == 22050 and _rms(x) > 0.005
    assert 3.0 <= len(x) / sr < 8.0  # 3 s of notes plus the release tail


@needs_fluidsynth
def test_music_is_deterministic_for_a_seed(tmp_path):
    pytest.importorskip("music21")
    a = sample_music(2, seed=7, max_duration_s=2.0, cache_dir=tmp_path / "a")
    b = sample_music(2, seed=7, max_duration_s=2.0, cache_dir=tmp_path / "b")
    assert [r.caption for r in a] == [r.caption for r in b]
    assert [r.piece.collection for r in a] == ["bach-chorales", "essen"]
    for ra, rb in zip(a, b):
        assert ra.midi_path.read_bytes() == rb.midi_path.read_bytes()
        np.testing.assert_array_equal(sf.read(ra.wav_path)[0], sf.read(rb.wav_path)[0])
    # the folk tune is a single part on the solo instrument named in the caption
    assert len(a[1].programs) == 1 and _midi_programs(a[1].midi_path)[1] == list(a[1].programs)


def test_reserved_oneills_collection_is_refused(tmp_path):
    pytest.importorskip("music21")
    with pytest.raises(ReservedSourceError, match="reserved for evaluation"):
        list_pieces("oneills1850")
    with pytest.raises(ReservedSourceError):
        sample_music(1, seed=0, collections=("oneills1850",), cache_dir=tmp_path)
    # evaluation code may opt in explicitly
    assert len(list_pieces("oneills1850", allow_reserved=True)) > 1000


# -- Debian packages ------------------------------------------------------------------------

def test_find_audio_files(tmp_path):
    for name in ("a/x.wav", "a/b/y.FLAC", "z.ogg", "bell.oga", "notes.txt", "c.mp3"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "broken.wav").symlink_to(tmp_path / "missing.wav")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a/b/y.FLAC", "a/x.wav", "bell.oga", "c.mp3", "z.ogg"]
    assert [p.name for p in find_audio_files(tmp_path, exts=("wav",))] == ["x.wav"]


def test_licence_parsing():
    dep5 = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
            "Files: sounds/*\nLicense: CC0-1.0\n Public domain dedication.\n\n"
            "License: GPL-2+\n The full text.\n")
    assert parse_copyright_licence(dep5) == "GPL-2+, CC0-1.0"
    assert parse_copyright_licence("Released under the GNU General Public License, "
                                   "version 2 or later.") == "GPL-2+"
    assert parse_copyright_licence("All rights reserved.") == "unknown"


def test_bad_package_names_are_refused(tmp_path):
    for bad in ("-o foo", "Foo", "a", "x;rm"):
        with pytest.raises(DebianPackageError, match="not a valid"):
            fetch_debian_package(bad, cache_dir=tmp_path)


@needs_apt
def test_fetch_debian_package_is_idempotent(tmp_path, monkeypatch):
    try:
        pkg = debian_package("sound-theme-freedesktop", cache_dir=tmp_path)
    except DebianPackageError as err:
        if any(s in str(err) for s in ("Failed to fetch", "Temporary failure", "Could not resolve")):
            pytest.skip(f"no access to a Debian mirror: {err}")
        raise
    root = tmp_path / "debian" / "sound-theme-freedesktop"
    assert pkg.root == root and (root / MARKER_NAME).is_file()
    assert len(find_audio_files(root)) >= 20
    assert "CC-BY-SA-3.0" in pkg.licence and pkg.version and not pkg.reserved

    # A completed package is returned without running apt-get or dpkg-deb again ...
    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached package must not be fetched again")

    with monkeypatch.context() as m:
        m.setattr(debian_mod.subprocess, "run", no_subprocess)
        assert fetch_debian_package("sound-theme-freedesktop", cache_dir=tmp_path) == root

    # ... while a half-finished extraction (no marker) is redone from scratch.
    (root / MARKER_NAME).unlink()
    (root / "leftover-from-a-crash").write_text("x")
    assert fetch_debian_package("sound-theme-freedesktop", cache_dir=tmp_path) == root
    assert (root / MARKER_NAME).is_file() and not (root / "leftover-from-a-crash").exists()


@needs_apt
def test_unknown_package_is_a_clear_error(tmp_path):
    with pytest.raises(DebianPackageError, match="no-such-package-audiodiff"):
        fetch_debian_package("no-such-package-audiodiff", cache_dir=tmp_path)
    assert not (tmp_path / "debian" / "no-such-package-audiodiff").exists()


def test_missing_apt_get_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(debian_mod.shutil, "which", lambda name: None)
    with pytest.raises(DebianPackageError, match="apt-get"):
        fetch_debian_package("sound-theme-freedesktop", cache_dir=tmp_path)
