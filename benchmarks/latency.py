#!/usr/bin/env python
"""End-to-end latency and throughput of the default text-to-audio pipeline: text encoding
(MiniLM), sampling (DPM-Solver++ 2M with classifier-free guidance batched into one forward) and
the HiFi-GAN vocoder, per precision / execution variant, batch size, duration and step count.

    python benchmarks/latency.py --device cuda                      # GPU variants, all sizes
    python benchmarks/latency.py --device cpu --batches 1 --durations 5 10 --variants fp32

Speed does not depend on the weights, so ``--model random`` (the default) builds every
component at the bundled model's architecture (configs/gpu_default.toml) with random weights:
it runs on a machine that has neither the MiniLM nor the HiFi-GAN weights. ``--model DIR``
times a trained UNet (with random text encoder / vocoder of the same architecture).

Variants: ``fp32`` (eager), ``bf16`` / ``fp16`` (weights in half precision, channels_last),
``bf16-graph`` (the UNet forward captured once per shape as a CUDA graph and replayed, which
removes the kernel-launch gaps that dominate a small UNet at batch 1), ``bf16-fullgraph`` (the
whole call, text encoder, every sampling step and the vocoder, captured as one CUDA graph per
batch, duration and step count: the fixed-shape loop launches nothing from Python). Writes
benchmarks/results/latency.json and .md with ratios against the fp32 baseline of the same run.

The bundled model samples with autoguidance (a second UNet of the same architecture, the guide,
runs on every step's batch: ``--autoguidance 1``, its default; 0 leaves it out) and samples
``--end-margin-frames`` (8) mel frames past the clip's end, cut off before the vocoder.

``--profile VARIANT`` adds where the time of one setting goes (batch 1, the first duration and
step count): its FLOPs and bytes, the device's measured matmul peak and copy bandwidth, the
floor they give, and a profile of the kernels (busy time, idle gaps between them, top kernels):

    python benchmarks/latency.py --device cuda --batches 1 --durations 10 --steps 8 \
        --guidance-interval 0.1 50 --profile bf16
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

from audiodiff.conditioning.base import Conditioning  # noqa: E402
from audiodiff.conditioning.minilm import BertConfig, BertEncoder, mean_pool  # noqa: E402
from audiodiff.diffusion import EDMDenoiser, NoiseScheduleConfig  # noqa: E402
from audiodiff.diffusion.guidance import AutoGuided, cfg_denoise  # noqa: E402
from audiodiff.diffusion.samplers import get_sampler  # noqa: E402
from audiodiff.models.unet_mel import UNetMel, UNetMelConfig  # noqa: E402
from audiodiff.models.vocoder import HiFiGAN, HiFiGANConfig  # noqa: E402
from audiodiff.pipelines.text_to_audio import TextToAudioConfig  # noqa: E402

MINILM = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                    layer_norm_eps=1e-12)
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16, "bf16-graph": torch.bfloat16,
        "bf16-fullgraph": torch.bfloat16, "fp32": torch.float32}
CUDA_ONLY = ("bf16-graph", "bf16-fullgraph")


def default_unet_config() -> UNetMelConfig:
    from audiodiff.training.config import load_train_config

    return load_train_config(ROOT / "configs" / "gpu_default.toml").task.unet


def bundled_default(key: str):
    """A setting of the bundled model's pipeline.json (its architecture is what --model random builds)."""
    return json.loads((ROOT / "audiodiff" / "assets" / "default" / "pipeline.json").read_text())[key]


def load_unet(model: str) -> UNetMel:
    if model == "random":
        return UNetMel(default_unet_config())
    from audiodiff.hub import load_component

    return load_component(Path(model) / "unet")


