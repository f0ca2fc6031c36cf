"""The conditioning contract shared by conditioners, networks and pipelines.

A conditioner turns user input (a prompt, a melody, masked audio) into tensors; a network reads
them from one :class:`Conditioning` object and never knows which conditioner made them. Adding a
condition therefore never touches a network's code beyond the fields below.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Conditioning:
    """Everything a denoising network is conditioned on, for a batch of B items.

    tokens:      (B, L, D) float, per-token text embeddings (cross-attention keys/values).
    token_mask:  (B, L) bool, True where a token is real (False = padding, never attended).
    pooled:      (B, D) float, one vector per item (FiLM / added to the noise embedding).
    frames:      frame-aligned conditions laid out like the network input without its own
                 channels: (B, C, n_mels, N) for the mel UNet, (B, C, T) for the waveform UNet;
                 C must equal the network's ``cond_channels``. None when the network has none.
    sound_frames: (B,) float, for networks with a timing input (``timing_channels``): how many
                 frames from the start of the clip hold the sound, silence after them; a
                 negative value (or None for the whole batch) means "not said".
    """

    tokens: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    sound_frames: torch.Tensor | None = None

    def _map(self, fn) -> Conditioning:
        return Conditioning(**{
            f.name: (None if getattr(self, f.name) is None else fn(f.name, getattr(self, f.name)))
            for f in dataclasses.fields(self)
        })

    def to(self, device=None, dtype=None) -> Conditioning:
        """Move to a device; floating tensors also take ``dtype`` (masks stay bool; frame
        counts stay float32, since fp16 cannot count frames past 2048 exactly)."""
        def move(name, t):
            if t.is_floating_point() and dtype is not None and name != "sound_frames":
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)
        return self._map(move)

    def repeat(self, n: int) -> Conditioning:
        """Repeat every item n times along the batch (item i -> rows i*n .. i*n+n-1)."""
        return self._map(lambda _, t: t.repeat_interleave(n, dim=0))

    def for_network(self, config) -> Conditioning:
        """Only the fields a network reads: no tokens when its ``text_dim`` is 0 (pooled-only
        text conditioning), no pooled vector when its ``pooled_dim`` is 0."""
        out = dataclasses.replace(self)
        if getattr(config, "text_dim", 1) == 0:
            out.tokens = out.token_mask = None
        if getattr(config, "pooled_dim", 1) == 0:
            out.pooled = None
        return out

    @property
    def batch_size(self) -> int | None:
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if t is not None:
                return t.shape[0]
        return None

    @staticmethod
    def cat(items: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch; token sequences of different length are padded."""
        out = {}
        for f in dataclasses.fields(Conditioning):
            values = [getattr(c, f.name) for c in items]
            if all(v is None for v in values):
                out[f.name] = None
                continue
            if any(v is None for v in values):
                raise ValueError(f"cannot concatenate conditionings: {f.name} is missing in some")
            if f.name in ("tokens", "token_mask"):
                length = max(v.shape[1] for v in values)
                values = [_pad_dim1(v, length) for v in values]
            out[f.name] = torch.cat(values, dim=0)
        return Conditioning(**out)


def _pad_dim1(t: torch.Tensor, length: int) -> torch.Tensor:
    if t.shape[1] == length:
        return t
    pad_shape = list(t.shape)
    pad_shape[1] = length - t.shape[1]
    return torch.cat([t, t.new_zeros(pad_shape)], dim=1)
