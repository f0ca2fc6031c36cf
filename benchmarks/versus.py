#!/usr/bin/env python
"""One table from one GPU session: our default pipeline against the peers, as ratios.

    python benchmarks/versus.py RESULTS_DIR [--out DIR]

RESULTS_DIR is what scripts/gpu_latency.sh wrote (latency-cuda.json with our defaults,
no-autoguidance/latency-cuda.json, peers-cuda.json at 10 steps, default-steps/peers-cuda.json at
the peers' published step counts); all of them come from the same card in the same call. For each
batch size, our fastest variant at the default step count is the reference; every other row
(ours without autoguidance, each peer's) gets its latency over ours at that batch (above 1: we
are faster) next to its real-time factor, which accounts for the clip length each model makes
(ours 10 s, AudioLDM-S 10.24 s, Stable Audio Open 10 s out of its 47.5 s window). The issue's goals are checked
at the end: 10 s of audio at batch 1 within 15 ms, and at least 2000x real time batched.
Writes versus-cuda.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, write_results  # noqa: E402

GOAL_LATENCY_S = 0.015  # 10 s of audio, batch 1
GOAL_X_REAL_TIME = 2000.0  # batched


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def best_ours(records: list[dict], steps: int | None = None) -> dict[int, dict]:
    """Per batch size: the fastest variant's row at ``steps`` (default: the fewest timed)."""
    if not records:
        return {}
    steps = steps if steps is not None else min(r["steps"] for r in records)
    best: dict[int, dict] = {}
    for r in records:
        if r["steps"] == steps and (r["batch"] not in best or r["median_s"] < best[r["batch"]]["median_s"]):
            best[r["batch"]] = r
    return best


def compare(results: Path) -> tuple[dict, str]:
    ours = _load(results / "latency-cuda.json")
    if ours is None:
        raise FileNotFoundError(f"{results / 'latency-cuda.json'} not found: run scripts/gpu_latency.sh first")
    noag = _load(results / "no-autoguidance" / "latency-cuda.json")
    peer_rows, seen = [], set()  # the 10-step rows of both runs: the first run's
    for path in (results / "peers-cuda.json", results / "default-steps" / "peers-cuda.json"):
        for r in (_load(path) or {"records": []})["records"]:
            key = (r["peer"], r["variant"], r["steps"], r["batch"])
            if key not in seen:
                seen.add(key)
                peer_rows.append(r)
    ref = best_ours(ours["records"])
    ref_noag = best_ours(noag["records"]) if noag else {}
    rows, out = [], []

    def add(name: str, r: dict, ours_s: float | None) -> None:
        """``ours_s``: our latency at this batch; the row gets its own over ours (how many times
        longer its user waits)."""
        ratio = r["median_s"] / ours_s if ours_s else None
        out.append({"model": name, "variant": r["variant"], "steps": r["steps"], "duration_s": r["duration_s"],
                    "batch": r["batch"], "median_s": r["median_s"], "x_real_time": r["x_real_time"],
                    "latency_vs_ours": ratio})
        rows.append([name, r["variant"], r["steps"], r["duration_s"], r["batch"], round(r["median_s"] * 1000, 1),
                     round(r["x_real_time"], 1), f"{ratio:.2f}x" if ratio else "-"])

    for batch in sorted(ref):
        ours_s = ref[batch]["median_s"]
        add("audiodiff (default)", ref[batch], None)
        if batch in ref_noag:
            add("audiodiff, autoguidance off", ref_noag[batch], ours_s)
        for r in sorted((p for p in peer_rows if p["batch"] == batch), key=lambda p: (p["peer"], p["variant"], p["steps"])):
            add(r["peer"], r, ours_s)

    one = ref.get(1)
    batched = max(ref.values(), key=lambda r: r["x_real_time"]) if ref else None
    goals = {
        "latency_10s_batch1_s": one["median_s"] if one else None,
        "latency_goal_s": GOAL_LATENCY_S,
        "latency_goal_met": bool(one and one["duration_s"] >= 10 and one["median_s"] <= GOAL_LATENCY_S),
        "best_x_real_time": batched["x_real_time"] if batched else None,
        "best_x_real_time_batch": batched["batch"] if batched else None,
        "x_real_time_goal": GOAL_X_REAL_TIME,
        "x_real_time_goal_met": bool(batched and batched["x_real_time"] >= GOAL_X_REAL_TIME),
    }
    machine = ours["machine"]
    md = (f"# audiodiff against the peers, one GPU session\n\n{machine_line(machine)}; "
          f"ours: {ours.get('model')} weights, dpmpp_2m, guidance interval {ours.get('guidance_interval')}, "
          f"autoguidance {ours.get('autoguidance')}; peers: random weights at their published "
          "architectures (benchmarks/peers.py). Last column: the row's latency over ours at the same batch "
          "(above 1x: we are faster).\n\n"
          + markdown_table(["model", "variant", "steps", "audio s", "batch", "median ms", "x real time",
                            "latency vs ours"], rows)
          + f"\n\nGoals: 10 s at batch 1 within {GOAL_LATENCY_S * 1000:.0f} ms: "
          + (f"{goals['latency_10s_batch1_s'] * 1000:.1f} ms ({'met' if goals['latency_goal_met'] else 'not met'})"
             if one else "not measured")
          + f"; at least {GOAL_X_REAL_TIME:.0f}x real time batched: "
          + (f"{goals['best_x_real_time']:.0f}x at batch {goals['best_x_real_time_batch']} "
             f"({'met' if goals['x_real_time_goal_met'] else 'not met'})" if batched else "not measured")
          + ".\n")
    return {"machine": machine, "rows": out, "goals": goals}, md


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="the folder scripts/gpu_latency.sh wrote")
    p.add_argument("--out", default=None, help="where to write versus-cuda.json/.md (default: RESULTS)")
    args = p.parse_args(argv)
    payload, md = compare(Path(args.results))
    json_path, md_path = write_results("versus-cuda", payload, md, args.out or args.results)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
