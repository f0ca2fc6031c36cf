"""Reproducible Gaussian noise: one CPU generator per batch item.

A seed must give the same audio whatever the batch size and whatever the device (CPU, CUDA,
MPS): different devices have different random number generators, and one generator shared by a
batch makes item i depend on how many items came before it. So every item gets its own
``torch.Generator`` on the CPU, noise is drawn there in float32, stacked, and only then moved
to the target device and dtype (the idea of EDM's ``StackedRandomGenerator``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"a seed must be an int, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"a seed must be in [0, 2**63), got {seed}")
    return seed


def seeds_for_batch(seed: int, n: int) -> list[int]:
    """The per-item seeds of a batch of n generated from ``seed``: [seed, seed + 1, ...].

    Item i of a batch therefore equals a batch of one generated with ``seed + i``.
    """
    _check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return [_check_seed(seed + i) for i in range(n)]


def generators_from_seeds(seeds: Sequence[int]) -> list[torch.Generator]:
    """One freshly seeded CPU ``torch.Generator`` per seed."""
    return [torch.Generator(device="cpu").manual_seed(_check_seed(s)) for s in seeds]


def randn_from_generators(
    shape_per_item: Sequence[int],
    generators: Sequence[torch.Generator],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, item i drawn from ``generators[i]`` (each advances).

    Drawn on the CPU in float32 whatever ``dtype`` is, so the values do not depend on the
    device or dtype asked for (beyond the final rounding).
    Returns: (len(generators), *shape_per_item) on ``device`` in ``dtype``.
    """
    shape = tuple(int(d) for d in shape_per_item)
    if len(generators) == 0:
        return torch.empty((0, *shape), device=device, dtype=dtype)
    items = []
    for g in generators:
        if g.device.type != "cpu":
            raise ValueError(f"noise generators must live on the CPU, got one on {g.device}")
        items.append(torch.randn(shape, generator=g, dtype=torch.float32, device="cpu"))
    return torch.stack(items).to(device=device, dtype=dtype)


def randn_from_seeds(
    shape_per_item: Sequence[int],
    seeds: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise with item i drawn from a CPU generator seeded with ``seeds[i]``.

    Seed s gives the same item regardless of batch size, position in the batch, or device.
    Returns: (len(seeds), *shape_per_item) on ``device`` in ``dtype``.
    """
    return randn_from_generators(shape_per_item, generators_from_seeds(seeds), device, dtype)


def randn_like_cpu(
    x: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None
) -> torch.Tensor:
    """Noise shaped like x, drawn on the CPU in float32, then moved to x's device and dtype.

    generator: one CPU generator for the whole batch, a sequence of B generators (one per item,
    see :func:`randn_from_generators`), or None for torch's global CPU generator.
    """
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"noise generators must live on the CPU, got one on {generator.device}")
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32, device="cpu")
        return noise.to(device=x.device, dtype=x.dtype)
    generators = list(generator)
    if len(generators) != x.shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {x.shape[0]}")
    return randn_from_generators(x.shape[1:], generators, x.device, x.dtype)
