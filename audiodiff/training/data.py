"""Training data: fixed-length crops of normalised log-mels (or waveforms) with a caption.

Every item is a pure function of (seed, position): training position p maps to clip
``perm_e[p % n]`` of epoch ``e = p // n`` (one fresh permutation per epoch), and the crop start and
caption variant are drawn from a generator seeded with (seed, p). Nothing depends on which process
or worker loads the item or on what was loaded before it, which is what makes resume exact and N
DDP processes equal to one (see :mod:`audiodiff.training.distributed`).

Whole clips are turned into features once and kept in a per-worker LRU (and optionally on disk as
fp16 safetensors, keyed by the file's path, size, mtime and the mel definition). Mels are always
rounded through fp16, cached or not, so a run gives the same numbers with and without the cache.
Clips shorter than the crop are padded with silence and come with a frame mask of 0 there
(``mask_padding=True``) or 1, so that the silence after a sound is learned (``False``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from ..audio import Chroma, MelConfig, MelSpectrogram, load_audio, normalize_mel
from ..conditioning.text import TextConditioner, TextConditionerConfig
from ..data.manifest import ManifestEntry, ManifestError, read_manifest, scan_folder
from .config import DataConfig
from .distributed import DistEnv, micro_positions

SILENCE = -1.0  # a normalised log-mel of silence (log_floor maps to -1)


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (ints, strings), stable across processes and machines."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# Entries of a feature cache / compact export have path "<folder>::feature:<index>".
FEATURE_SEP = "::feature:"


def load_entries(data: DataConfig) -> list[ManifestEntry]:
    """All clips of ``data.manifest``, ``data.folder`` or ``data.features`` (exactly one must be
    set), every split."""
    if sum(map(bool, (data.manifest, data.folder, data.features))) != 1:
        raise ValueError("set exactly one of data.manifest (a JSONL manifest), data.folder (a folder of "
                         "audio + captions) and data.features (a mel feature cache / compact export); got "
                         f"manifest={data.manifest!r}, folder={data.folder!r}, features={data.features!r}")
    if data.manifest:
        entries = read_manifest(data.manifest)
    elif data.folder:
        entries = scan_folder(data.folder, valid_fraction=data.valid_fraction)
    else:
        entries = feature_entries(data.features)
    if not entries:
        raise ManifestError(f"no clips in {data.manifest or data.folder or data.features}")
    return entries


def feature_entries(folder: str) -> list[ManifestEntry]:
    """One entry per clip of a feature cache or compact export (its ``index.json``)."""
    from ..data.feature_cache import FeatureShards

    root = Path(folder).resolve()
    if not (root / "index.json").is_file():
        raise ManifestError(f"data.features={folder!r}: no index.json there (write one with "
                            "audiodiff.data.feature_cache.build_feature_cache / export_compact)")
    shards = FeatureShards(root)
    rate = shards.mel_config.frame_rate
    return [ManifestEntry(path=f"{root}{FEATURE_SEP}{i}", captions=tuple(c["captions"]),
                          duration_s=max(c["frames"], 1) / rate, sample_rate=shards.mel_config.sample_rate,
                          source=c.get("source") or "features", license=c.get("license") or "unknown",
                          split=c.get("split") or "train", origin=c.get("origin"))
            for i, c in enumerate(shards.clips)]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What an item holds: ``kind`` "mel" (1, n_mels, N) or "wave" (1, T); crop length in frames
    (mel) or samples (wave); optional 12-channel chroma frames aligned with the mel."""

    kind: str
    sample_rate: int
    crop: int
    mel: MelConfig | None = None
    chroma: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("mel", "wave"):
            raise ValueError(f"FeatureSpec.kind must be 'mel' or 'wave', got {self.kind!r}")
        if self.kind == "mel" and (self.mel is None or self.mel.sample_rate != self.sample_rate):
            raise ValueError("a mel FeatureSpec needs a MelConfig with the same sample_rate")
        if self.crop < 1:
            raise ValueError(f"FeatureSpec.crop must be >= 1, got {self.crop}")


