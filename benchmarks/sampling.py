"""Sampling speed: seconds to generate audio per sampler and step count, end to end.

Times the three stages of a text-to-audio call separately (text encoding, diffusion sampling
with classifier-free guidance, vocoder) on the default UNetMel architecture. Speed does not
depend on the weights, so a randomly initialised default-size model is used unless --model is
given. Writes benchmarks/results/sampling.{json,md}.

    .venv/bin/python benchmarks/sampling.py                      # CPU, quick grid
    .venv/bin/python benchmarks/sampling.py --device cuda --batch-sizes 1 8 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

from audiodiff.conditioning import TextConditioner  # noqa: E402
from audiodiff.models import UNetMel, UNetMelConfig, load_vocoder  # noqa: E402
from audiodiff.pipelines import TextToAudioConfig, TextToAudioPipeline  # noqa: E402

PROMPT = "heavy rain falling on a tin roof"


def build_pipeline(model: str | None, device: str, dtype: torch.dtype) -> TextToAudioPipeline:
    if model:
        return TextToAudioPipeline.from_pretrained(model, device=device, dtype=dtype)
    config = TextToAudioConfig()
    unet = UNetMel(UNetMelConfig())
    # Non-zero output layer, so the sampler does real arithmetic everywhere.
    with torch.no_grad():
        for p in unet.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.01)
    return TextToAudioPipeline(unet, TextConditioner(), load_vocoder("hifigan-universal"), config).to(device, dtype)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(pipe, device, **kw) -> dict[str, float]:
    """One generation, with the text, sampling and vocoder stages timed separately."""
    sync(device)
    t0 = time.perf_counter()
    pipe.text._cache.clear()
    cond = pipe.text([PROMPT] * kw["batch_size"])  # noqa: F841  (warms the same path the call uses)
    sync(device)
    t1 = time.perf_counter()
    mel, req = pipe.generate_mel(PROMPT, **kw)
    sync(device)
    t2 = time.perf_counter()
    pipe.decode(mel, round(req.duration_s * pipe.sample_rate))
    sync(device)
    t3 = time.perf_counter()
    return {"text_s": t1 - t0, "sampling_s": t2 - t1, "vocoder_s": t3 - t2, "total_s": t3 - t0}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--model", default=None, help="a pipeline folder (default: random default-size model)")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--samplers", nargs="+", default=["dpmpp_2m", "euler", "heun", "ddim"])
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 25])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--extra-batch", type=int, default=8,
                        help="also time this batch size for the first sampler at the fewest steps (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    pipe = build_pipeline(args.model, args.device, dtype)
    grid = [(s, k, b) for s in args.samplers for k in args.steps for b in args.batch_sizes]
    if args.extra_batch and args.extra_batch not in args.batch_sizes:
        grid.append((args.samplers[0], min(args.steps), args.extra_batch))
    # Warm-up (allocator, kernels, text encoder load) with the smallest call.
    time_call(pipe, args.device, duration_s=1.0, num_steps=1, sampler="euler", seed=0, batch_size=1)
    rows, records = [], []
    for sampler, steps, batch in grid:
        t = time_call(pipe, args.device, duration_s=args.duration_s, num_steps=steps, sampler=sampler,
                      seed=0, batch_size=batch)
        audio_s = args.duration_s * batch
        rec = dict(sampler=sampler, steps=steps, batch_size=batch, duration_s=args.duration_s, **t,
                   x_real_time=audio_s / t["total_s"])
        records.append(rec)
        rows.append([sampler, steps, batch, round(t["text_s"], 3), round(t["sampling_s"], 2),
                     round(t["vocoder_s"], 2), round(t["total_s"], 2), round(rec["x_real_time"], 2)])
        print(rows[-1], flush=True)
    info = machine_info(args.device)
    params = sum(p.numel() for p in pipe.unet.parameters())
    md = (f"# Sampling speed: {args.duration_s:g} s of audio, end to end\n\n{machine_line(info)}; "
          f"dtype {args.dtype}; UNetMel {params / 1e6:.1f}M parameters"
          f"{' (' + args.model + ')' if args.model else ' (default config, random weights)'}; "
          f"guidance on (2 UNet evaluations per step, batched).\n\n"
          + markdown_table(["sampler", "steps", "batch", "text s", "sampling s", "vocoder s", "total s",
                            "x real time"], rows))
    paths = write_results("sampling", {"machine": info, "unet_params": params, "dtype": args.dtype,
                                       "results": records}, md, args.out)
    print(md)
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    main()
