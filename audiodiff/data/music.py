"""Captioned music rendered from music21's corpus (BSD-3) with fluidsynth and a GM soundfont.

Parsing a score with music21 is slow (~0.5 s a chorale), so each piece is parsed once into a
list of notes cached as JSON. From the notes, an explicit General MIDI program per part and a
tempo, a small standard MIDI file is written by :mod:`audiodiff.data.midi` (cached), then
rendered with ``fluidsynth`` (~0.5 s for 25 s of audio). Every choice (piece, ensemble, tempo)
comes from a seeded ``random.Random``, so a seed always gives the same files and captions.

The note lists are exact labels (pitch and timing per note) for melody conditioning later.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from audiodiff.data.cache import atomic_write_bytes, cache_root
from audiodiff.data.midi import NoteEvent, Track, write_midi
from audiodiff.data.reserved import check_not_reserved_collection

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
COLLECTIONS: tuple[str, ...] = ("bach-chorales", "essen", "oneills1850")


class MusicRenderError(RuntimeError):
    """music21, fluidsynth or the soundfont is missing, or rendering failed."""


@dataclass(frozen=True)
class Ensemble:
    """General MIDI programs (0-based) for the parts, top part first; the last one repeats."""

    name: str
    programs: tuple[int, ...]
    phrase: str  # completes "a Bach chorale ..."


# Ensembles for polyphonic pieces (chorales: soprano, alto, tenor, bass, sometimes more).
ENSEMBLES: dict[str, Ensemble] = {e.name: e for e in (
    Ensemble("church organ", (19,), "played on a church organ"),
    Ensemble("piano", (0,), "played on a piano"),
    Ensemble("harpsichord", (6,), "played on a harpsichord"),
    Ensemble("string quartet", (40, 40, 41, 42), "played by a string quartet"),
    Ensemble("string ensemble", (48,), "played by a string ensemble"),
    Ensemble("woodwind quartet", (73, 68, 71, 70), "played by flute, oboe, clarinet and bassoon"),
    Ensemble("brass quartet", (56, 56, 60, 57), "played by a brass quartet"),
    Ensemble("choir", (52,), "sung by a choir"),
    Ensemble("classical guitar", (24,), "played on a classical guitar"),
    Ensemble("vibraphone", (11,), "played on a vibraphone"),
    Ensemble("accordion", (21,), "played on an accordion"),
    Ensemble("flute and strings", (73, 48), "played by a flute with strings"),
)}

# Solo instruments for monophonic folk tunes.
SOLO_INSTRUMENTS: dict[str, Ensemble] = {e.name: e for e in (
    Ensemble("flute", (73,), "played on a flute"),
    Ensemble("recorder", (74,), "played on a recorder"),
    Ensemble("violin", (40,), "played on a violin"),
    Ensemble("fiddle", (110,), "played on a fiddle"),
    Ensemble("clarinet", (71,), "played on a clarinet"),
    Ensemble("oboe", (68,), "played on an oboe"),
    Ensemble("piano", (0,), "played on a piano"),
    Ensemble("acoustic guitar", (24,), "played on an acoustic guitar"),
    Ensemble("accordion", (21,), "played on an accordion"),
    Ensemble("harmonica", (22,), "played on a harmonica"),
    Ensemble("trumpet", (56,), "played on a trumpet"),
    Ensemble("pan flute", (75,), "played on a pan flute"),
    Ensemble("music box", (10,), "played on a music box"),
    Ensemble("xylophone", (13,), "played on a xylophone"),
    Ensemble("harp", (46,), "played on a harp"),
    Ensemble("cello", (42,), "played on a cello"),
)}

# Essen "O:" (origin) lines are German: the first country named gives the caption's adjective.
_ESSEN_REGIONS = (("China", "Chinese"), ("Luxemburg", "Luxembourgish"), ("Lothringen", "Lorraine"),
                  ("Irland", "Irish"), ("Deutschland", "German"), ("Niederlande", "Dutch"),
                  ("Schweiz", "Swiss"), ("Oesterreich", "Austrian"), ("Frankreich", "French"),
                  ("Polen", "Polish"), ("Ungarn", "Hungarian"), ("Tschechoslowakei", "Czech"),
                  ("UdSSR", "Russian"), ("Europa", "European"))
_ESSEN_SKIP = re.compile(r"^(test|variant)")
_CHORALE_RE = re.compile(r"^bwv(\d+\.\d+|2[5-9]\d|3\d\d|4[0-3]\d)\.mxl$")


@dataclass(frozen=True)
class MusicPiece:
    """One piece of a collection: ``source`` is a path relative to music21's corpus folder;
    ``number`` is the tune's index inside an ABC file holding many tunes."""

    collection: str
    source: str
    number: int | None = None
    description: str = ""  # e.g. "a Bach chorale", "a Chinese folk song"

    @property
    def piece_id(self) -> str:
        stem = Path(self.source).stem
        return f"{self.collection}/{stem}" + ("" if self.number is None else f"/{self.number}")

    @property
    def polyphonic(self) -> bool:
        return self.collection == "bach-chorales"


