"""Mel feature cache and the compact export for a GPU machine.

:func:`build_feature_cache` turns the clips of one or more manifests into normalised log-mels,
``normalize_mel(MelSpectrogram(MelConfig())(wav), MelConfig())`` (the layout the denoisers train
on, (80, N) per clip, ~[-1, 1]), stored fp16 in safetensors shards of about ``shard_mib`` each,
one tensor per clip (``"000123.mel"``; ``"000123.pitch"`` int16 (N,) for clips with melody
labels, -1 = rest), plus ``index.json``: the MelConfig, and per clip its shard, key, frames,
captions, split, source, licence and origin. Shards are memory-mapped by safetensors, so reading
one clip does not load a shard. A rerun skips clips already in the index.

:func:`export_compact` picks clips into a folder of at most ``max_mib`` (default 64 MiB) to copy
to a GPU machine with the code: the same shard format (optionally uint8-quantised mels, twice the
audio per byte), ``clips.jsonl`` (captions etc.) and ``index.json``. :class:`FeatureShards` reads
both: ``shards[i]`` -> dict(mel=(1, 80, N) float32, captions=..., pitch=...).
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..audio import AudioError, MelConfig, MelSpectrogram, load_audio, normalize_mel
from ..config import atomic_write_text
from .manifest import ManifestEntry, read_manifest

INDEX_VERSION = 1
_META = ("captions", "split", "source", "license", "origin", "duration_s")


def _meta(entry: ManifestEntry) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(entry, k)) for k in _META)}


def _pitch_path(entry: ManifestEntry) -> Path | None:
    if entry.melody and entry.melody.endswith(".melody.npy"):
        p = Path(entry.melody[: -len(".melody.npy")] + ".pitch.npy")
        return p if p.is_file() else None
    return None


class _ShardWriter:
    def __init__(self, out: Path, prefix: str, shard_bytes: int, start: int):
        self.out, self.prefix, self.limit, self.number = out, prefix, shard_bytes, start
        self.tensors: dict[str, torch.Tensor] = {}
        self.size = 0

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.number:05d}.safetensors"

    def add(self, key: str, tensors: dict[str, torch.Tensor]) -> str:
        for k, t in tensors.items():
            self.tensors[f"{key}.{k}"] = t.contiguous()
            self.size += t.numel() * t.element_size()
        return self.name

    def full(self) -> bool:
        return self.size >= self.limit

    def flush(self) -> str | None:
        if not self.tensors:
            return None
        path = self.out / self.name
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(self.tensors, str(tmp))
        os.replace(tmp, path)
        name = self.name
        self.tensors, self.size, self.number = {}, 0, self.number + 1
        return name


def _read_index(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def build_feature_cache(manifests: Sequence[str | os.PathLike], out: str | os.PathLike,
                        mel: MelConfig | None = None, shard_mib: float = 128.0,
                        splits: Sequence[str] | None = None,
                        echo: Callable[[str], None] | None = print) -> dict:
    """Cache the mels of every clip of ``manifests`` (optionally only ``splits``) in ``out``."""
    mel = mel or MelConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = _read_index(index_path) or {"format_version": INDEX_VERSION, "kind": "mel-cache",
                                        "mel_config": mel.to_dict(), "normalized": True, "clips": []}
    if MelConfig.from_dict(index["mel_config"]).mismatch(mel):
        raise ValueError(f"{out} holds mels of another MelConfig: {MelConfig.from_dict(index['mel_config']).mismatch(mel)}")
    entries = [e for m in manifests for e in read_manifest(m) if not splits or e.split in splits]
    wanted = {e.path for e in entries}
    # drop clips of a lost shard, and clips the manifests no longer list (a tightened filter)
    clips = [c for c in index["clips"] if (out / c["shard"]).is_file() and c["path"] in wanted]
    by_path = {e.path: e for e in entries}
    for c in clips:  # captions and splits follow the manifest (a better vocabulary, say)
        c.update(_meta(by_path[c["path"]]))
    done = {c["path"] for c in clips}
    shard_numbers = [int(c["shard"].split("-")[1].split(".")[0]) for c in clips]
    writer = _ShardWriter(out, "mels", int(shard_mib * 2**20), max(shard_numbers, default=-1) + 1)
    pending: list[dict] = []
    transform = MelSpectrogram(mel)
    skipped = 0

    def flush() -> None:
        name = writer.flush()
        if name:
            clips.extend(pending)
            pending.clear()
            index["clips"] = clips
            atomic_write_text(index_path, json.dumps(index) + "\n")

    for entry in entries:
        if entry.path in done:
            continue
        try:
            wav, _ = load_audio(entry.path, sample_rate=mel.sample_rate, mono=True)
        except (AudioError, OSError) as err:
            skipped += 1
            if echo:
                echo(f"skip {entry.path}: {err}")
            continue
        if wav.shape[-1] < mel.n_fft:
            wav = torch.nn.functional.pad(wav, (0, mel.n_fft - wav.shape[-1]))
        with torch.no_grad():
            m = normalize_mel(transform(wav), mel)[0].to(torch.float16)  # (n_mels, N)
        key = f"{len(clips) + len(pending):06d}"
        tensors = {"mel": m}
        pitch = _pitch_path(entry)
        if pitch is not None:
            p = torch.from_numpy(np.load(pitch).astype(np.int16))[: m.shape[-1]]
            tensors["pitch"] = torch.nn.functional.pad(p, (0, m.shape[-1] - p.shape[0]), value=-1)
        shard = writer.add(key, tensors)
        pending.append({"key": key, "shard": shard, "frames": int(m.shape[-1]), "path": entry.path,
                        "has_pitch": pitch is not None, **_meta(entry)})
        done.add(entry.path)
        if writer.full():
            flush()
    flush()
    index["clips"] = clips
    atomic_write_text(index_path, json.dumps(index) + "\n")
    total = sum(c["frames"] for c in clips)
    if echo:
        echo(f"feature cache {out}: {len(clips)} clips, {total / mel.frame_rate / 3600:.2f} h of mels"
             + (f", {skipped} unreadable clips skipped" if skipped else ""))
    return index


class FeatureShards:
    """Read a feature cache or a compact export: ``len``, ``[i]`` -> dict with ``mel`` (1, 80, N)
    float32 normalised log-mel, ``pitch`` (N,) int64 or None, and the clip's metadata."""

    def __init__(self, folder: str | os.PathLike, split: str | None = None):
        self.folder = Path(folder)
        self.index = json.loads((self.folder / "index.json").read_text())
        self.mel_config = MelConfig.from_dict(self.index["mel_config"])
        self.clips = [c for c in self.index["clips"] if split is None or c["split"] == split]
        self._handles: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def captions(self) -> list[str]:
        """Every caption of every clip, in clip order (what a text cache must cover)."""
        return [c for clip in self.clips for c in clip["captions"]]

    def _open(self, shard: str):
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.folder / shard), framework="pt")
        return self._handles[shard]

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        handle = self._open(clip["shard"])
        mel = handle.get_tensor(f"{clip['key']}.mel")
        if mel.dtype == torch.uint8:  # quantised export: 0..255 over [-1, 1]
            mel = dequantise_mel(mel)
        pitch = handle.get_tensor(f"{clip['key']}.pitch").long() if clip.get("has_pitch") else None
        return {**clip, "mel": mel.float()[None], "pitch": pitch}


