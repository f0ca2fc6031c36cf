"""Build a captioned sound-effect corpus from Debian packages (``audiodiff prepare sfx``).

For each package: fetch and unpack it (:func:`audiodiff.data.debian.debian_package`), list its
audio (:mod:`audiodiff.data.sfx_sources`: music, speech and unit voices are dropped by path),
decode every file, fold to mono, resample to 22.05 kHz, trim silence at the ends, normalise the
loudness, cut recordings longer than 30 s into equal segments, caption it from its path
(:mod:`audiodiff.data.sfx_captions`) and write it as FLAC. Bad files (corrupt, silent, too short,
no usable words in the name, a duplicate of a file already used) are skipped with one report line
each. A rerun skips finished packages and, inside an interrupted one, finished files.

Captions are written again from each clip's origin every time the manifest is assembled, so an
improved vocabulary reaches an existing corpus by rerunning the command, without decoding again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from ..audio import resample, save_audio
from .card import card_markdown, data_card
from .corpus import (BuildFolder, ClipPolicy, assign_split, clean_clip, clip_stats, cut_segments,
                     group_key, is_reserved_source)
from .debian import DebianPackageError, _copyright, debian_package, file_licence, read_package_licence
from .manifest import ManifestEntry
from .sfx_captions import Caption, Captioner
from .sfx_sources import SFX_SOURCES, AudioItem, SfxSource, iter_package_audio, read_audio_bytes, source_for

MAX_FILE_S = 600.0  # longer files in a sound folder are soundtracks or recordings of a session


# -- captions with package-specific rules ---------------------------------------------------------

_NOTE = {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E", "f": "F", "g": "G"}


def guitar_strum_caption(stem: str) -> str | None:
    """``Csharp minor7b5_DOWN_01`` -> "an acoustic guitar strumming a C sharp minor seven flat
    five chord, a down-strum" (the Hydrogen guitar-strum kit names its samples by chord)."""
    m = re.match(r"^([a-g])(sharp|flat)?\s*(major|minor|minro|min|maj)?\s*(7b5)?(?:_(up|down))?",
                 stem.strip().lower())
    if not m:
        return None
    note, accidental, quality, seventh, direction = m.groups()
    name = _NOTE[note] + (f" {accidental}" if accidental else "")
    quality = {"minro": "minor", "min": "minor", "maj": "major"}.get(quality or "", quality or "major")
    chord = f"{name} {quality}" + (" seven flat five" if seventh else "")
    text = f"an acoustic guitar strumming {'an' if name[0] in 'AEF' else 'a'} {chord} chord"
    return text + (f", a single {direction}-strum" if direction else "")


# Where names the vocabulary cannot read still share one kind of sound: package -> (path
# pattern, caption). Torcs names engine samples after cars; Endless Sky names weapons.
FALLBACK_CAPTIONS: dict[str, tuple[str, str]] = {
    "torcs-data": (r".", "a racing car engine"),
    "hydrogen-drumkits": (r".", "a drum machine hit"),
    "redeclipse-data": (r"/ambience/", "a science fiction ambience"),
    "endless-sky-data": (r".", "a science fiction weapon firing"),
}


class SfxCaptioner:
    """Captions of one clip: the package rule (guitar chords, fallbacks) over the vocabulary."""

    def __init__(self, captioner: Captioner | None = None):
        self.captioner = captioner or Captioner()

    def __call__(self, source: SfxSource, rel: str, label: str = "") -> tuple[list[str], Caption]:
        path = source.caption_path(rel)
        cap = self.captioner.caption_path(path, label, prefix=source.words)
        extra: list[str] = []
        if "strum" in path.lower():
            chord = guitar_strum_caption(Path(path).stem)
            if chord:
                cap = Caption(chord, ("guitar strum",), cap.words, ("instrument",))
                extra.append(chord.split(",")[0].replace("an acoustic guitar strumming", "a guitar strum,"))
        key = re.match(r"^[0-9a-f]+-([01])$", Path(path).stem)
        if source.package == "bucklespring-data" and key:
            action = "pressed" if key.group(1) == "0" else "released"
            cap = Caption(f"a mechanical keyboard key being {action}", ("keyboard",), ("keyboard", "key"),
                          ("machine",))
            extra.append(f"a clicky typewriter-like key {action}")
        fallback = FALLBACK_CAPTIONS.get(source.package)
        if cap.sentence is None and fallback and re.search(fallback[0], rel):
            cap = Caption(fallback[1], (), cap.words, ())
        return cap.variants(extra), cap


