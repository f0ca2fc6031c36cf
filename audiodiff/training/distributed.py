"""torchrun / torch.distributed plumbing: one process per device, DDP, rank-0 side effects.

``torchrun --nproc_per_node N -m audiodiff.training train --config FILE`` starts N processes with
RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT in their environment; :func:`setup` reads them,
joins the process group (NCCL on GPUs, gloo on the CPU) and picks the device. Without those
variables everything runs in one process and every helper here is a no-op.

Sharding is by global sample position, not by a sampler object: optimizer step s consumes the
positions [P, P + batch_size) of the data stream, micro-batch m of rank r takes
``P + (m * world_size + r) * micro_batch + [0, micro_batch)``. Every item's crop, caption and noise
derive from its position alone, so N processes see exactly the samples one process would.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank among world_size processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(preference: str, local_rank: int) -> torch.device:
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def setup(device: str = "auto") -> DistEnv:
    """Read the torchrun environment, join the process group if there is one, pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30), **kwargs)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def any_flags(env: DistEnv, flags: list[bool]) -> list[bool]:
    """Element-wise OR of boolean flags over all ranks (one small all-reduce)."""
    if not env.distributed:
        return flags
    t = torch.tensor([float(f) for f in flags], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def mean_over_ranks(env: DistEnv, value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over all ranks (for logging the global loss)."""
    if not env.distributed:
        return value
    value = value.detach().clone().to(env.device)
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / env.world_size


def micro_positions(start: int, micro: int, micro_batch: int, env: DistEnv) -> range:
    """Global data positions of micro-batch ``micro`` on this rank for a step starting at ``start``."""
    first = start + (micro * env.world_size + env.rank) * micro_batch
    return range(first, first + micro_batch)
