"""Pieces every corpus builder shares: the build folder, resumable parts, splits, clip checks.

A build folder looks like::

    OUT/build.json          what was built and with which settings (a rerun must match them)
    OUT/parts/<unit>.jsonl  the clips of one finished unit (a Debian package, a music batch, ...)
    OUT/parts/<unit>.partial.jsonl  clips of an unfinished unit, appended as they are written
    OUT/clips/...           the audio (FLAC, mono, 22.05 kHz) and melody labels
    OUT/manifest.jsonl      every clip (audiodiff.data.manifest format), rebuilt from the parts
    OUT/card.md, card.json  the data card: clips, hours, labels and licences per source
    OUT/report.txt          one line per skipped input, with the reason

Resuming: a unit with a finished part file is not touched again; an interrupted unit reloads its
partial file and skips every input already listed there (written or skipped), so a rerun redoes
at most the one clip that was being written when the build stopped.

Splits are drawn from a hash of a *group key* (the source file with its variant number removed),
so all segments and numbered variants of one recording land in the same split, and a clip never
moves when others are added. Sources reserved for evaluation (:mod:`audiodiff.data.reserved`)
always go to "test", never to "train" or "valid".
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from ..audio import loudness_normalize
from ..config import atomic_write_text
from .manifest import ManifestEntry, split_of, write_manifest
from .reserved import RESERVED_MUSIC21_COLLECTIONS, is_reserved_package

BUILD_FORMAT_VERSION = 1
SAMPLE_RATE = 22050  # every builder writes mono clips at the rate of the shared MelConfig


class BuildError(ValueError):
    """A build cannot go on (e.g. the output folder was built with other settings); a user error."""


# -- report ---------------------------------------------------------------------------------

class BuildReport:
    """Counts and one line per skipped input; lines are printed and appended to report.txt."""

    def __init__(self, path: Path | None = None, echo: Callable[[str], None] | None = print):
        self.path = path
        self.echo = echo
        self.counts: dict[str, int] = {}

    def line(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text.rstrip("\n") + "\n")

    def skip(self, unit: str, item: str, reason: str) -> None:
        self.count("skipped")
        self.line(f"skip {unit}: {item}: {reason}")

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


# -- splits ---------------------------------------------------------------------------------

_VARIANT_RE = re.compile(r"([_\-. ]?(\d+[a-z]?|[a-z]))$")


def group_key(source: str, origin: str) -> str:
    """``source/path`` with the extension and a trailing variant number removed, so that
    ``arrow_stone_01.ogg`` and ``arrow_stone_02.ogg`` (or ``water.1.ogg``) share a split."""
    stem = origin.rsplit(".", 1)[0] if "." in origin.rsplit("/", 1)[-1] else origin
    base = _VARIANT_RE.sub("", stem) if re.search(r"\d", stem.rsplit("/", 1)[-1]) else stem
    return f"{source}/{base or stem}"


def is_reserved_source(source: str) -> bool:
    """A Debian package or music21 collection held out for evaluation."""
    return is_reserved_package(source) or source in RESERVED_MUSIC21_COLLECTIONS \
        or source.split("/", 1)[0] in RESERVED_MUSIC21_COLLECTIONS


def assign_split(source: str, key: str, valid_fraction: float) -> str:
    """"test" for a reserved source, else "valid"/"train" from a hash of ``key``."""
    if is_reserved_source(source):
        return "test"
    return split_of(key, valid_fraction=valid_fraction)


# -- audio checks and cutting ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClipPolicy:
    """How raw audio becomes clips. Defaults suit game sound effects at 22.05 kHz."""

    sample_rate: int = SAMPLE_RATE
    max_segment_s: float = 30.0   # issue 4: long ambient recordings cut into <= 30 s segments
    min_duration_s: float = 0.06  # shorter is a single-cycle waveform or a click of nothing
    silence_db: float = -55.0     # peak below this (dBFS) = silent file
    trim_db: float = -60.0        # leading/trailing audio this far below the peak is trimmed
    target_lufs: float = -20.0    # loudness normalisation (ITU-R BS.1770), then a peak limit
    peak_db: float = -1.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-12))


def trim_silence(wav: torch.Tensor, sample_rate: int, rel_db: float) -> torch.Tensor:
    """Cut leading and trailing audio quieter than ``rel_db`` below the peak (10 ms margin)."""
    env = wav.abs().amax(dim=0)
    above = torch.nonzero(env > env.max() * 10 ** (rel_db / 20)).flatten()
    if above.numel() == 0:
        return wav
    margin = int(0.01 * sample_rate)
    start, stop = max(int(above[0]) - margin, 0), min(int(above[-1]) + margin + 1, wav.shape[-1])
    return wav[:, start:stop]


def cut_segments(num_samples: int, sample_rate: int, max_s: float) -> list[tuple[int, int]]:
    """Equal segments of at most ``max_s`` covering the clip: 70 s -> three of 23.3 s."""
    max_n = int(max_s * sample_rate)
    if num_samples <= max_n:
        return [(0, num_samples)]
    count = math.ceil(num_samples / max_n)
    edges = [round(i * num_samples / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def clean_clip(wav: torch.Tensor, sample_rate: int, policy: ClipPolicy) -> tuple[torch.Tensor | None, str]:
    """Mono (1, T) audio at the policy rate -> (normalised clip, "") or (None, why it is unusable)."""
    if wav.numel() == 0:
        return None, "no samples"
    if not torch.isfinite(wav).all():
        return None, "NaN or infinite samples"
    peak = float(wav.abs().max())
    if _db(peak) < policy.silence_db:
        return None, f"silent (peak {_db(peak):.0f} dBFS)"
    wav = trim_silence(wav, sample_rate, policy.trim_db)
    if wav.shape[-1] < policy.min_duration_s * sample_rate:
        return None, f"too short ({wav.shape[-1] / sample_rate:.3f} s after trimming silence)"
    wav = loudness_normalize(wav, sample_rate, policy.target_lufs, policy.peak_db)
    return wav.to(torch.float32), ""


def clip_stats(wav: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Peak and RMS level (dBFS), share of samples at full scale, duration: for checks and cards."""
    x = wav.flatten().double()
    return {"peak_db": _db(float(x.abs().max())), "rms_db": _db(float(x.square().mean().sqrt())),
            "clipped_fraction": float((x.abs() >= 0.999).double().mean()),
            "duration_s": x.numel() / sample_rate}


