#!/usr/bin/env python
"""CPU latency of the real default pipeline (``TextToAudioPipeline.from_pretrained()``), end to
end and per stage, for the variants that make up the CPU defaults, measured in one run.

Each variant changes one thing against the one before, and the variants are timed interleaved
(round-robin over the repeats), so a noisy shared machine slows all of them alike:

* ``before``: the settings the bundled model shipped with: UNet weights in the default
  (contiguous) layout, HiFi-GAN as 1D convolutions, 10 DPM++ 2M steps, guidance at every step,
  no autoguidance (as in the three variants after it);
* ``channels-last``: the UNet channels-last and HiFi-GAN as channels-last 2D convolutions (same
  results to float rounding; what the library does on the CPU now);
* ``+interval``: guidance limited to ``--interval`` (one forward of 1 item instead of 2 outside);
* ``+steps N``: ``--fewer-steps`` steps;
* ``defaults``: no overrides at all: whatever the bundled pipeline's config says, float32 weights;
* ``+bf16``: the defaults with the denoiser and vocoder in bf16 (the vocoder's last stage float32),
  what ``--dtype auto`` (the CLI's default) picks on CPUs with native bf16 (AVX512-BF16, AMX);
* ``+bf16 -autoguidance`` (a model with a guide network of its own, such as the bundled one):
  ``+bf16`` with autoguidance off, what its extra network call per step costs;
* ``+bf16 +autoguidance W`` (with ``--guide``): ``+bf16`` autoguided by that guide;
* ``+bf16 N steps`` (with ``--bf16-steps N ...``): ``+bf16`` at N sampling steps, what a step
  count costs at the CLI's settings otherwise;
* ``+bf16 +compile`` (with ``--compile``): ``+bf16`` with the UNet (and guide) under
  ``torch.compile`` (inductor); its compile time is reported, not timed in the rows.

Also the floor: the FLOPs of sampling and of the vocoder at the defaults (torch's FlopCounterMode)
against this machine's measured convolution peak in the same dtype; and the cold start:
``audiodiff generate PROMPT -o OUT.wav`` in a fresh process (wall time and peak RSS from
``/usr/bin/time``), the way a new user meets it.

    python benchmarks/cpu_latency.py --threads 2 --durations 5 10 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

PROMPT = "heavy rain falling on a roof"
EVERY_STEP = (0.0, float("inf"))


def variants(args, own_guide: bool = False) -> dict[str, dict]:
    """name -> layout, call keywords (they override the pipeline's defaults) and weights dtype;
    ``own_guide``: the model has a guide network of its own (autoguidance by default)."""
    interval = tuple(args.interval)
    off = {"autoguidance": 0.0}
    table = {
        "before": {"fast_layout": False, "kw": {"num_steps": 10, "guidance_interval": EVERY_STEP, **off}},
        "channels-last": {"fast_layout": True, "kw": {"num_steps": 10, "guidance_interval": EVERY_STEP, **off}},
        "+interval": {"fast_layout": True, "kw": {"num_steps": 10, "guidance_interval": interval, **off}},
        f"+steps {args.fewer_steps}": {"fast_layout": True,
                                       "kw": {"num_steps": args.fewer_steps, "guidance_interval": interval, **off}},
        "defaults": {"fast_layout": True, "kw": {}},
        "+bf16": {"fast_layout": True, "kw": {}, "dtype": "bf16"},
    }
    if own_guide:
        table["+bf16 -autoguidance"] = {"fast_layout": True, "kw": off, "dtype": "bf16"}
    if getattr(args, "guide", None):  # one more network call per step: what autoguidance costs
        table[f"+bf16 +autoguidance {args.autoguidance:g}"] = {
            "fast_layout": True, "kw": {"autoguidance": args.autoguidance}, "dtype": "bf16"}
    for n in getattr(args, "bf16_steps", None) or []:
        table[f"+bf16 {n} steps"] = {"fast_layout": True, "kw": {"num_steps": n}, "dtype": "bf16"}
    if getattr(args, "compile", False):
        table["+bf16 +compile"] = {"fast_layout": True, "kw": {}, "dtype": "bf16", "compile": True}
    return {name: {"dtype": "fp32", "compile": False, **variant} for name, variant in table.items()}


def compile_networks(pipe) -> None:
    """The pipeline's UNet (and guide network) under torch.compile, in place."""
    pipe.denoiser.net = torch.compile(pipe.unet)
    if pipe.guide is not None:
        pipe.guide = torch.compile(pipe.guide)


def set_layout(pipe, fast: bool) -> None:
    pipe.unet.to(memory_format=torch.channels_last if fast else torch.contiguous_format)
    pipe.vocoder.cpu_channels_last = fast


def run_once(pipe, duration_s: float, kw: dict) -> dict[str, float]:
    t0 = time.perf_counter()
    mel, req = pipe.generate_mel(PROMPT, duration_s=duration_s, seed=0, **kw)
    t1 = time.perf_counter()
    wav = pipe.decode(mel, round(req.duration_s * pipe.sample_rate))
    t2 = time.perf_counter()
    assert wav.shape[-1] == round(duration_s * pipe.sample_rate)
    return {"total_s": t2 - t0, "sampling_s": t1 - t0, "vocoder_s": t2 - t1,
            "steps": req.num_steps, "guidance_interval": req.guidance_interval}


def conv_peak_gflops(dtype: torch.dtype, repeats: int = 5) -> float:
    """This machine's measured peak for the convolutions that dominate: a 256-channel, kernel-7
    channels-last convolution over 20,000 frames (what oneDNN reaches at its best)."""
    x = torch.randn(1, 256, 1, 20000, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 1, 7, dtype=dtype)
    torch.nn.functional.conv2d(x, w, padding=(0, 3))
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.conv2d(x, w, padding=(0, 3))
    return 2 * 256 * 256 * 7 * 20000 * repeats / (time.perf_counter() - t0) / 1e9


def flop_floor(pipes: dict, records: list[dict], duration_s: float) -> list[dict]:
    """FLOPs of sampling and of the vocoder at the defaults, per weights dtype, against the measured
    convolution peak: the time they would take at that peak, and the share of it reached."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for name, pipe in pipes.items():
        rec = next((r for r in records if r["dtype"] == name and r["duration_s"] == duration_s
                    and r["variant"] in ("defaults", "+bf16")), None)
        if rec is None:
            continue
        with torch.inference_mode():
            with FlopCounterMode(display=False) as counter:
                mel, req = pipe.generate_mel(PROMPT, duration_s=duration_s, seed=0)
            sampling = counter.get_total_flops()
            with FlopCounterMode(display=False) as counter:
                pipe.decode(mel, round(req.duration_s * pipe.sample_rate))
            vocoder = counter.get_total_flops()
        peak = conv_peak_gflops(pipe.dtype)
        for stage, flops, seconds in (("sampling", sampling, rec["median_sampling_s"]),
                                      ("vocoder", vocoder, rec["median_vocoder_s"])):
            rows.append({"weights": name, "stage": stage, "gflop": flops / 1e9, "seconds": seconds,
                         "gflops_per_s": flops / 1e9 / seconds, "peak_gflops_per_s": peak,
                         "floor_s": flops / 1e9 / peak, "share_of_peak": flops / 1e9 / seconds / peak})
    return rows


def cold_start(model: str | None, repeats: int) -> dict:
    """``audiodiff generate`` in a fresh process: wall seconds and peak RSS."""
    exe = Path(sys.executable).with_name("audiodiff")
    timer = shutil.which("time") or "/usr/bin/time"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            cmd = [timer, "-v", str(exe), "generate", PROMPT, "-o", f"{tmp}/out{i}.wav", "-q"]
            if model:
                cmd += ["--model", model]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if done.returncode:
                raise RuntimeError(f"audiodiff generate failed:\n{done.stderr[-2000:]}")
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
            runs.append({"wall_s": wall, "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None})
    return {"runs": runs, "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in runs)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    p.add_argument("--durations", nargs="+", type=float, default=[5.0, 10.0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--interval", nargs=2, type=float, default=[0.1, 50.0], metavar=("LO", "HI"))
    p.add_argument("--fewer-steps", type=int, default=8)
    p.add_argument("--bf16-steps", type=int, nargs="+", default=None, metavar="N",
                   help="add a '+bf16 N steps' variant per N: the CLI's settings at N sampling steps")
    p.add_argument("--variants", nargs="+", default=None, help="a subset of the variant names")
    p.add_argument("--cold-repeats", type=int, default=3, help="cold starts of the CLI (0 = skip)")
    p.add_argument("--compile", action="store_true",
                   help="add a bf16 variant with the networks under torch.compile (minutes of compiling first)")
    p.add_argument("--guide", default=None, metavar="DIR",
                   help="a guide network (UNet or pipeline folder): adds a bf16 variant with autoguidance")
    p.add_argument("--autoguidance", type=float, default=1.0, help="its weight (default 1)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from audiodiff.pipelines import TextToAudioPipeline

    from audiodiff.hub import CONFIG_NAME, DEFAULT_MODEL_DIR, resolve_pretrained
    from audiodiff.pipelines.text_to_audio import GUIDE_FOLDER

    folder = DEFAULT_MODEL_DIR if args.model is None else resolve_pretrained(args.model)
    table = variants(args, own_guide=(folder / GUIDE_FOLDER / CONFIG_NAME).is_file())
    names = args.variants or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(table)}")
    kinds = sorted({(table[n]["dtype"], table[n]["compile"]) for n in names})
    pipes = {k: TextToAudioPipeline.from_pretrained(args.model, dtype=k[0], guide=args.guide) for k in kinds}
    for (_, compiled), pipe in pipes.items():
        if compiled:
            compile_networks(pipe)
    pipe_of = {n: pipes[table[n]["dtype"], table[n]["compile"]] for n in names}
    records, compile_s = [], {}
    with torch.inference_mode():
        for duration in args.durations:
            times: dict[str, list[dict]] = {n: [] for n in names}
            for n in names:  # warm-up (first-call allocations, oneDNN primitive caches, compiling)
                pipe = pipe_of[n]
                set_layout(pipe, table[n]["fast_layout"])
                t0 = time.perf_counter()
                run_once(pipe, duration, table[n]["kw"])
                if table[n]["compile"]:
                    first = compile_s[f"{n} {duration:g} s"] = time.perf_counter() - t0
                    print(f"{duration:4.0f} s  {n:>14}: first call (compiling) {first:.1f} s", flush=True)
            for _ in range(args.repeats):
                for n in names:
                    pipe = pipe_of[n]
                    set_layout(pipe, table[n]["fast_layout"])
                    times[n].append(run_once(pipe, duration, table[n]["kw"]))
            for n in names:
                runs = times[n]
                rec = {"variant": n, "dtype": table[n]["dtype"], "duration_s": duration,
                       "steps": runs[0]["steps"],
                       "guidance_interval": runs[0]["guidance_interval"],
                       **{f"median_{k}": statistics.median(r[k] for r in runs)
                          for k in ("total_s", "sampling_s", "vocoder_s")},
                       "min_total_s": min(r["total_s"] for r in runs),
                       "times_s": [r["total_s"] for r in runs]}
                records.append(rec)
                print(f"{duration:4.0f} s  {n:>14}: {rec['median_total_s']:6.2f} s "
                      f"(sampling {rec['median_sampling_s']:.2f}, vocoder {rec['median_vocoder_s']:.2f})", flush=True)
    for pipe in pipes.values():
        set_layout(pipe, True)
    floor = flop_floor({d: pipe for (d, compiled), pipe in pipes.items() if not compiled}, records, args.durations[0])
    cold = cold_start(args.model, args.cold_repeats) if args.cold_repeats else None

    base = {r["duration_s"]: r["median_total_s"] for r in records if r["variant"] == names[0]}
    rows = []
    for r in records:
        interval = r["guidance_interval"]
        gi = "every step" if interval is None or interval[1] == float("inf") and interval[0] == 0 else \
            f"{interval[0]:g} < sigma <= {interval[1]:g}"
        r["speedup_vs_" + names[0]] = base[r["duration_s"]] / r["median_total_s"]
        rows.append([r["variant"], r["dtype"], r["duration_s"], r["steps"], gi, round(r["median_sampling_s"], 2),
                     round(r["median_vocoder_s"], 2), round(r["median_total_s"], 2), round(r["min_total_s"], 2),
                     round(r["duration_s"] / r["median_total_s"], 2), round(r[f"speedup_vs_{names[0]}"], 2)])
    info = machine_info("cpu")
    from audiodiff.pipelines.base import dtype_name, resolve_dtype

    auto_dtype = dtype_name(resolve_dtype("auto", "cpu") or torch.float32)
    md = (f"# CPU latency of the default pipeline, end to end\n\n{machine_line(info)}; {args.threads} threads; "
          f"model: {args.model or 'bundled'}{'; guide: ' + args.guide if args.guide else ''}; prompt {PROMPT!r}; median of {args.repeats} interleaved runs.\n\n"
          + markdown_table(["variant", "weights", "audio s", "steps", "guidance", "sampling s", "vocoder s", "total s",
                            "min s", "x real time", f"speed-up vs {names[0]}"], rows) + "\n")
    if floor:
        md += (f"\nWork against this machine's measured convolution peak ({args.durations[0]:g} s of audio, "
               "defaults; peak: a 256-channel kernel-7 convolution):\n\n"
               + markdown_table(["weights", "stage", "GFLOP", "s", "GFLOP/s", "peak GFLOP/s", "floor s",
                                 "share of peak"],
                                [[f["weights"], f["stage"], round(f["gflop"], 1), round(f["seconds"], 2),
                                  round(f["gflops_per_s"]), round(f["peak_gflops_per_s"]), round(f["floor_s"], 2),
                                  round(f["share_of_peak"], 2)] for f in floor]) + "\n")
    if cold:
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in cold["runs"])
        md += (f"\nCold start, `audiodiff generate {PROMPT!r} -o out.wav` in a fresh process (5 s of audio, "
               f"defaults, `--dtype auto` = {auto_dtype}): median {cold['median_wall_s']:.1f} s wall over {len(cold['runs'])} runs "
               f"({walls}), peak RSS {cold['peak_rss_mb']:.0f} MB.\n")
    if compile_s:
        md += ("\nFirst call of the compiled variant, compiling included (not in the rows): "
               + ", ".join(f"{k}: {v:.1f} s" for k, v in compile_s.items()) + ".\n")
    payload = {"machine": info, "threads": args.threads, "model": args.model, "records": records, "flop_floor": floor,
               "cold_start": cold, "compile_first_call_s": compile_s}
    json_path, md_path = write_results("cpu-latency", payload, md, args.out)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
