"""Rendering music21 scores for the music corpus: planning, rendering, captions, melody labels.

Scores from music21's corpus (Bach chorales, Essen folk songs; never the reserved O'Neill set)
are rendered with fluidsynth through General MIDI soundfonts, each render drawn from a seed:
piece, ensemble or solo instrument, tempo, transposition and soundfont. Every clip gets

- captions ("a slow Bach chorale in G major played on a church organ", plus paraphrases);
- frame-level melody labels stored beside it: ``NAME.pitch.npy`` (int16, MIDI pitch of the top
  voice per mel frame, -1 for a rest) and ``NAME.melody.npy`` (float16 (12, frames) one-hot
  chroma of that pitch, zero in rests; the manifest's ``melody`` field points at it). Frame i
  is the mel frame of :class:`audiodiff.audio.MelConfig` centred at (i + 0.5) * hop_length
  samples, and there are exactly T // hop_length frames for a clip of T samples.

The build loop is :mod:`audiodiff.data.music_corpus`.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import MelConfig
from .midi import NoteEvent, Track, write_midi
from .music import (DEFAULT_SOUNDFONT, ENSEMBLES, SOLO_INSTRUMENTS, Ensemble, MusicPiece, _with_article,
                    list_pieces, tempo_word)
from .reserved import check_not_reserved_collection

DEFAULT_SOUNDFONTS: tuple[str, ...] = (
    str(DEFAULT_SOUNDFONT), "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
LICENCE = "BSD-3-Clause (music21 corpus); rendered with GM soundfonts"
_KEY_NAMES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
# Krumhansl-Kessler key profiles (Krumhansl 1990, "Cognitive foundations of musical pitch").
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclasses.dataclass(frozen=True)
class RenderSpec:
    """One render: everything drawn from (seed, index)."""

    index: int
    piece: MusicPiece
    ensemble: Ensemble
    tempo_bpm: float
    transpose: int
    soundfont: str

    @property
    def item(self) -> str:
        return f"{self.index:06d}:{self.piece.piece_id}"


def estimate_key(parts: Sequence[Sequence[NoteEvent]]) -> str:
    """Key name ("D minor") by correlating duration-weighted pitch classes with key profiles."""
    hist = np.zeros(12)
    for part in parts:
        for n in part:
            hist[n.pitch % 12] += n.duration
    if hist.sum() == 0:
        return ""
    best, name = -2.0, ""
    for tonic in range(12):
        for profile, mode in ((_MAJOR, "major"), (_MINOR, "minor")):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1]
            if r > best:
                best, name = r, f"{_KEY_NAMES[tonic]} {mode}"
    return name


def melody_pitch(parts: Sequence[Sequence[NoteEvent]], tempo_bpm: float, num_frames: int,
                 mel: MelConfig) -> np.ndarray:
    """MIDI pitch of the top part at each mel frame centre, -1 where it rests: (num_frames,) int16.

    The top part is the first (soprano / the tune); where it plays a chord the highest note counts.
    """
    pitch = np.full(num_frames, -1, dtype=np.int16)
    sec_per_q = 60.0 / tempo_bpm
    hop_s = mel.hop_length / mel.sample_rate
    for n in sorted(parts[0], key=lambda n: n.pitch):  # higher notes overwrite lower ones
        a = int(np.ceil(n.onset * sec_per_q / hop_s - 0.5))
        b = int(np.ceil((n.onset + n.duration) * sec_per_q / hop_s - 0.5))
        pitch[max(a, 0):min(b, num_frames)] = n.pitch
    return pitch


def chroma_of(pitch: np.ndarray) -> np.ndarray:
    """(N,) MIDI pitches (-1 = rest) -> (12, N) float16 one-hot pitch class (C = row 0)."""
    chroma = np.zeros((12, len(pitch)), dtype=np.float16)
    voiced = pitch >= 0
    chroma[pitch[voiced] % 12, np.nonzero(voiced)[0]] = 1
    return chroma


def music_captions(spec: RenderSpec, key: str, n_parts: int) -> tuple[list[str], list[str]]:
    """(captions, labels) of a render."""
    word = tempo_word(spec.tempo_bpm)
    desc = spec.piece.description
    base = f"{_with_article(word, desc)} {spec.ensemble.phrase}"
    keyed = f"{desc}{' in ' + key if key else ''} {spec.ensemble.phrase}"
    kind = "chorale" if spec.piece.polyphonic else "folk tune"
    tempo = f"{'slow' if word == 'slow ' else 'fast' if word == 'fast ' else 'moderate'} tempo"
    voices = f"{n_parts} voices" if n_parts > 1 else "solo melody"
    captions = [base, keyed, f"{spec.ensemble.name} music: {desc}, {int(spec.tempo_bpm)} bpm",
                f"{kind}, {spec.ensemble.name}, {tempo}, {voices}" + (f", {key}" if key else "")]
    return list(dict.fromkeys(captions)), [kind, spec.ensemble.name]


class MusicPlanner:
    """Draws render specs from a seed: piece, ensemble, tempo, transposition, soundfont."""

    def __init__(self, seed: int, collections: Sequence[str], soundfonts: Sequence[str],
                 pieces: dict[str, list[MusicPiece]] | None = None):
        for c in collections:
            check_not_reserved_collection(c)
        self.seed = seed
        self.collections = list(collections)
        self.soundfonts = list(soundfonts)
        self.pieces = pieces if pieces is not None else {c: list_pieces(c) for c in collections}

    def spec(self, index: int) -> RenderSpec:
        rng = random.Random(f"{self.seed}:{index}")
        collection = self.collections[index % len(self.collections)]
        pieces = self.pieces[collection]
        piece = pieces[rng.randrange(len(pieces))]
        table = ENSEMBLES if piece.polyphonic else SOLO_INSTRUMENTS
        ensemble = table[sorted(table)[rng.randrange(len(table))]]
        tempo = float(rng.randrange(52, 112, 4) if piece.polyphonic else rng.randrange(64, 168, 8))
        transpose = rng.randint(-5, 5)
        soundfont = self.soundfonts[rng.randrange(len(self.soundfonts))]
        return RenderSpec(index, piece, ensemble, tempo, transpose, soundfont)


def _transpose(parts: list[list[NoteEvent]], shift: int) -> list[list[NoteEvent]]:
    """Shift by ``shift`` semitones, moved by octaves toward 0 if it leaves 24-100."""
    low = min(n.pitch for p in parts for n in p)
    high = max(n.pitch for p in parts for n in p)
    while shift and (low + shift < 24 or high + shift > 100):
        shift += -12 if shift > 0 else 12
        if abs(shift) > 12:
            shift = 0
    return [[n._replace(pitch=n.pitch + shift) for n in p] for p in parts]


def _trim_parts(parts: list[list[NoteEvent]], max_q: float) -> list[list[NoteEvent]]:
    """Drop notes after ``max_q`` quarter notes and shorten the ones crossing it."""
    out = [[n._replace(duration=min(n.duration, max_q - n.onset)) for n in p if n.onset < max_q]
           for p in parts]
    return [p for p in out if p]


def render_wav(tracks: list[Track], tempo_bpm: float, soundfont: str, sample_rate: int,
               workdir: Path) -> tuple[np.ndarray, int]:
    """MIDI -> fluidsynth -> (mono float32 samples, rate). Raises RuntimeError with the reason."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RuntimeError("fluidsynth was not found on PATH (apt-get install fluidsynth)")
    mid, wav = workdir / "x.mid", workdir / "x.wav"
    mid.write_bytes(write_midi(tracks, tempo_bpm=tempo_bpm))
    proc = subprocess.run([exe, "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-F", str(wav),
                           soundfont, str(mid)], capture_output=True, text=True)
    if proc.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)