# -- the build folder and its resumable parts --------------------------------------------------

def _safe_name(unit: str) -> str:
    return re.sub(r"[^A-Za-z0-9+._-]+", "_", unit)


class BuildFolder:
    """The output folder of one builder: settings check, resumable parts, manifest and card."""

    def __init__(self, out: str | os.PathLike, kind: str, settings: dict, force: bool = False,
                 echo: Callable[[str], None] | None = print):
        self.root = Path(out).resolve()  # manifests store paths relative to it
        self.kind = kind
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "parts").mkdir(exist_ok=True)
        self.report = BuildReport(self.root / "report.txt", echo)
        self._check_settings(settings, force)

    def _check_settings(self, settings: dict, force: bool) -> None:
        path = self.root / "build.json"
        record = {"format_version": BUILD_FORMAT_VERSION, "kind": self.kind, "settings": settings}
        if path.is_file():
            old = json.loads(path.read_text())
            if old.get("kind") != self.kind or old.get("settings") != settings:
                if not force:
                    raise BuildError(
                        f"{self.root} holds a {old.get('kind')!r} build with other settings "
                        f"({old.get('settings')}); use a new --out folder, or --force to rebuild it")
                # clips made with other settings must not be resumed: start again
                for sub in ("parts", "clips"):
                    shutil.rmtree(self.root / sub, ignore_errors=True)
                (self.root / "parts").mkdir()
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")

    def clip_path(self, *parts: str) -> Path:
        return self.root.joinpath("clips", *parts)

    # parts: one JSON record per line, {"entry": {...}} for a clip, {"skip": item} for an input
    def part_path(self, unit: str, partial: bool = False) -> Path:
        return self.root / "parts" / (_safe_name(unit) + (".partial.jsonl" if partial else ".jsonl"))

    def unit_done(self, unit: str) -> bool:
        return self.part_path(unit).is_file()

    def reopen(self, unit: str, drop: Callable[[dict], bool]) -> None:
        """Turn a finished unit back into a partial one without the records ``drop`` picks
        (their inputs are redone by the next build, e.g. names a better vocabulary can caption)."""
        path = self.part_path(unit)
        keep = [r for r in _read_records(path) if r.get("item") != "__unit__" and not drop(r)]
        atomic_write_text(self.part_path(unit, partial=True), "".join(json.dumps(r) + "\n" for r in keep))
        path.unlink()

    def open_unit(self, unit: str) -> UnitWriter:
        return UnitWriter(self, unit)

    def records(self) -> Iterator[dict]:
        """Every record of every finished part, in a stable order."""
        for path in sorted((self.root / "parts").glob("*.jsonl")):
            if path.name.endswith(".partial.jsonl"):
                continue
            unit = path.name[: -len(".jsonl")]
            for record in _read_records(path):
                yield {**record, "unit": unit}

    def finish(self, entries: Iterable[ManifestEntry], card: dict, card_md: str) -> Path:
        manifest = write_manifest(self.root / "manifest.jsonl", entries)
        atomic_write_text(self.root / "card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
        atomic_write_text(self.root / "card.md", card_md)
        return manifest


def _read_records(path: Path) -> list[dict]:
    """JSONL records; a torn last line (a build killed mid-write) is dropped."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


class UnitWriter:
    """Records of one unit, appended to its partial file and renamed once the unit completes."""

    def __init__(self, folder: BuildFolder, unit: str):
        self.folder = folder
        self.unit = unit
        self.partial = folder.part_path(unit, partial=True)
        self.records = _read_records(self.partial) if self.partial.is_file() else []
        self.seen = {r.get("item") for r in self.records}
        if self.partial.is_file():  # rewrite without a torn last line before appending
            atomic_write_text(self.partial, "".join(json.dumps(r) + "\n" for r in self.records))
        self.started = time.perf_counter()

    def done(self, item: str) -> bool:
        return item in self.seen

    def add(self, item: str, entries: list[dict] | None = None, skip: str | None = None,
            quiet: bool = False, **extra) -> None:
        """Record that ``item`` (one input) produced ``entries`` or was skipped for ``skip``
        (a report line unless ``quiet``: files dropped by a filter are only counted)."""
        record = {"item": item, "entries": entries or [], **extra}
        if skip:
            record["skip"] = skip
            if quiet:
                self.folder.report.count("filtered")
            else:
                self.folder.report.skip(self.unit, item, skip)
        self.records.append(record)
        self.seen.add(item)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        with open(self.partial, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def close(self, info: dict | None = None) -> None:
        """Mark the unit finished (its partial file becomes the part file)."""
        if not self.partial.is_file():
            atomic_write_text(self.partial, "")
        if info:
            with open(self.partial, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"item": "__unit__", "entries": [], "info": info}) + "\n")
        os.replace(self.partial, self.folder.part_path(self.unit))
