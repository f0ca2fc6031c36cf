"""A module's weights stored as a low-bit difference to another module's: how the bundled model
ships its guide network (an earlier checkpoint of its own UNet) in 8 MB instead of 22.

``save_delta(module, base, folder, bits)`` writes ``folder/config.json`` (:class:`WeightDeltaConfig`)
and ``folder/model.safetensors``, which holds, for each floating tensor of two or more dimensions,

    NAME.codes   uint8: (module - base) rounded to ``bits``-bit integers, symmetric, one scale per
                 output channel (dim 0), packed ``bits`` bits per weight
    NAME.scale   fp16: the output channels' scales (the largest difference / (2^(bits-1) - 1))

and for the smaller ones (biases, norm gains) ``NAME``, the module's own value in fp16.
``load_delta(folder, base)`` rebuilds the module from a copy of ``base``. A difference applied to
other weights than the ones it was taken from is a silently wrong network, so the config keeps
the base's fingerprint (SHA-256 of its weights as fp16) and loading checks it.

Rounding error per weight is at most half a step of its channel's scale; for the bundled guide
(v0.5 of the UNet, stored against v0.9) 6 bits keep all of autoguidance's measured gain and 4 bits
about half of it (the model card).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import Config, ConfigError, check, register_config
from .hub import CONFIG_NAME, WEIGHTS_NAME, load_config, read_weights, write_weights


def check_bits(bits: int) -> int:
    """``bits`` if it is a whole number of bits per weight that the format stores (2..8)."""
    check(isinstance(bits, int) and 2 <= bits <= 8,
          f"WeightDeltaConfig.bits must be an integer from 2 to 8, got {bits!r}")
    return bits


@register_config
@dataclasses.dataclass(frozen=True)
class WeightDeltaConfig(Config):
    """A weight-difference folder: the bits per weight and the fingerprint of the base it needs."""

    bits: int = 6
    base_sha256: str = ""

    def __post_init__(self):
        check_bits(self.bits)
        check(len(self.base_sha256) == 64 and all(c in "0123456789abcdef" for c in self.base_sha256),
              "WeightDeltaConfig.base_sha256 must be 64 lowercase hex digits (weights_fingerprint)")


def is_delta_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a weight difference (rather than a module of its own)."""
    return (Path(folder) / CONFIG_NAME).is_file() and isinstance(load_config(folder), WeightDeltaConfig)


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and values (floating tensors as fp16, so a float32 copy
    of fp16-stored weights has the fingerprint of the stored ones)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu")
        t = t.to(torch.float16) if t.is_floating_point() else t
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def quantise_per_channel(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest with one scale per output channel (dim 0): integer codes in
    [-(2^(bits-1) - 1), 2^(bits-1) - 1] and fp16 scales of shape (t.shape[0],);
    ``codes * scale`` (broadcast over dim 0) approximates ``t``."""
    levels = 2 ** (bits - 1) - 1
    t = t.detach().float()
    amax = t.abs().amax(dim=tuple(range(1, t.ndim))) if t.ndim > 1 else t.abs()
    scale = (amax / levels).to(torch.float16)
    if not torch.isfinite(scale).all():
        raise ValueError(f"a difference of up to {amax.max().item():.3g} does not fit fp16 scales")
    shape = (-1,) + (1,) * (t.ndim - 1)
    safe = torch.where(scale > 0, scale.float(), torch.ones_like(amax)).reshape(shape)
    codes = (t / safe).round().clamp(-levels, levels).to(torch.int8)
    return codes, scale


def dequantise_per_channel(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return codes.float() * scale.float().reshape((-1,) + (1,) * (codes.ndim - 1))


def round_per_channel(t: torch.Tensor, bits: int) -> torch.Tensor:
    """``t`` as ``quantise_per_channel`` stores it: rounded to ``bits`` bits per output channel."""
    return dequantise_per_channel(*quantise_per_channel(t, bits))


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed ``bits``-bit integer codes -> uint8 bytes: code k, offset by 2^(bits-1) - 1 to be
    unsigned, fills bits k * bits ... k * bits + bits - 1 of the stream (least significant first)."""
    levels = 2 ** (bits - 1) - 1
    unsigned = (codes.reshape(-1).to(torch.int16) + levels).to(torch.uint8).numpy()
    planes = np.unpackbits(unsigned[:, None], axis=1, count=bits, bitorder="little")
    return torch.from_numpy(np.packbits(planes.reshape(-1), bitorder="little"))


def unpack_codes(data: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` codes of ``pack_codes``'s output, as int8."""
    if data.dtype != torch.uint8 or data.ndim != 1 or data.numel() != -(-count * bits // 8):
        raise ValueError(f"expected {-(-count * bits // 8)} packed bytes (uint8) for {count} "
                         f"{bits}-bit codes, got {data.dtype} of shape {tuple(data.shape)}")
    planes = np.unpackbits(data.numpy(), count=count * bits, bitorder="little").reshape(count, bits)
    unsigned = np.packbits(planes, axis=1, bitorder="little")[:, 0]
    return torch.from_numpy(unsigned.astype(np.int16) - (2 ** (bits - 1) - 1)).to(torch.int8)


def save_delta(module: nn.Module, base: nn.Module, folder: str | os.PathLike, bits: int = 6,
               base_dtype: torch.dtype | None = None) -> Path:
    """Write ``module`` as its difference to ``base`` (same architecture) in ``bits`` bits per
    weight. ``base_dtype``: the dtype the base is stored in (e.g. fp16), so the difference is taken
    from the weights a loader will have."""
    check_bits(bits)  # before any work
    own, ref = module.state_dict(), base.state_dict()
    if set(own) != set(ref) or any(own[k].shape != ref[k].shape for k in own):
        raise ValueError(f"{type(module).__name__} and the base {type(base).__name__} differ in their "
                         "tensors' names or shapes: a weight difference needs the same architecture")
    ref = {k: (v.detach().to("cpu").to(base_dtype) if base_dtype is not None and v.is_floating_point()
               else v.detach().to("cpu")) for k, v in ref.items()}
    state = {}
    for name, value in own.items():
        value = value.detach().to("cpu")
        if not value.is_floating_point():
            if not torch.equal(value, ref[name]):
                raise ValueError(f"{name} (not floating point) differs from the base's: it cannot be "
                                 "stored as a difference")
            continue
        if value.ndim < 2:
            state[name] = value.to(torch.float16).contiguous()
            continue
        codes, scale = quantise_per_channel(value.float() - ref[name].float(), bits)
        state[f"{name}.codes"] = pack_codes(codes, bits)
        state[f"{name}.scale"] = scale
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_weights(state, folder / WEIGHTS_NAME, WeightDeltaConfig.__name__)
    WeightDeltaConfig(bits=bits, base_sha256=weights_fingerprint(ref)).save(folder / CONFIG_NAME)
    return folder


def load_delta(folder: str | os.PathLike, base: nn.Module) -> nn.Module:
    """The module ``save_delta`` wrote into ``folder``, rebuilt on a copy of ``base`` (which must
    hold the weights the difference was taken from); in ``base``'s dtype and device."""
    folder = Path(folder)
    config = load_config(folder)
    if not isinstance(config, WeightDeltaConfig):
        raise ConfigError(f"{folder} holds a {type(config).__name__}, not a weight difference")
    ref = base.state_dict()
    if weights_fingerprint(ref) != config.base_sha256:
        raise ValueError(f"{folder} is a difference to other weights than this {type(base).__name__}'s "
                         "(their fingerprints differ): load it with the model it was saved with")
    weights = folder / WEIGHTS_NAME
    stored = read_weights(weights)
    state, expected = {}, set()
    for name, value in ref.items():
        if not value.is_floating_point():
            state[name] = value
        elif value.ndim < 2:
            expected.add(name)
            if name in stored:
                state[name] = stored[name]
        else:
            expected.update((f"{name}.codes", f"{name}.scale"))
            if f"{name}.codes" in stored and f"{name}.scale" in stored:
                scale = stored[f"{name}.scale"]
                if scale.shape != (value.shape[0],):
                    raise ValueError(f"{weights}: {name}.scale has shape {tuple(scale.shape)}, "
                                     f"expected ({value.shape[0]},)")
                codes = unpack_codes(stored[f"{name}.codes"], config.bits, value.numel())
                state[name] = value.float() + dequantise_per_channel(codes.reshape(value.shape), scale)
    missing, unexpected = sorted(expected - set(stored)), sorted(set(stored) - expected)
    if missing or unexpected:
        raise ValueError(f"{weights} does not match the base {type(base).__name__}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for name, value in state.items():
        if value.shape != ref[name].shape:
            raise ValueError(f"{weights}: {name} has shape {tuple(value.shape)}, the base "
                             f"{tuple(ref[name].shape)}")
    module = copy.deepcopy(base)
    module.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()}, strict=True)
    return module.eval()