def export_compact(cache: str | os.PathLike, out: str | os.PathLike, max_mib: float = 64.0,
                   max_clip_s: float = 10.0, dtype: str = "float16", seed: int = 0,
                   melody_share: float = 0.5, shard_mib: float = 16.0, chunks: bool = False,
                   bits: int = 8, echo: Callable[[str], None] | None = print) -> dict:
    """Pick clips of a feature cache into at most ``max_mib``.

    ``melody_share`` of the budget goes to clips with melody labels (rendered music), the rest to
    the others (sound effects); inside each pool the sources take turns (shuffled with ``seed``),
    so small packages are not drowned by big ones, and about 5% of each source's picks are valid.
    Each clip keeps its first ``max_clip_s``; with ``chunks`` a longer clip is cut into
    consecutive ``max_clip_s`` chunks instead (each its own clip; a tail under 1 s is dropped), so
    long music gives many short training clips. ``dtype`` "float16" or "uint8" (twice the audio).
    ``bits`` < 8 (uint8 only) keeps that many bits of each uint8 value, stored at the centre of
    its bin: the files read as before and the budget is the same, but xz packs them smaller
    (6 bits: 2.9x instead of 1.6x; a step of 0.031 in the normalised mel, 0.22 in log
    magnitude or 1.9 dB, so each value is at most 0.95 dB off; 8 bits: 0.48 dB steps):
    :func:`quantise_mel`.
    Reserved evaluation clips (split "test") are never exported."""
    if dtype not in ("float16", "uint8"):
        raise ValueError(f"dtype must be 'float16' or 'uint8', got {dtype!r}")
    if bits != 8 and not (dtype == "uint8" and 1 <= bits < 8):
        raise ValueError(f"bits must be 1..8 with dtype 'uint8' (8 for float16), got bits={bits}, dtype={dtype!r}")
    if not 0 <= melody_share <= 1:
        raise ValueError(f"melody_share must be in [0, 1], got {melody_share}")
    src = FeatureShards(cache)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("mels-*.safetensors"):
        old.unlink()
    max_frames = int(max_clip_s * src.mel_config.frame_rate)
    min_chunk = int(src.mel_config.frame_rate)
    rng = random.Random(seed)
    pools: dict[bool, dict[str, list[int]]] = {True: defaultdict(list), False: defaultdict(list)}
    for i, c in enumerate(src.clips):
        if c["split"] != "test":
            pools[bool(c.get("has_pitch"))][c["source"]].append(i)
    # keep room for clips.jsonl, index.json, README and safetensors headers (~0.5 KiB per clip)
    budget = int(max_mib * 2**20 - min(2 * 2**20, 0.1 * max_mib * 2**20))
    shares = {True: melody_share, False: 1 - melody_share}
    if not pools[True] or not pools[False]:  # one kind only: it gets everything
        shares = {k: float(bool(pools[k])) for k in pools}
    per_frame = src.mel_config.n_mels * (2 if dtype == "float16" else 1)
    writer = _ShardWriter(out, "mels", int(shard_mib * 2**20), 0)
    picked: list[dict] = []
    for melodic in (True, False):
        queues = {}
        for s, ids in sorted(pools[melodic].items()):
            rng.shuffle(ids)
            valid = [i for i in ids if src.clips[i]["split"] == "valid"]
            train = [i for i in ids if src.clips[i]["split"] == "train"]
            # one valid clip first, then one every 20 picks: a truncated source keeps ~5% valid
            queue = valid[:1]
            for k, i in enumerate(train):
                queue.append(i)
                if (k + 1) % 19 == 0 and len(valid) > len(queue) // 20:
                    queue.append(valid[len(queue) // 20])
            queues[s] = queue
        pool_budget, used = int(budget * shares[melodic]), 0
        while any(queues.values()) and used < pool_budget:
            for s in sorted(queues):
                if not queues[s]:
                    continue
                item = src[queues[s].pop(0)]
                length = item["mel"].shape[-1]
                starts = range(0, length, max_frames) if chunks else range(1)
                for start in starts:
                    mel = item["mel"][0, :, start:start + max_frames]
                    if start and mel.shape[-1] < min_chunk:
                        break
                    cost = mel.shape[-1] * (per_frame + (2 if item["pitch"] is not None else 0)) + 400
                    if used + cost > pool_budget:
                        queues[s] = []
                        break
                    key = f"{len(picked):06d}"
                    tensors = {"mel": mel.half() if dtype == "float16" else quantise_mel(mel, bits)}
                    if item["pitch"] is not None:
                        tensors["pitch"] = item["pitch"][start:start + max_frames].to(torch.int16)
                    shard = writer.add(key, tensors)
                    meta = {k: item[k] for k in _META}
                    if chunks and length > max_frames:
                        rate = src.mel_config.frame_rate
                        meta["origin"] = f"{meta.get('origin', '')} @{start / rate:.1f}s"
                        meta["duration_s"] = round(mel.shape[-1] / rate, 4)
                    picked.append({"key": key, "shard": shard, "frames": int(mel.shape[-1]),
                                   "has_pitch": item["pitch"] is not None, **meta})
                    used += cost
                    if writer.full():
                        writer.flush()
    writer.flush()
    index = {"format_version": INDEX_VERSION, "kind": "compact-export", "mel_config": src.index["mel_config"],
             "normalized": True, "dtype": dtype, "bits": bits if dtype == "uint8" else 16,
             "max_clip_s": max_clip_s, "clips": picked}
    atomic_write_text(out / "index.json", json.dumps(index) + "\n")
    atomic_write_text(out / "clips.jsonl", "".join(json.dumps(
        {k: c[k] for k in ("key", "shard", "frames", *_META)}, ensure_ascii=False) + "\n" for c in picked))
    hours = sum(c["frames"] for c in picked) / src.mel_config.frame_rate / 3600
    atomic_write_text(out / "README.md", _export_readme(picked, hours, dtype, max_clip_s))
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if echo:
        echo(f"compact export {out}: {len(picked)} clips, {hours:.2f} h of mels, {size / 2**20:.1f} MiB")
    return {"clips": len(picked), "hours": hours, "mib": size / 2**20}


def quantise_mel(mel: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Normalised mel in [-1, 1] -> uint8 0..255 (what a uint8 export stores). With ``bits`` < 8
    the value falls in one of ``2**bits`` equal bins over 0..255 and is stored as the bin's centre
    (the low bits ``10...0``), so :func:`dequantise_mel` reads it back as before and each value is
    at most half a bin off, without bias; xz packs the unused low bits away."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be 1..8, got {bits}")
    codes = (mel.float().clamp(-1, 1) + 1) * 127.5
    if bits == 8:
        return codes.round().to(torch.uint8)
    width = 2 ** (8 - bits)
    # binned from the unrounded value: rounding to 8 bits first would put values up to 2.5
    # codes (not 2) from the centre and read back half a code high on average
    k = (codes / width).floor().clamp(max=2 ** bits - 1)
    return (k * width + width // 2).to(torch.uint8)


def dequantise_mel(q: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 normalised mel in [-1, 1] (inverse of :func:`quantise_mel` up to its
    rounding)."""
    return q.float() * (2.0 / 255.0) - 1.0


def _export_readme(picked: list[dict], hours: float, dtype: str, max_clip_s: float) -> str:
    per_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in picked:
        per_source[c["source"]][0] += 1
        per_source[c["source"]][1] += c["frames"]
    rows = "\n".join(f"| {s} | {n} | {f * 256 / 22050 / 60:.1f} |" for s, (n, f) in sorted(per_source.items()))
    return (f"# audiodiff compact export\n\n{len(picked)} clips, {hours:.2f} h of normalised log-mels "
            f"({dtype}, each clip at most {max_clip_s:g} s), with captions in clips.jsonl.\n"
            "Read with `audiodiff.data.feature_cache.FeatureShards(folder)`; mel layout "
            "`normalize_mel(MelSpectrogram(MelConfig())(wav), MelConfig())`, the MelConfig is in "
            "index.json. Reserved evaluation sources are not included.\n\n"
            f"| source | clips | minutes |\n|---|---:|---:|\n{rows}\n")
