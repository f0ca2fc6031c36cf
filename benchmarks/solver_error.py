#!/usr/bin/env python
"""How close each sampler gets, in few steps, to the converged output of the same model: the
error a step count buys, which decides how few steps the defaults can take.

For each prompt and seed the bundled (or ``--model``) pipeline makes the mel with the
deterministic samplers at ``--steps`` and at ``--reference-steps`` (DPM-Solver++(2M), the same
noise, guidance and guidance interval); the error is the mean absolute difference to that
reference in the normalised mel (the vocoder's input; a silent frame is -1, full scale +1).
Deterministic samplers solve the same ODE, so a smaller error means the same sound reached in
fewer steps; the reference's own error is checked against a run with twice its steps.

    python benchmarks/solver_error.py --threads 2 --steps 4 6 8 12 --samplers dpmpp_2m dpmpp_3m euler

Writes benchmarks/results/solver-error.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

from audiodiff.pipelines import TextToAudioPipeline  # noqa: E402

PROMPTS = ("heavy rain falling on a roof", "a dog barking twice", "a church bell ringing",
           "footsteps on a wooden floor", "a car engine idling", "a short electronic beep")


def mel(pipe, prompt: str, seed: int, steps: int, sampler: str, duration_s: float) -> torch.Tensor:
    out, _ = pipe.generate_mel(prompt, duration_s=duration_s, num_steps=steps, sampler=sampler, seed=seed)
    return out.float()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    p.add_argument("--samplers", nargs="+", default=["dpmpp_2m", "dpmpp_3m", "euler"])
    p.add_argument("--steps", nargs="+", type=int, default=[4, 6, 8, 12])
    p.add_argument("--reference-steps", type=int, default=48)
    p.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--duration-s", type=float, default=4.0)
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CPUs with native bf16), fp32 or bf16")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(n < 1 for n in args.steps) or args.reference_steps < 2 * max(args.steps):
        p.error(f"--steps must be >= 1 and --reference-steps ({args.reference_steps}) at least twice the "
                f"largest of them ({max(args.steps)})")
    pipe = TextToAudioPipeline.from_pretrained(args.model, dtype=args.dtype)
    t0 = time.perf_counter()
    cases = [(prompt, seed) for prompt in args.prompts for seed in args.seeds]
    refs, ref_check = {}, []
    for prompt, seed in cases:
        refs[prompt, seed] = mel(pipe, prompt, seed, args.reference_steps, "dpmpp_2m", args.duration_s)
    # the reference's own error: against twice its steps, on the first case
    prompt, seed = cases[0]
    finer = mel(pipe, prompt, seed, 2 * args.reference_steps, "dpmpp_2m", args.duration_s)
    ref_check.append(float((refs[prompt, seed] - finer).abs().mean()))
    records = []
    for sampler in args.samplers:
        for steps in args.steps:
            errors = [float((mel(pipe, prompt, seed, steps, sampler, args.duration_s) - refs[prompt, seed]).abs().mean())
                      for prompt, seed in cases]
            records.append({"sampler": sampler, "steps": steps, "mean_error": statistics.mean(errors),
                            "errors": errors})
            print(f"{sampler:>9} {steps:3d} steps: mean |mel - reference| {records[-1]['mean_error']:.4f}", flush=True)
    info = machine_info("cpu")
    rows = [[r["sampler"], r["steps"], round(r["mean_error"], 4),
             round(max(r["errors"]), 4)] for r in records]
    md = (f"# Distance to the converged output, per sampler and step count\n\n{machine_line(info)}; model: "
          f"{args.model or 'bundled'} ({pipe.dtype}); {len(cases)} prompt/seed cases of {args.duration_s:g} s at the "
          f"model's guidance; reference: dpmpp_2m at {args.reference_steps} steps (its own error against "
          f"{2 * args.reference_steps} steps: {ref_check[0]:.4f}). Error: mean |mel - reference| in the normalised "
          f"mel.\n\n" + markdown_table(["sampler", "steps", "mean error", "worst case"], rows) + "\n")
    payload = {"machine": info, "model": args.model, "dtype": str(pipe.dtype), "cases": cases,
               "reference_steps": args.reference_steps, "reference_error": ref_check[0], "records": records,
               "seconds": time.perf_counter() - t0}
    json_path, md_path = write_results("solver-error", payload, md, args.out)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