# -- building ---------------------------------------------------------------------------------------

def _clip_name(rel: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]{2,4}$", "", rel.split("!", 1)[-1])
    parts = [p for p in re.split(r"[/\\]+", stem) if p]
    name = "__".join(parts[-3:])  # the last folders keep names unique without huge paths
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"
    return f"{name}-{hashlib.sha1(rel.encode()).hexdigest()[:6]}"


def item_licence(root: Path, pkg: str, rel: str, package_licence: str) -> str:
    """The licence of one file: its DEP-5 paragraph; for Hydrogen kits, the paragraph of the
    kit's ``.h2drumkit`` (the copyright file names kit archives, not installed samples)."""
    kit = re.search(r"/drumkits/([^/]+)/", rel) if pkg.startswith("hydrogen-drumkits") else None
    if kit:
        path = Path(root) / "usr" / "share" / "doc" / pkg / "copyright"
        if path.is_file():
            _, paragraphs = _copyright(str(path), path.stat().st_mtime_ns)
            want = _kit_key(kit.group(1))
            for para in paragraphs:
                names = [_kit_key(f.rsplit("/", 1)[-1].replace(".h2drumkit", ""))
                         for f in para.get("Files", "").split() if f.endswith(".h2drumkit")]
                if "License" in para and any(n and (want.startswith(n) or n.startswith(want)) for n in names):
                    return para["License"].splitlines()[0].strip()
    lic = file_licence(root, pkg, rel)
    return lic if lic != "unknown" else package_licence


def _kit_key(name: str) -> str:
    """"The Black Pearl 1.0" / "The?Black?Pearl?1.0" -> "theblackpearl"."""
    return re.sub(r"[^a-z]", "", re.sub(r"[\s?_-]*v?\d[\d.]*$", "", name.lower()))


def decode(data: bytes, suffix: str = "") -> tuple[torch.Tensor, int]:
    """Audio bytes -> (mono (1, T) float32, sample rate). soundfile first; files it rejects
    (a few packages ship WAV with odd headers, some under an .ogg name) go through ``sox`` when
    it is installed. Raises on anything neither can read."""
    try:
        array, rate = read_audio_bytes(data)
    except Exception:
        array, rate = _sox_decode(data, suffix)
    if array.size == 0:
        raise ValueError("no samples")
    wav = torch.from_numpy(np.ascontiguousarray(array.T)).mean(dim=0, keepdim=True)
    return wav, int(rate)


