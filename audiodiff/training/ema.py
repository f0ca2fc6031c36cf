"""Exponential moving average of the trained weights, with a warm-up of the decay.

The EMA is what export ships: it averages out the noise of the last optimizer steps, which
matters for diffusion models (Song & Ermon 2020; Karras et al. 2022 and 2024). Early in training a
fixed decay of 0.999 would keep the random initialisation for thousands of steps, so the decay
ramps up as ``1 - (1 + step) ** -power`` (k-diffusion's ``EMAWarmup`` with inv_gamma = 1), capped
at ``max_decay``; with power = 1 this is ``1 - 1 / (step + 1)``, the running mean of all weights.

The averages are kept in float32 whatever the training dtype, keyed like the modules' state dicts
(``"unet.backbone..."``), so they can be saved to safetensors and loaded back bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn


def ema_decay(step: int, max_decay: float, power: float) -> float:
    """Decay used for the update after optimizer step ``step`` (1-based): 0 at step 0, -> max_decay."""
    if step <= 0:
        return 0.0
    return min(max_decay, 1.0 - (1.0 + step) ** -power)


def _named_state(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Floating-point parameters and persistent buffers of every module, prefixed by its name."""
    out = {}
    for prefix, module in modules.items():
        for key, tensor in module.state_dict(keep_vars=True).items():
            if tensor.is_floating_point():
                out[f"{prefix}.{key}"] = tensor
    return out


class EMA:
    """EMA of ``modules`` (name -> module). Call :meth:`update` after every optimizer step."""

    def __init__(self, modules: Mapping[str, nn.Module], max_decay: float = 0.999, power: float = 0.75):
        if not 0 <= max_decay < 1:
            raise ValueError(f"EMA max_decay must be in [0, 1), got {max_decay}")
        if power <= 0:
            raise ValueError(f"EMA power must be > 0, got {power}")
        self.modules = dict(modules)
        self.max_decay = max_decay
        self.power = power
        self.shadow: dict[str, torch.Tensor] = {
            k: t.detach().float().clone() for k, t in _named_state(self.modules).items()
        }

    @torch.no_grad()
    def update(self, step: int) -> float:
        """Blend the current weights in after optimizer step ``step``; returns the decay used."""
        decay = ema_decay(step, self.max_decay, self.power)
        live = _named_state(self.modules)
        keys = list(self.shadow)
        avg = [self.shadow[k] for k in keys]
        cur = [live[k].detach().float() for k in keys]
        torch._foreach_lerp_(avg, cur, 1.0 - decay)
        return decay

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.shadow.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        unexpected = sorted(set(state) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA state does not match the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        for key, value in state.items():
            if value.shape != self.shadow[key].shape:
                raise ValueError(f"EMA state {key} has shape {tuple(value.shape)}, "
                                 f"the model has {tuple(self.shadow[key].shape)}")
            self.shadow[key].copy_(value)

    @torch.no_grad()
    def copy_to(self, modules: Mapping[str, nn.Module] | None = None) -> None:
        """Write the averaged weights into ``modules`` (default: the tracked ones)."""
        target = _named_state(dict(modules) if modules is not None else self.modules)
        for key, value in self.shadow.items():
            target[key].copy_(value.to(target[key].dtype))

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Temporarily run the tracked modules with the EMA weights (for validation and samples)."""
        live = _named_state(self.modules)
        backup = {k: t.detach().clone() for k, t in live.items()}
        try:
            self.copy_to()
            yield
        finally:
            with torch.no_grad():
                for key, value in backup.items():
                    live[key].copy_(value)
