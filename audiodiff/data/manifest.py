"""The one manifest format every corpus builder writes and the trainer reads.

A manifest is a JSONL file, one clip per line::

    {"path": "clips/rain_01.flac", "captions": ["heavy rain on a roof", "rain"],
     "duration_s": 12.4, "sample_rate": 44100, "source": "sound-theme-freedesktop",
     "license": "CC-BY-SA-3.0", "split": "train", "melody": "clips/rain_01.melody.npy"}

``path`` (and the optional ``melody``) are absolute or relative to the manifest's folder;
``captions`` holds one or more paraphrases of the same sound; ``source`` names the package a clip
came from ("user" for a user's own folder); ``split`` is "train", "valid" or "test"; the optional
``origin`` says where inside the source the audio came from (``usr/share/.../arrow_02.ogg#1/3`` for
the first of three segments), for provenance and licence look-ups.

:func:`scan_folder` builds the same entries from a user's folder of audio files, with captions from
a ``metadata.csv`` (columns ``file_name``, ``caption``), a ``metadata.jsonl`` or sidecar ``.txt``
files, and a split drawn deterministically from a hash of each file's relative path, so a file
never moves between splits when others are added.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..config import atomic_write_text

SPLITS = ("train", "valid", "test")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
_FIELDS = ("path", "captions", "duration_s", "sample_rate", "source", "license", "split", "melody",
           "origin")
_REQUIRED = _FIELDS[:7]


class ManifestError(ValueError):
    """A manifest file or a folder of clips cannot be used; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """One clip of a manifest. ``path`` and ``melody`` are absolute once read by :func:`read_manifest`."""

    path: str
    captions: tuple[str, ...]
    duration_s: float
    sample_rate: int
    source: str
    license: str
    split: str = "train"
    melody: str | None = None
    origin: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ManifestError(f"path must be a non-empty string, got {self.path!r}")
        if isinstance(self.captions, str) or not isinstance(self.captions, (tuple, list)):
            raise ManifestError(f"captions must be a list of strings, got {self.captions!r}")
        captions = tuple(self.captions)
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise ManifestError(f"captions must hold at least one non-empty string, got {list(captions)!r}")
        object.__setattr__(self, "captions", tuple(c.strip() for c in captions))
        if isinstance(self.duration_s, bool) or not isinstance(self.duration_s, (int, float)) \
                or not self.duration_s > 0 or self.duration_s == float("inf"):
            raise ManifestError(f"duration_s must be a positive number of seconds, got {self.duration_s!r}")
        object.__setattr__(self, "duration_s", float(self.duration_s))
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ManifestError(f"sample_rate must be a positive integer, got {self.sample_rate!r}")
        for name in ("source", "license"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ManifestError(f"{name} must be a non-empty string, got {value!r}")
        if self.split not in SPLITS:
            raise ManifestError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.melody is not None and (not isinstance(self.melody, str) or not self.melody):
            raise ManifestError(f"melody must be a path or null, got {self.melody!r}")
        if self.origin is not None and (not isinstance(self.origin, str) or not self.origin):
            raise ManifestError(f"origin must be a string or null, got {self.origin!r}")

    def to_json(self, base: Path | None = None) -> str:
        """One JSONL line; paths inside ``base`` are written relative to it."""
        data = dataclasses.asdict(self)
        data["captions"] = list(self.captions)
        if base is not None:
            data["path"] = _relative_to(self.path, base)
            if self.melody is not None:
                data["melody"] = _relative_to(self.melody, base)
        for optional in ("melody", "origin"):
            if data[optional] is None:
                del data[optional]
        return json.dumps(data, ensure_ascii=False)


def _relative_to(path: str, base: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return p.relative_to(base.resolve()).as_posix()
    except ValueError:
        return path


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[ManifestEntry]:
    """Read a manifest; paths come back absolute. ``split`` keeps only that split's clips.

    Raises FileNotFoundError for a missing file and :class:`ManifestError` naming the line of the
    first bad entry (invalid JSON, a missing or unknown field, a bad value).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    if split is not None and split not in SPLITS:
        raise ManifestError(f"split must be one of {SPLITS}, got {split!r}")
    base = path.resolve().parent
    entries = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(data, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
            missing = [k for k in _REQUIRED if k not in data]
            unknown = sorted(set(data) - set(_FIELDS))
            if missing or unknown:
                raise ManifestError(f"{where}: missing fields {missing}, unknown fields {unknown}; "
                                    f"a manifest line holds {list(_FIELDS)}")
            try:
                entry = ManifestEntry(**data)
            except ManifestError as err:
                raise ManifestError(f"{where}: {err}") from None
            entry = dataclasses.replace(
                entry, path=_resolve(entry.path, base),
                melody=None if entry.melody is None else _resolve(entry.melody, base))
            if split is None or entry.split == split:
                entries.append(entry)
    return entries


def write_manifest(path: str | os.PathLike, entries: Iterable[ManifestEntry]) -> Path:
    """Write entries atomically (readers never see half a manifest); paths under the manifest's
    folder are stored relative to it so the folder can be moved."""
    path = Path(path)
    base = path.parent.resolve() if path.parent.exists() else path.parent.absolute()
    lines = []
    for entry in entries:
        if not isinstance(entry, ManifestEntry):
            raise TypeError(f"write_manifest takes ManifestEntry objects, got {type(entry).__name__}")
        lines.append(entry.to_json(base))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


# -- a user's own folder -----------------------------------------------------------------------

def split_of(relative_path: str, valid_fraction: float = 0.05, test_fraction: float = 0.0) -> str:
    """Deterministic split of one file from a hash of its relative path (stable across machines)."""
    u = _hash_unit(relative_path)
    if u < valid_fraction:
        return "valid"
    if u < valid_fraction + test_fraction:
        return "test"
    return "train"


def _hash_unit(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _caption_from_name(relative_path: str) -> str:
    words = re.findall(r"[a-zA-Z]+", Path(relative_path).stem)
    return " ".join(w.lower() for w in words)


def _read_metadata(folder: Path) -> dict[str, dict]:
    """Captions (and optional split / license) per relative path from metadata.csv / .jsonl."""
    meta: dict[str, dict] = {}

    def add(where: str, row: dict) -> None:
        name = row.get("file_name")
        if not name:
            raise ManifestError(f"{where}: no file_name")
        caps = row.get("captions", row.get("caption"))
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ManifestError(f"{where}: caption must be a string or a list of strings")
        item = meta.setdefault(Path(name).as_posix(), {"captions": []})
        item["captions"].extend(c for c in caps if c.strip())
        for key in ("split", "license"):
            if row.get(key):
                item[key] = row[key]

    csv_path, jsonl_path = folder / "metadata.csv", folder / "metadata.jsonl"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "file_name" not in reader.fieldnames or \
                    not {"caption", "captions"} & set(reader.fieldnames):
                raise ManifestError(f"{csv_path} needs the columns file_name and caption, "
                                    f"got {reader.fieldnames}")
            for number, row in enumerate(reader, start=2):
                add(f"{csv_path}, line {number}", {k: v for k, v in row.items() if k})
    if jsonl_path.is_file():
        with open(jsonl_path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ManifestError(f"{jsonl_path}, line {number}: not valid JSON ({err.msg})") from None
                    if not isinstance(row, dict):
                        raise ManifestError(f"{jsonl_path}, line {number}: expected a JSON object")
                    add(f"{jsonl_path}, line {number}", row)
    return meta


def scan_folder(
    folder: str | os.PathLike,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.0,
    source: str = "user",
    license: str = "unknown",
    suffixes: Sequence[str] = AUDIO_SUFFIXES,
) -> list[ManifestEntry]:
    """Manifest entries for every audio file under ``folder`` (sorted by relative path).

    Captions come from ``metadata.csv`` / ``metadata.jsonl`` (several rows per file give several
    captions), else from a sidecar ``NAME.txt`` (one caption per non-empty line), else from the
    file name's words (with a warning). The split is :func:`split_of` of the relative path unless
    the metadata names one; when no clip falls in "valid" and there are at least two, the clip with
    the smallest hash goes there, so a small folder still has a validation clip.
    Unreadable audio files are skipped with a warning; a folder without clips is an error.
    """
    import soundfile as sf

    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"expected a folder of audio files, got a file: {folder}")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ManifestError(f"need 0 <= valid_fraction, test_fraction and their sum < 1, "
                            f"got {valid_fraction}, {test_fraction}")
    wanted = {s.lower() for s in suffixes}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.is_file())
    meta = _read_metadata(folder)
    entries, skipped, named = [], [], 0
    for file in files:
        rel = file.relative_to(folder).as_posix()
        try:
            info = sf.info(str(file))
            if info.samplerate <= 0 or info.frames <= 0:
                raise RuntimeError("no audio")
        except (RuntimeError, sf.LibsndfileError) as err:
            skipped.append(f"{rel} ({err})")
            continue
        item = meta.get(rel, {})
        captions = list(item.get("captions", []))
        sidecar = file.with_suffix(".txt")
        if not captions and sidecar.is_file():
            captions = [line.strip() for line in sidecar.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not captions:
            name = _caption_from_name(rel)
            if not name:
                skipped.append(f"{rel} (no caption and no words in its name)")
                continue
            captions, named = [name], named + 1
        entries.append(ManifestEntry(
            path=str(file.resolve()), captions=tuple(captions), duration_s=info.frames / info.samplerate,
            sample_rate=int(info.samplerate), source=source, license=item.get("license", license),
            split=item.get("split") or split_of(rel, valid_fraction, test_fraction)))
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s): " + "; ".join(skipped[:5])
                      + (" ..." if len(skipped) > 5 else ""), stacklevel=2)
    if named:
        warnings.warn(f"{folder}: {named} clip(s) have no caption in metadata.csv, metadata.jsonl "
                      "or a .txt file; their file names were used as captions", stacklevel=2)
    if not entries:
        raise ManifestError(f"no audio clips found in {folder} (looked for {', '.join(sorted(wanted))}"
                            + (f"; {len(skipped)} file(s) unreadable" if skipped else "") + ")")
    if valid_fraction > 0 and len(entries) >= 2 and not any(e.split == "valid" for e in entries) \
            and not any("split" in meta.get(Path(e.path).relative_to(folder.resolve()).as_posix(), {})
                        for e in entries):
        pick = min(range(len(entries)),
                   key=lambda i: _hash_unit(Path(entries[i].path).relative_to(folder.resolve()).as_posix()))
        entries[pick] = dataclasses.replace(entries[pick], split="valid")
    return entries