def _sox_decode(data: bytes, suffix: str) -> tuple[np.ndarray, int]:
    exe = shutil.which("sox")
    if exe is None:
        raise ValueError("soundfile cannot read it and sox is not installed")
    with tempfile.TemporaryDirectory(prefix="audiodiff-sox-") as tmp:
        src, dst = Path(tmp) / f"in{suffix}", Path(tmp) / "out.wav"
        src.write_bytes(data)
        # sox guesses the type from the header when the extension lies (-t of the content)
        for cmd in ([exe, str(src), "-e", "floating-point", "-b", "32", str(dst)],
                    [exe, "-t", "wav", str(src), "-e", "floating-point", "-b", "32", str(dst)]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0 and dst.is_file():
                return read_audio_bytes(dst.read_bytes())
        raise ValueError(f"neither soundfile nor sox can read it ({proc.stderr.strip()[:100]})")


def _process(folder: BuildFolder, item: AudioItem, data: bytes, pkg: str, licence: str,
             policy: ClipPolicy, valid_fraction: float, max_file_s: float) -> tuple[list[dict], str]:
    """One audio file -> (clip records, "") or ([], the reason it was skipped)."""
    try:
        wav, rate = decode(data, Path(item.rel).suffix)
    except Exception as err:  # soundfile raises several types for broken files
        return [], f"cannot decode ({type(err).__name__}: {str(err)[:120]})"
    if wav.shape[-1] / rate > max_file_s:
        return [], f"{wav.shape[-1] / rate:.0f} s long (over {max_file_s:g} s: a soundtrack?)"
    if not torch.isfinite(wav).all():
        return [], "NaN or infinite samples"
    wav = resample(wav, rate, policy.sample_rate) if rate != policy.sample_rate else wav
    clip, why = clean_clip(wav, policy.sample_rate, policy)
    if clip is None:
        return [], why
    segments = cut_segments(clip.shape[-1], policy.sample_rate, policy.max_segment_s)
    split = assign_split(pkg, group_key(pkg, item.rel), valid_fraction)
    name = _clip_name(item.rel)
    records = []
    for i, (a, b) in enumerate(segments):
        seg = clip[:, a:b]
        suffix = "" if len(segments) == 1 else f"_s{i + 1:02d}"
        rel_out = f"clips/{pkg}/{name}{suffix}.flac"
        save_audio(folder.root / rel_out, seg, policy.sample_rate)
        stats = clip_stats(seg, policy.sample_rate)
        records.append({
            "path": rel_out, "duration_s": round(seg.shape[-1] / policy.sample_rate, 4),
            "sample_rate": policy.sample_rate, "source": pkg, "license": licence, "split": split,
            "origin": item.rel + ("" if len(segments) == 1 else f"#{i + 1}/{len(segments)}"),
            "label": item.label, "stats": {k: round(v, 4) for k, v in stats.items()}})
    return records, ""


def build_sfx(out: str | os.PathLike, packages: Iterable[str] | None = None,
              roots: Mapping[str, str | os.PathLike] | None = None,
              cache_dir: str | os.PathLike | None = None, policy: ClipPolicy | None = None,
              valid_fraction: float = 0.05, max_file_s: float = MAX_FILE_S,
              limit_per_package: int | None = None, force: bool = False,
              echo: Callable[[str], None] | None = print) -> dict:
    """Build (or resume) the sound-effect corpus in ``out``; returns the data card.

    packages: Debian package names (default: all of :data:`SFX_SOURCES`). A reserved package may
        be named; its clips go to the "test" split only.
    roots: already unpacked packages, ``{name: folder}`` (tests, offline machines); others are
        fetched with apt into the cache.
    limit_per_package: use at most this many files of each package (quick trial builds).
    """
    policy = policy or ClipPolicy()
    packages = list(packages) if packages is not None else list(SFX_SOURCES)
    roots = {k: Path(v) for k, v in (roots or {}).items()}
    settings = {"policy": policy.to_json(), "valid_fraction": valid_fraction, "max_file_s": max_file_s,
                "limit_per_package": limit_per_package}
    folder = BuildFolder(out, "sfx", settings, force=force, echo=echo)
    seen = {r["sha1"]: f"{r['unit']}:{r['item']}" for r in folder.records() if r.get("sha1")}
    started = time.perf_counter()
    captioner = SfxCaptioner()
    for pkg in packages:
        if folder.unit_done(pkg):
            if not _captionable_now(folder, pkg, captioner):
                folder.report.count("packages already built")
                continue
            folder.reopen(pkg, drop=_no_caption)
        try:
            if pkg in roots:
                root = roots[pkg]
                if not root.is_dir():
                    raise DebianPackageError(f"folder {root} does not exist")
                licence = read_package_licence(root, pkg)
            else:
                unpacked = debian_package(pkg, cache_dir)
                root, licence = unpacked.root, unpacked.licence
        except DebianPackageError as err:
            folder.report.line(f"skip package {pkg}: {err}")
            folder.report.count("packages failed")
            continue
        _build_package(folder, pkg, root, licence, policy, valid_fraction, max_file_s,
                       limit_per_package, seen, echo)
    card = assemble_sfx(folder, packages)
    if echo:
        echo(f"sfx corpus: {card['clips']} clips, {card['hours']:.2f} h in {folder.root} "
             f"({time.perf_counter() - started:.0f} s this run; {folder.report.counts})")
    return card


def _no_caption(record: dict) -> bool:
    return record.get("skip", "").startswith("empty caption")


def _captionable_now(folder: BuildFolder, pkg: str, captioner: SfxCaptioner) -> bool:
    """Whether a file skipped for lack of a caption in a finished package has one now."""
    source = source_for(pkg)
    return any(captioner(source, r["item"])[0] for r in folder.records()
               if r.get("unit") == pkg and _no_caption(r))


def _build_package(folder: BuildFolder, pkg: str, root: Path, licence: str, policy: ClipPolicy,
                   valid_fraction: float, max_file_s: float, limit: int | None,
                   seen: dict[str, str], echo: Callable[[str], None] | None) -> None:
    source = source_for(pkg)
    captioner = SfxCaptioner()
    writer = folder.open_unit(pkg)
    t0 = time.perf_counter()

    def filtered(rel: str, why: str) -> None:
        if not writer.done(rel):
            writer.add(rel, skip=why, quiet=True)

    items = list(iter_package_audio(root, source, skip=filtered))
    if not items and not writer.done("(package)") and not any(r.get("entries") for r in writer.records):
        writer.add("(package)", skip="no audio files in this package's sound folders")
    for n, item in enumerate(items):
        if limit is not None and n >= limit:
            break
        if writer.done(item.rel):
            continue
        try:
            data = item.read()
        except (OSError, KeyError) as err:
            writer.add(item.rel, skip=f"unreadable ({err})")
            continue
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen:
            writer.add(item.rel, skip=f"duplicate of {seen[digest]}", sha1=digest)
            continue
        if not captioner(source, item.rel, item.label)[0]:
            writer.add(item.rel, skip="empty caption (no usable words in the file name)", sha1=digest)
            continue
        lic = item_licence(root, pkg, item.rel, licence)
        records, why = _process(folder, item, data, pkg, lic, policy, valid_fraction, max_file_s)
        writer.add(item.rel, entries=records, skip=why or None, sha1=digest)
        seen[digest] = f"{pkg}:{item.rel}"
    made = sum(len(r["entries"]) for r in writer.records)
    writer.close({"package": pkg, "licence": licence, "clips": made,
                  "seconds": round(time.perf_counter() - writer.started, 1)})
    if echo:
        echo(f"{pkg}: {made} clips from {len(items)} files ({time.perf_counter() - t0:.0f} s)")


def assemble_sfx(folder: BuildFolder, packages: Iterable[str] | None = None,
                 captioner: SfxCaptioner | None = None) -> dict:
    """Write manifest.jsonl and the data card from the finished parts, captioning every clip
    again from its origin (the vocabulary may have improved since the clip was written)."""
    captioner = captioner or SfxCaptioner()
    records, entries = [], []
    for unit_rec in folder.records():
        for rec in unit_rec.get("entries", []):
            source = source_for(rec["source"])
            origin = rec["origin"].split("#", 1)[0]
            if source.keeps(origin):  # the filters were tightened since the clip was made
                continue
            captions, cap = captioner(source, origin, rec.get("label", ""))
            if not captions:
                continue
            rec = {**rec, "captions": captions, "labels": list(cap.labels) or ["unlabelled"]}
            records.append(rec)
            entries.append(ManifestEntry(
                path=str(folder.root / rec["path"]), captions=tuple(captions),
                duration_s=rec["duration_s"], sample_rate=rec["sample_rate"], source=rec["source"],
                license=rec["license"], split=rec["split"], origin=rec["origin"]))
    reserved = sorted({r["source"] for r in records if is_reserved_source(r["source"])})
    notes = ["Clips: mono FLAC at 22.05 kHz, loudness-normalised to -20 LUFS (peak <= -1 dBFS), "
             "silence trimmed, recordings over 30 s cut into equal segments.",
             "Captions come from each file's path through a hand-written vocabulary "
             "(audiodiff/data/sfx_vocabulary.txt); the last caption variant is the raw words.",
             "Splits: hash of the source file with its variant number removed (5% valid)."]
    if reserved:
        notes.append(f"Reserved for evaluation (split 'test' only): {', '.join(reserved)}.")
    card = data_card("sound effects from Debian packages", records,
                     "Recorded sound effects from Debian game and desktop packages "
                     "(audiodiff prepare sfx).", notes)
    folder.finish(entries, card, card_markdown(card))
    return card
