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
    python benchmarks/solver_error.py --threads 2 --steps 6 8 --samplers dpmpp_2m --sigma-max 80 20 10  # schedules

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

from audiodiff.diffusion import NoiseScheduleConfig  # noqa: E402
from audiodiff.pipelines import TextToAudioPipeline  # noqa: E402

PROMPTS = ("heavy rain falling on a roof", "a dog barking twice", "a church bell ringing",
           "footsteps on a wooden floor", "a car engine idling", "a short electronic beep")


def mel(pipe, prompt: str, seed: int, steps: int, sampler: str, duration_s: float,
        schedule: NoiseScheduleConfig | None = None) -> torch.Tensor:
    """The mel of one case on ``schedule``'s Karras sigmas (None: the pipeline's own)."""
    sigmas = None if schedule is None else schedule.sigmas(steps)
    out, _ = pipe.generate_mel(prompt, duration_s=duration_s, num_steps=steps, sampler=sampler, seed=seed,
                               sigmas=sigmas)
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
    p.add_argument("--sigma-max", type=float, nargs="+", default=None,
                   help="Karras schedules to compare, from each of these sigma_max (default: the model's own)")
    p.add_argument("--rho", type=float, default=None, help="with --sigma-max: the schedules' rho (default: the model's)")
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
    own = pipe.config.schedule
    schedules = ([None] if args.sigma_max is None else
                 [own.replace(sigma_max=sigma_max, rho=args.rho or own.rho) for sigma_max in args.sigma_max])
    records, ref_check = [], []
    for schedule in schedules:
        label = "model's" if schedule is None else f"sigma_max {schedule.sigma_max:g}, rho {schedule.rho:g}"
        refs = {case: mel(pipe, *case, args.reference_steps, "dpmpp_2m", args.duration_s, schedule) for case in cases}
        # the reference's own error: against twice its steps, on the first case
        finer = mel(pipe, *cases[0], 2 * args.reference_steps, "dpmpp_2m", args.duration_s, schedule)
        ref_check.append(float((refs[cases[0]] - finer).abs().mean()))
        for sampler in args.samplers:
            for steps in args.steps:
                errors = [float((mel(pipe, *case, steps, sampler, args.duration_s, schedule) - refs[case]).abs().mean())
                          for case in cases]
                records.append({"schedule": label, "sampler": sampler, "steps": steps,
                                "mean_error": statistics.mean(errors), "errors": errors})
                print(f"{label}: {sampler:>9} {steps:3d} steps: mean |mel - reference| "
                      f"{records[-1]['mean_error']:.4f}", flush=True)
    info = machine_info("cpu")
    rows = [[r["schedule"], r["sampler"], r["steps"], round(r["mean_error"], 4),
             round(max(r["errors"]), 4)] for r in records]
    md = (f"# Distance to the converged output, per sampler and step count\n\n{machine_line(info)}; model: "
          f"{args.model or 'bundled'} ({pipe.dtype}); {len(cases)} prompt/seed cases of {args.duration_s:g} s at the "
          f"model's guidance; reference: dpmpp_2m at {args.reference_steps} steps of the same schedule (its own "
          f"error against {2 * args.reference_steps} steps: {', '.join(f'{e:.4f}' for e in ref_check)}). Error: "
          f"mean |mel - reference| in the normalised mel.\n\n"
          + markdown_table(["schedule", "sampler", "steps", "mean error", "worst case"], rows) + "\n")
    payload = {"machine": info, "model": args.model, "dtype": str(pipe.dtype), "cases": cases,
               "reference_steps": args.reference_steps, "reference_error": max(ref_check), "records": records,
               "seconds": time.perf_counter() - t0}
    json_path, md_path = write_results("solver-error", payload, md, args.out)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
