"""A pretrained sound-effect embedding for Frechet distances and label accuracy: aiSFX.

The ``aisfx`` wheel (0.1.2, MIT; Ma et al., "Representation learning for the automatic indexing of
sound effects libraries", ISMIR 2022) ships a 9-layer CNN (DCASE cross-task baseline) trained on nine
commercial sound-effect libraries, whose 512-d max-pooled feature is the embedding. We use only its
network class and its packaged weights; the front-end is our own torch port of its librosa path
(44.1 kHz, peak-normalised, 2048/1024 STFT, 96 HTK mels with unit-sum filters, log10(1e4 x + 1),
min-max scaled by the training constant), checked against librosa in the tests.

The packaged ``checkpoint.pth`` is a pickle of ``(state_dict, dataset_dict)``; it is read with
``torch.load(weights_only=True)``, allow-listing only numpy's scalar type (the class counts in
``dataset_dict`` are numpy ints). Nothing else is ever unpickled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

SAMPLE_RATE = 44100
N_FFT = 2048
HOP_LENGTH = 1024
N_MELS = 96
F_MAX = 22050.0
SPEC_MAX = 9.457798957824707  # aisfx's "original" min-max constant (min is 0)
BLOCK_FRAMES = 100            # one embedding block: 100 frames = 2.32 s
EMBEDDING_DIM = 512
# Bumped whenever the front-end or pooling changes, so cached embeddings are recomputed.
EMBEDDER_VERSION = "aisfx-0.1.2-torch-v1"


def aisfx_checkpoint_path() -> Path:
    try:
        import aisfx
    except ImportError as err:  # pragma: no cover - setup.sh installs it
        raise ImportError("the sound embedding needs the aisfx wheel: "
                          ".venv/bin/pip install --no-deps aisfx==0.1.2") from err
    return Path(aisfx.__file__).resolve().parent / "models" / "checkpoint.pth"


def load_aisfx_network() -> nn.Module:
    """aiSFX's EmbeddingNet with its packaged weights, loaded strictly with weights_only=True."""
    from aisfx.models.cnn2d import EmbeddingNet  # plain torch, no librosa

    path = aisfx_checkpoint_path()
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]
    with torch.serialization.safe_globals(allowed):
        state, _datasets = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    net = EmbeddingNet("max", 3, 1, 64)  # the released "X-Sequential-CE" settings
    net.load_state_dict(state, strict=True)
    return net.eval()