class ClipStore:
    """Whole-clip features (fp16 normalised mel + optional chroma, or a float32 waveform)."""

    def __init__(self, spec: FeatureSpec, cache_dir: str = "", memory_clips: int = 2048):
        self.spec = spec
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memory_clips = memory_clips
        self._memory: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._mel: MelSpectrogram | None = None
        self._chroma: Chroma | None = None
        self._shards: dict[str, object] = {}

    def _cache_path(self, entry: ManifestEntry) -> Path | None:
        if self.cache_dir is None or self.spec.kind != "mel" or FEATURE_SEP in entry.path:
            return None
        st = os.stat(entry.path)
        key = f"{entry.path}|{st.st_size}|{st.st_mtime_ns}|{self.spec.mel.to_json()}|{self.spec.chroma}|{entry.melody}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.safetensors"

    def get(self, entry: ManifestEntry) -> dict[str, torch.Tensor]:
        if entry.path in self._memory:
            self._memory.move_to_end(entry.path)
            return self._memory[entry.path]
        path = self._cache_path(entry)
        features = None
        if path is not None and path.is_file():
            try:
                features = load_file(str(path))
            except Exception:  # a damaged cache file is rebuilt, never trusted
                features = None
        if features is None:
            features = self._compute(entry)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                save_file(features, str(tmp))
                os.replace(tmp, path)
        if self.memory_clips > 0:
            self._memory[entry.path] = features
            while len(self._memory) > self.memory_clips:
                self._memory.popitem(last=False)
        return features

    def _compute(self, entry: ManifestEntry) -> dict[str, torch.Tensor]:
        spec = self.spec
        if FEATURE_SEP in entry.path:
            return self._from_features(entry)
        wav, _ = load_audio(entry.path, sample_rate=spec.sample_rate, mono=True)  # (1, T)
        if spec.kind == "wave":
            return {"wave": wav.contiguous()}
        if wav.shape[-1] < spec.mel.n_fft:  # too short for one frame: pad with silence
            wav = F.pad(wav, (0, spec.mel.n_fft - wav.shape[-1]))
        if self._mel is None:
            self._mel = MelSpectrogram(spec.mel)
        with torch.no_grad():
            mel = normalize_mel(self._mel(wav), spec.mel)[0]  # (n_mels, M)
        out = {"mel": mel.to(torch.float16).contiguous()}
        if spec.chroma:
            out["chroma"] = self._melody(entry, wav, mel.shape[-1]).to(torch.float16).contiguous()
        return out

    def _from_features(self, entry: ManifestEntry) -> dict[str, torch.Tensor]:
        """A clip of a feature cache / compact export: its stored mel (fp16 or uint8), and chroma
        as one-hot pitch classes of its pitch labels (zeros, i.e. absent, where it has none)."""
        from ..data.feature_cache import FeatureShards

        folder, index = entry.path.rsplit(FEATURE_SEP, 1)
        if self.spec.kind != "mel":
            raise ValueError(f"data.features ({folder}) holds mels only; the {self.spec.kind} task needs audio "
                             "(use data.manifest or data.folder)")
        shards = self._shards.get(folder)
        if shards is None:
            shards = self._shards[folder] = FeatureShards(folder)
            diff = shards.mel_config.mismatch(self.spec.mel)
            if diff:
                raise ValueError(f"data.features ({folder}) holds mels of another MelConfig than "
                                 f"task.pipeline.mel: {diff}")
        item = shards[int(index)]
        mel = item["mel"][0].to(torch.float16).contiguous()  # (n_mels, N), exactly as stored for fp16
        out = {"mel": mel}
        if self.spec.chroma:
            chroma = torch.zeros(12, mel.shape[-1])
            pitch = item.get("pitch")
            if pitch is not None:
                pitch = pitch[: mel.shape[-1]]
                voiced = torch.nonzero(pitch >= 0).flatten()
                chroma[pitch[voiced] % 12, voiced] = 1.0
            out["chroma"] = chroma.to(torch.float16)
        return out

    def _melody(self, entry: ManifestEntry, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """(12, frames) chroma: the entry's melody labels (.npy, 12 x frames) or computed from audio."""
        if entry.melody is not None and entry.melody.endswith(".npy"):
            labels = torch.from_numpy(np.load(entry.melody, allow_pickle=False)).float()
            if labels.ndim != 2 or labels.shape[0] != 12:
                raise ManifestError(f"{entry.melody}: melody labels must be (12, frames), got {tuple(labels.shape)}")
            labels = labels[:, :frames]
            return F.pad(labels, (0, frames - labels.shape[-1]))
        if self._chroma is None:
            self._chroma = Chroma(self.spec.mel)
        with torch.no_grad():
            return self._chroma(wav)[0, :, :frames]


class TextEmbedder:
    """Per-caption text embeddings from the frozen encoder, each caption encoded alone (so an
    embedding never depends on which captions share its batch), with a small LRU; or looked up
    in a precomputed text cache (:func:`build_text_cache`), which needs no encoder at all."""

    def __init__(self, config: TextConditionerConfig, cache_size: int = 4096, text_cache: str = ""):
        self.config = config
        self.cache_size = cache_size
        self._encoder = None
        self._cache: OrderedDict[str, tuple[torch.Tensor | None, torch.Tensor]] = OrderedDict()
        self._table = load_text_cache(text_cache, config) if text_cache else None

    def __call__(self, caption: str) -> tuple[torch.Tensor | None, torch.Tensor]:
        """caption -> (tokens (L, D) float32, or None from a pooled-only cache; pooled (D,) float32)."""
        if self._table is not None:
            if caption not in self._table:
                raise KeyError(f"caption {caption!r} is not in the text cache; rebuild it from the same "
                               "clips (audiodiff.training.data.build_text_cache)")
            return self._table[caption]
        if caption in self._cache:
            self._cache.move_to_end(caption)
            return self._cache[caption]
        if self._encoder is None:
            self._encoder = TextConditioner(self.config).encoder
        tokens, mask, pooled = self._encoder.encode([caption])
        out = (tokens[0, mask[0]].float().cpu(), pooled[0].float().cpu())
        self._cache[caption] = out
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


TEXT_CACHE_VERSION = 1


def build_text_cache(captions: Sequence[str], config: TextConditionerConfig, out: str | os.PathLike,
                     tokens: bool = False, batch_size: int = 64) -> Path:
    """Encode each distinct caption once and store the embeddings (fp16 safetensors): pooled
    vectors, and per-token embeddings if ``tokens``. Lets training run where the text encoder's
    weights are not installed (a GPU machine that gets only the repo and a compact export)."""
    distinct = list(dict.fromkeys(captions))
    if not distinct:
        raise ValueError("build_text_cache needs at least one caption")
    encoder = TextConditioner(config).encoder
    pooled, token_rows, lengths = [], [], []
    for i in range(0, len(distinct), batch_size):
        t, m, p = encoder.encode(distinct[i:i + batch_size])
        pooled.append(p.float().cpu())
        for k in range(t.shape[0]):
            lengths.append(int(m[k].sum()))
            if tokens:
                token_rows.append(t[k, m[k]].float().cpu())
    tensors = {"pooled": torch.cat(pooled).half().contiguous()}
    if tokens:
        tensors["tokens"] = torch.cat(token_rows).half().contiguous()
        tensors["lengths"] = torch.tensor(lengths, dtype=torch.int64)
    meta = {"format_version": str(TEXT_CACHE_VERSION), "text_config": config.to_json(),
            "captions": json.dumps(distinct, ensure_ascii=False)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, out)
    return out


def load_text_cache(path: str | os.PathLike, config: TextConditionerConfig
                    ) -> dict[str, tuple[torch.Tensor | None, torch.Tensor]]:
    """caption -> (tokens (L, D) or None, pooled (D,)), float32; checks the encoder matches."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text cache {path} does not exist (build it with build_text_cache)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        names = set(f.keys())
    if meta.get("format_version") != str(TEXT_CACHE_VERSION) or "captions" not in meta:
        raise ValueError(f"{path} is not an audiodiff text cache (format {TEXT_CACHE_VERSION})")
    stored = TextConditionerConfig.from_json(meta["text_config"])
    if (stored.encoder, stored.dim) != (config.encoder, config.dim):
        raise ValueError(f"text cache {path} was made with encoder {stored.encoder!r} (dim {stored.dim}), "
                         f"but the model's text conditioner uses {config.encoder!r} (dim {config.dim})")
    tensors = load_file(str(path))
    captions = json.loads(meta["captions"])
    pooled = tensors["pooled"].float()
    table: dict[str, tuple[torch.Tensor | None, torch.Tensor]] = {}
    if "tokens" in names:
        rows = torch.split(tensors["tokens"].float(), tensors["lengths"].tolist())
        for c, t, p in zip(captions, rows, pooled):
            table[c] = (t, p)
    else:
        for c, p in zip(captions, pooled):
            table[c] = (None, p)
    return table


class ClipDataset(Dataset):
    """Items by data position: ``dataset[p]`` -> dict with

    x: (1, n_mels, crop) float32 normalised log-mel in ~[-1, 1], or (1, crop) waveform;
    mask: (crop,) float32, 1 on real frames / samples, 0 on padding (all ones when
        ``mask_padding`` is False: the padding's silence is then a training target);
    caption: str (a random variant); tokens (L, D) and pooled (D,) text embeddings;
    frames: (12, crop) chroma when the spec asks for it; position: int;
    sound_frames: float, how many frames (samples for waveforms) of the crop hold the clip before
        its padding (the timing input's target length: the crop when the clip fills it).

    ``train=True`` permutes the clips afresh every epoch and crops at random; ``train=False``
    (validation) maps position i to clip i with a fixed crop.
    """

    def __init__(self, entries: Sequence[ManifestEntry], spec: FeatureSpec, seed: int,
                 text: TextConditionerConfig | None, train: bool = True, cache_dir: str = "",
                 memory_clips: int = 2048, text_cache: str = "", mask_padding: bool = True):
        if not entries:
            raise ManifestError("the dataset has no clips")
        self.entries = list(entries)
        self.spec = spec
        self.seed = seed
        self.train = train
        self.mask_padding = mask_padding
        self.store = ClipStore(spec, cache_dir, memory_clips)
        self.embed = TextEmbedder(text, text_cache=text_cache) if text is not None else None
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def clip_index(self, position: int) -> int:
        n = len(self.entries)
        if not self.train:
            return position % n
        epoch = position // n
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = (epoch, torch.randperm(n, generator=g))
        return int(self._perm[1][position % n])

    def __getitem__(self, position: int) -> dict:
        entry = self.entries[self.clip_index(position)]
        g = torch.Generator().manual_seed(derive_seed(self.seed, "train" if self.train else "valid", position))
        feats = self.store.get(entry)
        key = "wave" if self.spec.kind == "wave" else "mel"
        full = feats[key]
        length, crop = full.shape[-1], self.spec.crop
        start = int(torch.randint(0, length - crop + 1, (1,), generator=g)) if length > crop else 0
        mask = torch.ones(crop)
        if self.mask_padding:
            mask[min(crop, length):] = 0.0
        x = _crop(full, start, crop, 0.0 if key == "wave" else SILENCE).float()  # (1, T) or (n_mels, N)
        item = {"x": x if key == "wave" else x[None], "mask": mask, "position": position,
                "sound_frames": float(min(crop, length - start))}
        caption = entry.captions[int(torch.randint(0, len(entry.captions), (1,), generator=g))]
        item["caption"] = caption
        if self.embed is not None:
            tokens, item["pooled"] = self.embed(caption)
            if tokens is not None:
                item["tokens"] = tokens
        if self.spec.chroma:
            item["frames"] = _crop(feats["chroma"], start, crop, 0.0).float()
        return item


def _crop(full: torch.Tensor, start: int, crop: int, pad_value: float) -> torch.Tensor:
    out = full[..., start:start + crop]
    if out.shape[-1] < crop:
        out = F.pad(out, (0, crop - out.shape[-1]), value=pad_value)
    return out


def collate(items: list[dict]) -> dict:
    """Stack items; text tokens are right-padded and get a boolean token_mask."""
    batch = {
        "x": torch.stack([it["x"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "positions": torch.tensor([it["position"] for it in items], dtype=torch.int64),
        "sound_frames": torch.tensor([it["sound_frames"] for it in items], dtype=torch.float32),
        "captions": [it["caption"] for it in items],
    }
    if "tokens" in items[0]:
        length = max(it["tokens"].shape[0] for it in items)
        dim = items[0]["tokens"].shape[1]
        tokens = torch.zeros(len(items), length, dim)
        token_mask = torch.zeros(len(items), length, dtype=torch.bool)
        for i, it in enumerate(items):
            n = it["tokens"].shape[0]
            tokens[i, :n] = it["tokens"]
            token_mask[i, :n] = True
        batch.update(tokens=tokens, token_mask=token_mask)
    if "pooled" in items[0]:
        batch["pooled"] = torch.stack([it["pooled"] for it in items])
    if "frames" in items[0]:
        batch["frames"] = torch.stack([it["frames"] for it in items])
    return batch


class PositionSampler:
    """Infinite batch sampler: the positions of this rank's micro-batches, from ``start`` on.

    Step k (from ``start``) covers the global positions [start + k * global_batch, ... +
    global_batch); :func:`~audiodiff.training.distributed.micro_positions` splits them over
    micro-batches and ranks.
    """

    def __init__(self, start: int, micro_batch: int, grad_accum: int, env: DistEnv):
        self.start = start
        self.micro_batch = micro_batch
        self.grad_accum = grad_accum
        self.env = env

    def __iter__(self) -> Iterator[list[int]]:
        step_start = self.start
        while True:
            for micro in range(self.grad_accum):
                yield list(micro_positions(step_start, micro, self.micro_batch, self.env))
            step_start += self.micro_batch * self.grad_accum * self.env.world_size