class GraphedNet(nn.Module):
    """Replays a CUDA graph of ``net(x, c_noise, cond)`` per input shape (static buffers are
    copied in, the output is copied out). For fixed-shape sampling loops on a GPU only."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.config = net.config
        self.graphs: dict = {}

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning | None = None) -> torch.Tensor:
        cond = cond or Conditioning()
        c_noise = c_noise.reshape(-1).expand(x.shape[0]).contiguous()
        key = (tuple(x.shape), x.dtype)
        if key not in self.graphs:
            static = {"x": x.clone(), "c": c_noise.clone(),
                      "pooled": None if cond.pooled is None else cond.pooled.clone(),
                      "frames": None if cond.frames is None else cond.frames.clone()}

            def call():
                return self.net(static["x"], static["c"], Conditioning(pooled=static["pooled"], frames=static["frames"]))

            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    call()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = call()
            self.graphs[key] = (graph, static, out)
        graph, static, out = self.graphs[key]
        static["x"].copy_(x)
        static["c"].copy_(c_noise)
        if static["pooled"] is not None:
            static["pooled"].copy_(cond.pooled)
        if static["frames"] is not None:
            static["frames"].copy_(cond.frames)
        graph.replay()
        return out.clone()


class Pipeline:
    """The default pipeline's compute, stage by stage, with random text token ids (the encoder's
    cost depends only on their number)."""

    def __init__(self, unet: UNetMel, device: torch.device, variant: str,
                 guidance_interval: tuple[float, float] | None = None, autoguidance: float = 0.0,
                 end_margin_frames: int = 0):
        self.device, self.variant, self.guidance_interval = device, variant, guidance_interval
        self.end_margin_frames = end_margin_frames
        dtype = HALF[variant]
        self.dtype = dtype
        self.text = BertEncoder(MINILM).to(device).eval()
        self.vocoder = HiFiGAN(HiFiGANConfig()).to(device, dtype).eval()
        self.net = self._prepare(unet, device, variant)
        self.denoiser = EDMDenoiser(self.net, sigma_data=0.5)
        if autoguidance > 0:  # the guide: a UNet of the same architecture (its weights do not matter here)
            guide = EDMDenoiser(self._prepare(UNetMel(unet.config), device, variant), sigma_data=0.5)
            self.denoiser = AutoGuided(self.denoiser, guide, autoguidance)
        self.null = torch.zeros(1, MINILM.hidden_size, device=device)
        self.schedule = NoiseScheduleConfig()
        self.sample = get_sampler("dpmpp_2m")

    @staticmethod
    def _prepare(unet: UNetMel, device: torch.device, variant: str) -> nn.Module:
        net = unet.to(device, HALF[variant]).eval()
        if HALF[variant] != torch.float32 or device.type == "cpu":  # as the library does on the CPU
            net = net.to(memory_format=torch.channels_last)
        return GraphedNet(net) if variant == "bf16-graph" else net

    @torch.inference_mode()
    def __call__(self, batch: int, duration_s: float, steps: int, guidance: float = 3.0) -> torch.Tensor:
        ids = torch.randint(1000, 30000, (batch, 12), device=self.device)
        mask = torch.ones(batch, 12, dtype=torch.bool, device=self.device)
        hidden = self.text(ids, mask)
        pooled = mean_pool(hidden, mask)
        frames_n = math.ceil(duration_s * 22050 / 256) + self.end_margin_frames
        cond = Conditioning(pooled=pooled.to(self.dtype), frames=torch.zeros(
            batch, 12, 80, frames_n, device=self.device, dtype=self.dtype))
        uncond = Conditioning(pooled=self.null.expand(batch, -1).to(self.dtype), frames=cond.frames)
        denoise = cfg_denoise(self.denoiser, cond, uncond, guidance, self.guidance_interval)
        sigmas = self.schedule.sigmas(steps)  # on the host, as the library keeps them: no sync, capturable
        x = torch.randn(batch, 1, 80, frames_n, device=self.device) * float(sigmas[0])
        x = self.sample(denoise, x, sigmas)
        x = x[..., : x.shape[-1] - self.end_margin_frames]
        wav = self.vocoder(x[:, 0].to(self.dtype) * 3 - 5)
        return wav[..., : round(duration_s * 22050)].float()


class GraphedPipeline:
    """A :class:`Pipeline` whose whole call is captured once per (batch, duration, steps) as one
    CUDA graph and replayed. Random token ids and the initial noise are drawn inside the graph
    (CUDA's generator is graph-safe: every replay draws new numbers). The returned waveform is the
    graph's own output buffer, overwritten by the next replay of the same key."""

    def __init__(self, pipe: Pipeline):
        self.pipe = pipe
        self.graphs: dict = {}

    def __call__(self, batch: int, duration_s: float, steps: int, guidance: float = 3.0) -> torch.Tensor:
        key = (batch, duration_s, steps, guidance)
        if key not in self.graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: cuDNN autotuning and lazy inits before capture
                for _ in range(2):
                    self.pipe(*key)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.pipe(*key)
            self.graphs[key] = (graph, out)
        graph, out = self.graphs[key]
        graph.replay()
        return out


def build_pipeline(model: str, device: torch.device, variant: str,
                   guidance_interval: tuple[float, float] | None = None, autoguidance: float = 0.0,
                   end_margin_frames: int = 0) -> Pipeline | GraphedPipeline:
    if variant not in HALF:
        raise ValueError(f"unknown variant {variant!r}; accepted: {', '.join(sorted(HALF))}")
    if variant in CUDA_ONLY and device.type != "cuda":
        raise ValueError(f"variant {variant} captures CUDA graphs: it needs --device cuda, got {device}")
    pipe = Pipeline(load_unet(model), device, variant, guidance_interval, autoguidance, end_margin_frames)
    return GraphedPipeline(pipe) if variant == "bf16-fullgraph" else pipe


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="random", help="'random' (architecture only) or a pipeline folder")
    p.add_argument("--variants", nargs="+", default=None,
                   help="fp32 bf16 fp16 bf16-graph bf16-fullgraph (default: all but fp16 on CUDA, fp32 on "
                        "the CPU)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--durations", nargs="+", type=float, default=[5.0, 10.0, 30.0])
    p.add_argument("--steps", nargs="+", type=int, default=[12, 25])
    p.add_argument("--guidance-interval", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="guide only the steps with LO < sigma <= HI (default: every step)")
    p.add_argument("--autoguidance", type=float, default=bundled_default("default_autoguidance"),
                   help="autoguidance weight (a guide UNet's forward on every step's batch; 0 = none; "
                        "default: the bundled model's)")
    p.add_argument("--end-margin-frames", type=int, default=TextToAudioConfig.end_margin_frames,
                   help="mel frames sampled past the end and cut off (default: the pipeline's)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--max-seconds", type=float, default=0, help="stop adding rows after this long (0 = no cap)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--profile", default=None, choices=sorted(HALF), metavar="VARIANT",
                   help="also profile this variant at batch 1, the first duration and step count, against "
                        "the floor from its FLOPs and bytes at the device's measured peaks")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = args.variants or (["fp32", "bf16", "bf16-graph", "bf16-fullgraph"] if device.type == "cuda"
                                 else ["fp32"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    info = machine_info(device)
    started = time.perf_counter()
    rows, records = [], []
    errors = {}
    for variant in variants:
        try:
            run_variant(variant, args, device, started, records)
        except Exception as err:  # one failing variant (e.g. graph capture) must not lose the others
            errors[variant] = f"{type(err).__name__}: {err}"
            print(f"{variant}: failed: {errors[variant]}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    profiled = None
    if args.profile:
        try:
            profiled = profile_setting(args.profile, args, device)
        except Exception as err:
            errors[f"profile {args.profile}"] = f"{type(err).__name__}: {err}"
            print(f"profile failed: {errors[f'profile {args.profile}']}", flush=True)
    base = {(r["steps"], r["duration_s"], r["batch"]): r["median_s"] for r in records if r["variant"] == variants[0]}
    for r in records:
        b = base.get((r["steps"], r["duration_s"], r["batch"]))
        r["speedup_vs_" + variants[0]] = b / r["median_s"] if b else None
        rows.append([r["variant"], r["steps"], r["duration_s"], r["batch"], round(r["median_s"] * 1000, 1),
                     round(r["x_real_time"], 1), round(r[f"speedup_vs_{variants[0]}"], 2) if b else "-"])
    md = (f"# Latency of the default pipeline (text + sampling + vocoder)\n\n{machine_line(info)}; "
          f"model: {args.model}; sampler dpmpp_2m, guidance 3 (one batched forward per guided step"
          f"{', guided where ' + str(args.guidance_interval[0]) + ' < sigma <= ' + str(args.guidance_interval[1]) if args.guidance_interval else ''}); "
          f"autoguidance {args.autoguidance:g} ({'a guide UNet of the same size on every step' if args.autoguidance else 'off'}), "
          f"{args.end_margin_frames} mel frames of end margin.\n\n"
          + markdown_table(["variant", "steps", "audio s", "batch", "median ms", "x real time",
                            f"speed-up vs {variants[0]}"], rows) + "\n"
          + (profile_markdown(profiled, records) if profiled else "")
          + "".join(f"\n{v} failed: {e}\n" for v, e in errors.items()))
    payload = {"machine": info, "model": args.model, "guidance_interval": args.guidance_interval,
               "autoguidance": args.autoguidance, "end_margin_frames": args.end_margin_frames,
               "records": records, "profile": profiled, "errors": errors}
    json_path, md_path = write_results(f"latency-{device.type}", payload, md, args.out)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return payload


def run_variant(variant: str, args, device: torch.device, started: float, records: list) -> None:
    interval = tuple(args.guidance_interval) if args.guidance_interval else None
    pipe = build_pipeline(args.model, device, variant, interval, args.autoguidance, args.end_margin_frames)
    for steps in args.steps:
        for duration in args.durations:
            for batch in args.batches:
                if args.max_seconds and time.perf_counter() - started > args.max_seconds:
                    break
                try:
                    timed(lambda: pipe(batch, duration, steps), device, 1)  # warm-up / capture
                    times = timed(lambda: pipe(batch, duration, steps), device, args.repeats)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    continue
                med = statistics.median(times)
                rec = {"variant": variant, "steps": steps, "duration_s": duration, "batch": batch,
                       "median_s": med, "times_s": times, "x_real_time": batch * duration / med}
                records.append(rec)
                print(f"{variant:>10} steps {steps:3d} {duration:5.1f} s x{batch:<3d} "
                      f"{med * 1000:9.1f} ms  {rec['x_real_time']:8.1f}x real time", flush=True)


def profile_setting(variant: str, args, device: torch.device) -> dict:
    """Work, peaks, floor and kernel profile of ``variant`` at batch 1, the first duration and
    step count (_roofline.py)."""
    from _roofline import count_work, measure_peaks, profile_call, roofline_floor

    interval = tuple(args.guidance_interval) if args.guidance_interval else None
    pipe = build_pipeline(args.model, device, variant, interval, args.autoguidance, args.end_margin_frames)
    duration, steps = args.durations[0], args.steps[0]

    def call():
        pipe(1, duration, steps)

    profiled = profile_call(call, device, repeats=args.repeats)
    # The work does not depend on graphs, and a graph's replay is invisible to the counters:
    # count it on the eager pipeline of the same precision.
    eager = variant.split("-")[0]  # bf16-graph / bf16-fullgraph -> bf16
    eager_pipe = pipe if eager == variant else build_pipeline(
        args.model, device, eager, interval, args.autoguidance, args.end_margin_frames)
    work = count_work(lambda: eager_pipe(1, duration, steps))
    peaks = measure_peaks(device, HALF[variant])
    floor = roofline_floor(work, peaks)
    print(f"profile {variant}: {profiled['wall_s'] * 1000:.1f} ms wall, {profiled['busy_s'] * 1000:.1f} ms busy "
          f"({profiled['launches']} {profiled['unit']}), floor {floor['floor_s'] * 1000:.2f} ms", flush=True)
    return {"variant": variant, "batch": 1, "duration_s": duration, "steps": steps, **profiled,
            "work": work, "peaks": peaks, "floor": floor}


def profile_markdown(prof: dict, records: list[dict]) -> str:
    """The profile as a markdown section: time split, floor, kinds and top kernels."""
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    same = [r for r in records if r["batch"] == 1 and r["duration_s"] == prof["duration_s"]
            and r["steps"] == prof["steps"]]
    work, peaks, floor = prof["work"], prof["peaks"], prof["floor"]
    rows = [["wall (median, unprofiled)", ms(prof["wall_s"])],
            [f"device busy ({prof['launches']} {prof['unit']})", ms(prof["busy_s"])],
            ["idle: launch gaps, Python, sync", ms(prof["idle_s"])],
            [f"compute floor: {work['flops'] / 1e9:.1f} GFLOP at {peaks['tflops']:.1f} TFLOP/s "
             f"({peaks['dtype']} matmul, measured)", ms(floor["compute_s"])],
            [f"memory floor: {work['bytes'] / 1e9:.2f} GB moved by {work['ops']} eager ops at "
             f"{peaks['gb_per_s']:.0f} GB/s (copy, measured)", ms(floor["memory_s"])]]
    rows += [[f"{r['variant']} (rows above)", ms(r["median_s"])] for r in same]
    text = (f"\n## Where the time goes: {prof['variant']}, batch 1, {prof['duration_s']:g} s, "
            f"{prof['steps']} steps\n\n" + markdown_table(["", "ms"], rows) + "\n\n"
            + markdown_table(["kind", "busy ms", "share of busy"],
                             [[k, ms(v), f"{v / prof['busy_s']:.0%}" if prof["busy_s"] else "-"]
                              for k, v in prof["kinds_s"].items()]) + "\n\n"
            + markdown_table(["top kernel" if prof["unit"] == "kernels" else "top op", "kind", "calls", "ms"],
                             [[t["name"][:90], t["kind"], t["calls"], ms(t["total_s"])] for t in prof["top"]])
            + "\n")
    return text


if __name__ == "__main__":
    main()