def htk_unit_sum_fbank(sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(n_fft // 2 + 1, 96) HTK mel filters, each summing to 1 (librosa ``norm=1``)."""
    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, F_MAX, N_MELS, sample_rate, norm=None, mel_scale="htk")
    return fb / fb.sum(dim=0, keepdim=True).clamp_min(1e-12)


def block_count(n_frames: int, hop: int) -> int:
    """aisfx's blocking: full blocks only (a partial last block is dropped), at least one."""
    if n_frames <= BLOCK_FRAMES:
        return 1
    return (n_frames - BLOCK_FRAMES) // hop + 1


class SoundEmbedder:
    """Audio clips -> (N, 512) float32 aiSFX embeddings (mean over 2.3 s blocks, 50% overlap).

    >>> emb = SoundEmbedder()
    >>> emb.embed([wav_a, wav_b], sample_rate=22050).shape    # wav: (C, T) or (T,)
    (2, 512)
    """

    sample_rate = SAMPLE_RATE
    dim = EMBEDDING_DIM
    version = EMBEDDER_VERSION

    def __init__(self, device: torch.device | str = "cpu", block_hop: float = 0.5, batch_blocks: int = 32):
        if not 0 < block_hop <= 1:
            raise ValueError(f"block_hop must be in (0, 1], got {block_hop}")
        self.device = torch.device(device)
        self.hop = max(1, round(BLOCK_FRAMES * block_hop))
        self.batch_blocks = batch_blocks
        self.net = load_aisfx_network().to(self.device)
        self.fbank = htk_unit_sum_fbank().to(self.device)
        self.window = torch.hann_window(N_FFT, periodic=True, device=self.device)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """Mono wav (T,) at 44.1 kHz -> (frames, 96) scaled log-mel in about [0, 1]."""
        wav = wav.to(self.device, torch.float32)
        peak = wav.abs().max()
        wav = wav / (peak if peak > 0 else 1.0)
        spec = torch.stft(wav, N_FFT, HOP_LENGTH, N_FFT, self.window, center=True, pad_mode="constant",
                          return_complex=True).abs().pow(2)          # (bins, frames)
        mel = self.fbank.T @ spec                                     # (96, frames)
        return (torch.log10(mel * 10000.0 + 1.0) / SPEC_MAX).T

    def blocks(self, spec: torch.Tensor) -> torch.Tensor:
        """(frames, 96) -> (n_blocks, 100, 96), zero-padded like aisfx."""
        n = block_count(spec.shape[0], self.hop)
        padded = torch.cat([spec, spec.new_zeros(BLOCK_FRAMES, spec.shape[1])])
        return torch.stack([padded[i * self.hop:i * self.hop + BLOCK_FRAMES] for i in range(n)])

    @torch.inference_mode()
    def embed(self, wavs: torch.Tensor | Sequence[torch.Tensor], sample_rate: int) -> np.ndarray:
        """Clips (a list of (C, T) / (T,) tensors, or a (B, C, T) batch) -> (N, 512) float32."""
        if isinstance(wavs, torch.Tensor) and wavs.dim() == 3:
            wavs = list(wavs)
        elif isinstance(wavs, torch.Tensor):
            wavs = [wavs]
        blocks, owners = [], []
        for i, wav in enumerate(wavs):
            wav = torch.as_tensor(wav, dtype=torch.float32)
            mono = wav if wav.dim() == 1 else wav.mean(dim=0)
            if sample_rate != SAMPLE_RATE:
                mono = AF.resample(mono, sample_rate, SAMPLE_RATE)
            b = self.blocks(self.spectrogram(mono))
            blocks.append(b)
            owners += [i] * len(b)
        if not blocks:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        allb = torch.cat(blocks)
        feats = torch.cat([self.net(allb[s:s + self.batch_blocks]).float().cpu()
                           for s in range(0, len(allb), self.batch_blocks)])
        owner = torch.tensor(owners)
        out = torch.zeros(len(wavs), EMBEDDING_DIM).index_add_(0, owner, feats)
        out /= torch.bincount(owner, minlength=len(wavs)).unsqueeze(1).float()
        return out.numpy()


class EmbeddingCache:
    """One ``.npy`` per real clip under ``folder``, keyed by path, mtime, size, crop and embedder
    version, so a corpus is embedded once. Files are written atomically and read without pickle."""

    def __init__(self, folder: str | os.PathLike | None = None):
        default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiodiff" / "eval"
        self.folder = Path(folder) if folder is not None else default

    def key(self, path: Path, crop_s: float | None) -> str:
        import hashlib

        st = path.stat()
        text = f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}|{crop_s}|{EMBEDDER_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        file = self.folder / key[:2] / f"{key}.npy"
        if not file.is_file():
            return None
        try:
            return np.load(file, allow_pickle=False)
        except (ValueError, OSError):
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        file = self.folder / key[:2] / f"{key}.npy"
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(value, np.float32), allow_pickle=False)
        os.replace(tmp, file)


def embed_files(embedder: SoundEmbedder, paths: Sequence[Path], crop_s: float | None,
                cache: EmbeddingCache | None = None, progress: bool = True) -> np.ndarray:
    """Embed audio files (the first ``crop_s`` seconds of each), reusing cached embeddings."""
    from tqdm.auto import tqdm

    from ..audio import load_audio

    out = np.zeros((len(paths), EMBEDDING_DIM), np.float32)
    todo = []
    for i, path in enumerate(paths):
        hit = cache.get(cache.key(path, crop_s)) if cache else None
        if hit is not None and hit.shape == (EMBEDDING_DIM,):
            out[i] = hit
        else:
            todo.append(i)
    bar = tqdm(total=len(todo), desc="embedding real clips", unit="clip", disable=not progress or not todo)
    for s in range(0, len(todo), 8):
        idx = todo[s:s + 8]
        wavs = []
        for i in idx:
            wav, sr = load_audio(paths[i], mono=True)  # crop first, then resample only what is kept
            if crop_s is not None:
                wav = wav[..., :max(1, math.ceil(crop_s * sr))]
            wavs.append(AF.resample(wav, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else wav)
        emb = embedder.embed(wavs, SAMPLE_RATE)
        for j, i in enumerate(idx):
            out[i] = emb[j]
            if cache:
                cache.put(cache.key(paths[i], crop_s), emb[j])
        bar.update(len(idx))
    bar.close()
    return out