@dataclass(frozen=True)
class RenderedMusic:
    wav_path: Path
    midi_path: Path
    caption: str
    piece: MusicPiece
    ensemble: str
    programs: tuple[int, ...]
    tempo_bpm: float
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["wav_path"], d["midi_path"] = str(self.wav_path), str(self.midi_path)
        d["piece_id"] = self.piece.piece_id
        d["licence"] = "BSD-3-Clause (music21 corpus)"
        return d


def _corpus_dir() -> Path:
    try:
        import music21
    except ImportError as exc:  # pragma: no cover - exercised only without music21
        raise MusicRenderError("music21 is not installed; pip install music21") from exc
    return Path(music21.__file__).parent / "corpus"


def _abc_tunes(path: Path) -> list[str]:
    """Split an ABC file into tunes (each from its ``X:`` line), keeping the file header."""
    text = path.read_text(encoding="latin-1")
    starts = [m.start() for m in re.finditer(r"^X:", text, flags=re.MULTILINE)]
    header = text[: starts[0]] if starts else ""
    return [header + text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _essen_region(tune: str) -> str:
    origin = re.search(r"^O:(.*)$", tune, flags=re.MULTILINE)
    line = origin.group(1) if origin else ""
    for key, adjective in _ESSEN_REGIONS:
        if key in line:
            return adjective
    return "European"


def _folk_description(region: str) -> str:
    if region == "Lorraine":
        return "a folk song from Lorraine"
    return f"{'an' if region[0] in 'AEIOU' else 'a'} {region} folk song"


def list_pieces(collection: str, allow_reserved: bool = False) -> list[MusicPiece]:
    """All pieces of ``collection`` ("bach-chorales", "essen" or, for evaluation only, the
    reserved "oneills1850"), in a fixed order."""
    check_not_reserved_collection(collection, allow_reserved)
    root = _corpus_dir()
    if collection == "bach-chorales":
        return [MusicPiece(collection, f"bach/{p.name}", None, "a Bach chorale")
                for p in sorted((root / "bach").iterdir()) if _CHORALE_RE.match(p.name)]
    if collection in ("essen", "oneills1850"):
        folder = "essenFolksong" if collection == "essen" else "oneills1850"
        pieces = []
        for path in sorted((root / folder).glob("*.abc")):
            if collection == "essen" and _ESSEN_SKIP.match(path.name):
                continue
            for i, tune in enumerate(_abc_tunes(path)):
                desc = (_folk_description(_essen_region(tune)) if collection == "essen"
                        else "an Irish traditional tune")
                pieces.append(MusicPiece(collection, f"{folder}/{path.name}", i, desc))
        return pieces
    raise ValueError(f"unknown music collection {collection!r}; known: {', '.join(COLLECTIONS)}")


# -- notes ----------------------------------------------------------------------------------

def piece_notes(piece: MusicPiece, cache_dir: str | os.PathLike[str] | None = None,
                allow_reserved: bool = False) -> list[list[NoteEvent]]:
    """The piece's notes per part (top part first), timed in quarter notes; cached as JSON."""
    check_not_reserved_collection(piece.collection, allow_reserved)
    cache = cache_root(cache_dir) / "music" / "notes" / (piece.piece_id.replace("/", "__") + ".json")
    if cache.is_file():
        return [[NoteEvent(*n) for n in part] for part in json.loads(cache.read_text())["parts"]]
    from music21 import converter, stream

    path = _corpus_dir() / piece.source
    if piece.number is None:
        score = converter.parse(path)
    else:
        score = converter.parse(_abc_tunes(path)[piece.number], format="abc")
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    parts = []
    for part in score.parts:
        events = []
        for el in part.flatten().stripTies().notes:
            if el.duration.isGrace or el.quarterLength <= 0:
                continue
            velocity = el.volume.velocity if el.volume.velocity is not None else 80
            for p in el.pitches:
                events.append(NoteEvent(float(el.offset), float(el.quarterLength), int(p.midi),
                                        int(velocity)))
        if events:
            parts.append(sorted(events))
    if not parts:
        raise MusicRenderError(f"{piece.piece_id} has no notes")
    start = min(part[0].onset for part in parts)  # drop any leading rest
    parts = [[n._replace(onset=n.onset - start) for n in part] for part in parts]
    atomic_write_bytes(cache, json.dumps({"piece": piece.piece_id, "parts": parts}).encode())
    return parts


# -- MIDI + rendering -----------------------------------------------------------------------

def _key(*items: object) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:12]


def _programs_for(ensemble: Ensemble, n_parts: int) -> tuple[int, ...]:
    progs = ensemble.programs
    return tuple(progs[min(i, len(progs) - 1)] for i in range(n_parts))


