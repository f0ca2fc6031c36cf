"""Helpers shared by the benchmarks: describe the machine, format a table, write JSON + markdown.

Every benchmark writes ``<out>/<name>.json`` (all numbers, per clip where it makes sense) and
``<out>/<name>.md`` (the summary table), and names the machine the numbers came from, since
speed numbers mean nothing without it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def named_models(parser, specs: Sequence[str]) -> list[tuple[str, str | None]]:
    """``--model NAME=DIR`` values as (name, folder); none given: the bundled model
    (folder None). Errors through ``parser``, naming the accepted form."""
    models = []
    for spec in specs or ["bundled="]:
        name, sep, folder = spec.partition("=")
        if not sep or not name:
            parser.error(f"--model must be NAME=DIR, got {spec!r}")
        models.append((name, folder or None))
    return models


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo on Linux, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str | torch.device = "cpu") -> dict[str, object]:
    """CPU model, logical cores available to us, torch version and threads, the device used."""
    device = torch.device(device)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if hasattr(os, "getloadavg"):  # other jobs on the machine slow the timings down
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict[str, object]) -> str:
    """One line for a markdown report, e.g. ``CPU: AMD EPYC (2 cores), torch 2.4, device cpu``."""
    gpu = f", GPU: {info['gpu']}" if "gpu" in info else ""
    load = f", load average {info['load_avg_1m']}" if "load_avg_1m" in info else ""
    return (f"CPU: {info['cpu']} ({info['cores']} cores{load}), torch {info['torch']} "
            f"({info['torch_threads']} threads), device {info['device']}{gpu}")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation; NaN for no values."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.pstdev(vals) if len(vals) > 1 else 0.0)


def fmt_mean_std(values: Sequence[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    return "n/a" if math.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numeric columns are right-aligned."""
    def numeric(col: int) -> bool:
        return all(isinstance(r[col], (int, float)) for r in rows) and bool(rows)

    align = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, object], markdown: str,
                  out_dir: str | os.PathLike[str] = DEFAULT_OUT) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md``; return both paths.

    A UTC timestamp is added to the JSON; files are replaced atomically.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name,
               "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               **payload}
    paths = (out / f"{name}.json", out / f"{name}.md")
    for path, text in zip(paths, (json.dumps(payload, indent=2, default=str) + "\n",
                                  markdown.rstrip() + "\n")):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
