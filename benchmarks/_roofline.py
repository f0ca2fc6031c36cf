"""Where one call's time goes, and the floor for it: the work of the call (FLOPs and the bytes its
ops read and write), the device's measured peaks, and a profile of the kernels (GPU) or ops (CPU)
that ran, with the time the device sat idle between them (launch gaps and Python overhead).

    work = count_work(lambda: pipe(...))            # {"flops", "bytes", "ops"}
    peaks = measure_peaks(device, torch.bfloat16)   # {"tflops", "gb_per_s"}
    prof = profile_call(lambda: pipe(...), device)  # busy time, gaps, top kernels, categories
    floor_s = roofline_floor(work, peaks)

The byte count is that of the eager op sequence (every op reads its inputs from memory and
writes its outputs; views move nothing), so it is the traffic the code as written causes, an
upper bound on what a fused implementation needs. The floor takes the larger of the compute and
the memory time, both at the measured peaks.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

# Kernel / op name -> kind, first match wins (CUDA kernel names and aten op names alike).
KINDS = (
    ("attention", r"flash|fmha|attention|sdpa|softmax"),
    ("convolution", r"conv|cudnn|implicit_gemm|fprop|dgrad|wgrad|winograd|mkldnn"),
    ("matmul", r"gemm|cutlass|matmul|addmm|\bmm\b|bmm|linear|cublas"),
    ("normalisation", r"norm(?!al)|moments"),  # group / layer norm and their statistics, not randn's normal_
    ("elementwise", r"elementwise|vectorized|unrolled|add|mul|silu|gelu|relu|tanh|sigmoid|copy|fill|cat|pad"),
    ("reduction", r"reduce|sum|mean"),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return kind
    return "other"


class _BytesMode(TorchDispatchMode):
    """Counts the bytes of every tensor an op takes and returns (views and metadata ops excluded)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            tensors = [t for t in tree_flatten((args, kwargs or {}, out))[0] if isinstance(t, torch.Tensor)]
            self.bytes += sum(t.numel() * t.element_size() for t in tensors)
            self.ops += 1
        return out


def count_work(fn: Callable[[], object]) -> dict[str, float]:
    """FLOPs (torch's FlopCounterMode: matmuls, convolutions, attention) and bytes of one call."""
    with FlopCounterMode(display=False) as flops, _BytesMode() as moved:
        fn()
    return {"flops": float(flops.get_total_flops()), "bytes": float(moved.bytes), "ops": moved.ops}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` synchronised calls, after one untimed warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    return min(_seconds(fn, device, repeats))


def measure_peaks(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """The device's measured matmul throughput in ``dtype`` and its copy bandwidth (read + write)."""
    cuda = device.type == "cuda"
    n = 8192 if cuda else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = 10 if cuda else 2

    def matmuls():
        for _ in range(inner):
            torch.mm(a, b)

    seconds = _best_seconds(matmuls, device, 5 if cuda else 3)
    tflops = 2 * n**3 * inner / seconds / 1e12
    del a, b
    src = torch.empty((2**30 if cuda else 2**27) // 4, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), device, 10 if cuda else 5)
    return {"tflops": tflops, "gb_per_s": 2 * src.numel() * 4 / seconds / 1e9, "matmul_n": n,
            "dtype": str(dtype).removeprefix("torch.")}


def roofline_floor(work: dict[str, float], peaks: dict[str, float]) -> dict[str, float]:
    compute_s = work["flops"] / (peaks["tflops"] * 1e12)
    memory_s = work["bytes"] / (peaks["gb_per_s"] * 1e9)
    return {"compute_s": compute_s, "memory_s": memory_s, "floor_s": max(compute_s, memory_s)}


def _merged_length(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def profile_call(fn: Callable[[], object], device: torch.device, top: int = 15,
                 repeats: int = 5) -> dict[str, object]:
    """Profile one call (after a warm-up): its wall time (the median of ``repeats`` unprofiled
    calls), the time the device was busy (the union of the kernels' intervals on CUDA; the ops'
    self time on the CPU), the idle rest, the number of kernels / ops, the busy time per kind and
    the top kernels by total time."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    walls = _seconds(fn, device, repeats)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    events = prof.events()
    if cuda:
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        spans = [(e.time_range.start, e.time_range.end) for e in kernels]
        busy_us = _merged_length(spans)
        per_name = [(e.name, e.time_range.end - e.time_range.start) for e in kernels]
    else:
        # leaf ops: their self time is where the CPU computed; the rest of the wall is Python,
        # dispatch and the framework
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU and e.name.startswith("aten::")]
        per_name = [(e.name, e.self_cpu_time_total) for e in kernels]
        busy_us = sum(t for _, t in per_name)
    totals: dict[str, list[float]] = {}
    for name, us in per_name:
        totals.setdefault(name, []).append(us)
    ranked = sorted(totals.items(), key=lambda kv: -sum(kv[1]))
    kinds: dict[str, float] = {}
    for name, us in totals.items():
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + sum(us) / 1e6
    wall = statistics.median(walls)
    busy = busy_us / 1e6
    return {
        "wall_s": wall, "walls_s": walls, "busy_s": busy, "idle_s": max(0.0, wall - busy),
        "launches": len(per_name), "kinds_s": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "top": [{"name": name, "calls": len(us), "total_s": sum(us) / 1e6, "kind": kind_of(name)}
                for name, us in ranked[:top]],
        "unit": "kernels" if cuda else "aten ops (self time)",
    }