def piece_midi(piece: MusicPiece, ensemble: Ensemble, tempo_bpm: float,
               max_duration_s: float | None = None,
               cache_dir: str | os.PathLike[str] | None = None,
               allow_reserved: bool = False) -> tuple[Path, tuple[int, ...]]:
    """Write (or reuse) the MIDI file of ``piece`` for one ensemble and tempo.

    Returns the path and the GM program of each part. Notes starting after ``max_duration_s``
    are dropped and the ones crossing it are shortened, so a short clip renders quickly.
    """
    if not 20 <= tempo_bpm <= 300:
        raise ValueError(f"tempo_bpm must be 20-300, got {tempo_bpm}")
    parts = piece_notes(piece, cache_dir, allow_reserved)
    if max_duration_s is not None:
        limit_q = max_duration_s * tempo_bpm / 60.0
        parts = [[n._replace(duration=min(n.duration, limit_q - n.onset))
                  for n in part if n.onset < limit_q] for part in parts]
        parts = [p for p in parts if p]
    programs = _programs_for(ensemble, len(parts))
    key = _key(piece.piece_id, parts, programs, tempo_bpm)
    path = (cache_root(cache_dir) / "music" / "midi"
            / f"{piece.piece_id.replace('/', '__')}-{key}.mid")
    if not path.is_file():
        tracks = [Track(name=f"part {i + 1}", program=prog, notes=tuple(part))
                  for i, (part, prog) in enumerate(zip(parts, programs))]
        atomic_write_bytes(path, write_midi(tracks, tempo_bpm=tempo_bpm))
    return path, programs


def render_midi(midi_path: str | os.PathLike[str], wav_path: str | os.PathLike[str],
                soundfont: str | os.PathLike[str] = DEFAULT_SOUNDFONT, sample_rate: int = 22050,
                gain: float = 0.6) -> Path:
    """Render a MIDI file to a (stereo, 16-bit) WAV file with fluidsynth; return ``wav_path``."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise MusicRenderError("fluidsynth was not found on PATH; apt-get install fluidsynth")
    if not Path(soundfont).is_file():
        raise MusicRenderError(f"soundfont {soundfont} not found; apt-get install fluid-soundfont-gm")
    out = Path(wav_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.wav")
    cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-F", str(tmp),
           str(soundfont), str(midi_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise MusicRenderError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()}")
    os.replace(tmp, out)
    return out


def tempo_word(tempo_bpm: float) -> str:
    return "slow " if tempo_bpm < 72 else "fast " if tempo_bpm >= 126 else ""


def render_piece(piece: MusicPiece, ensemble: str | Ensemble, tempo_bpm: float,
                 max_duration_s: float | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 soundfont: str | os.PathLike[str] = DEFAULT_SOUNDFONT,
                 sample_rate: int = 22050, allow_reserved: bool = False) -> RenderedMusic:
    """Render one piece with an ensemble (a name from :data:`ENSEMBLES` / :data:`SOLO_INSTRUMENTS`
    or an :class:`Ensemble`) at a tempo; the WAV is cached next to the MIDI file."""
    if isinstance(ensemble, str):
        table = ENSEMBLES if piece.polyphonic else SOLO_INSTRUMENTS
        if ensemble not in table:
            raise ValueError(f"unknown ensemble {ensemble!r}; known: {', '.join(table)}")
        ensemble = table[ensemble]
    midi_path, programs = piece_midi(piece, ensemble, tempo_bpm, max_duration_s, cache_dir,
                                     allow_reserved)
    sf_key = _key(str(Path(soundfont).resolve()), Path(soundfont).stat().st_size
                  if Path(soundfont).is_file() else 0)
    wav_path = (cache_root(cache_dir) / "music" / "wav"
                / f"{midi_path.stem}-{sf_key}-{sample_rate}.wav")
    if not wav_path.is_file():
        render_midi(midi_path, wav_path, soundfont, sample_rate)
    caption = f"{_with_article(tempo_word(tempo_bpm), piece.description)} {ensemble.phrase}"
    return RenderedMusic(wav_path, midi_path, caption, piece, ensemble.name, programs,
                         float(tempo_bpm))


def _with_article(adjective: str, description: str) -> str:
    """Put a tempo adjective after the article: ("slow ", "a Bach chorale") -> "a slow Bach ..."."""
    if not adjective:
        return description
    rest = description.partition(" ")[2]
    return f"{'an' if adjective[0] in 'aeiou' else 'a'} {adjective}{rest}"


def sample_music(n: int, seed: int = 0, collections: tuple[str, ...] = ("bach-chorales", "essen"),
                 max_duration_s: float | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 allow_reserved: bool = False) -> list[RenderedMusic]:
    """Render ``n`` pieces chosen deterministically from ``seed``, alternating collections."""
    for c in collections:
        check_not_reserved_collection(c, allow_reserved)
    rng = random.Random(seed)
    catalogue = {c: list_pieces(c, allow_reserved) for c in collections}
    results = []
    for i in range(n):
        pieces = catalogue[collections[i % len(collections)]]
        piece = pieces[rng.randrange(len(pieces))]
        table = ENSEMBLES if piece.polyphonic else SOLO_INSTRUMENTS
        ensemble = sorted(table)[rng.randrange(len(table))]
        tempo = float(rng.randrange(56, 100, 4) if piece.polyphonic else rng.randrange(72, 152, 8))
        results.append(render_piece(piece, ensemble, tempo, max_duration_s, cache_dir,
                                    allow_reserved=allow_reserved))
    return results
