"""Is a new model better than the old one? A paired comparison of ``audiodiff evaluate`` reports.

Two reports made with the same prompts, seeds and real clips score the same clips of the same
categories: clip j of category c was generated from the same prompt and starting noise by both
models. So the label scores compare clip by clip, which is far more sensitive than comparing
two accuracies: only the *discordant* clips (right for one model, wrong for the other) carry
information, and McNemar's exact test asks whether their split could be a fair coin's.

    audiodiff evaluate --model OLD -o old0.json -q; audiodiff evaluate --model OLD --seed 1 -o old1.json -q
    audiodiff evaluate --model NEW -o new0.json -q; audiodiff evaluate --model NEW --seed 1 -o new1.json -q
    audiodiff evaluate-compare --base old0.json old1.json --new new0.json new1.json

Reports pair in the order given (seed 0 with seed 0, ...); their clips are pooled. The Frechet
distance has no per-clip form: it is compared per pair, against how far apart the two seeds of
one model lie (the noise of the measure at this set size).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

# What must match for two reports to score the same clips against the same real set.
_SAME_SETTINGS = ("clips_per_category", "real_per_category", "duration_s", "seed", "k_neighbours", "data", "trim_db")
_SHOWN_SETTINGS = ("model", "steps", "sampler", "guidance", "guidance_interval", "autoguidance", "guide", "dtype",
                   "sound_lengths")
LEVELS = {"top1": 1, "top5": 5}


def mcnemar_exact(base_only: int, new_only: int) -> float:
    """Two-sided exact McNemar p-value: the chance, under a fair coin, of a split of the
    ``base_only + new_only`` discordant pairs at least as uneven as the one seen."""
    if base_only < 0 or new_only < 0:
        raise ValueError(f"counts must be >= 0, got {base_only} and {new_only}")
    n = base_only + new_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(base_only, new_only) + 1)) / 2 ** n  # exact ints: no overflow
    return min(1.0, 2.0 * tail)


def load_report(path: str | Path) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no evaluation report at {path}: write one with `audiodiff evaluate -o {path}`") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a JSON report of `audiodiff evaluate` ({e})") from None
    if not isinstance(report, dict) or "model" not in report.get("generated", {}):
        raise ValueError(f"{path} holds no generated model's scores: it must be written by "
                         "`audiodiff evaluate --model DIR -o FILE` (a report of real data alone has none)")
    if "per_clip" not in report["generated"]["model"]:
        raise ValueError(f"{path} has no per-clip results (written before `audiodiff evaluate` recorded "
                         "them); run `audiodiff evaluate` again to write them")
    report["_path"] = str(path)
    return report


def _check_pair(base: dict, new: dict) -> None:
    names = base["_path"], new["_path"]
    for key in ("embedder", "taxonomy_version"):
        if base.get(key) != new.get(key):
            raise ValueError(f"{names[0]} and {names[1]} differ in {key} ({base.get(key)!r} vs {new.get(key)!r}): "
                             "their scores do not compare")
    for key in _SAME_SETTINGS:
        if base["settings"].get(key) != new["settings"].get(key):
            raise ValueError(f"{names[0]} and {names[1]} differ in the setting {key!r} ({base['settings'].get(key)!r} "
                             f"vs {new['settings'].get(key)!r}); a paired comparison needs the same prompts, seeds "
                             "and real clips: run both with the same evaluate options")
    if base["real"]["clips"] != new["real"]["clips"]:
        raise ValueError(f"{names[0]} and {names[1]} were scored against different real sets "
                         f"({base['real']['clips']} vs {new['real']['clips']} clips)")
    a, b = base["generated"]["model"]["per_clip"], new["generated"]["model"]["per_clip"]
    keys_a = [(c["category"], c["prompt"]) for c in a]
    keys_b = [(c["category"], c["prompt"]) for c in b]
    if keys_a != keys_b:
        first = next((i for i, (x, y) in enumerate(zip(keys_a, keys_b)) if x != y), min(len(a), len(b)))
        raise ValueError(f"{names[0]} and {names[1]} did not generate the same clips (first difference at "
                         f"clip {first}: {keys_a[first] if first < len(a) else 'none'} vs "
                         f"{keys_b[first] if first < len(b) else 'none'}); use the same taxonomy and options")


def compare_reports(base: Sequence[dict], new: Sequence[dict], alpha: float = 0.05) -> dict:
    """Pair ``base[i]`` with ``new[i]`` (reports as :func:`load_report` returns them), pool their
    clips and compare. Returns counts, McNemar p-values per level, the Frechet distances per pair,
    per-category changes and a one-line verdict per measure."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not base or len(base) != len(new):
        raise ValueError(f"give as many --new reports as --base reports (one per seed), got {len(base)} and {len(new)}")
    for b, n in zip(base, new):
        _check_pair(b, n)
    rank_b = [c["rank"] for r in base for c in r["generated"]["model"]["per_clip"]]
    rank_n = [c["rank"] for r in new for c in r["generated"]["model"]["per_clip"]]
    cats = [c["category"] for r in base for c in r["generated"]["model"]["per_clip"]]
    out: dict = {"clips": len(rank_b), "pairs": len(base),
                 "base": [{k: r["settings"].get(k) for k in _SHOWN_SETTINGS} | {"report": r["_path"]} for r in base],
                 "new": [{k: r["settings"].get(k) for k in _SHOWN_SETTINGS} | {"report": r["_path"]} for r in new],
                 "alpha": alpha}
    for name, k in LEVELS.items():
        hit_b = [r <= k for r in rank_b]
        hit_n = [r <= k for r in rank_n]
        base_only = sum(x and not y for x, y in zip(hit_b, hit_n))
        new_only = sum(y and not x for x, y in zip(hit_b, hit_n))
        p = mcnemar_exact(base_only, new_only)
        better = "new" if new_only > base_only else "base"
        out[name] = {"base": sum(hit_b), "new": sum(hit_n), "base_only": base_only, "new_only": new_only,
                     "p_value": p, "verdict": f"{better} better (p = {p:.3g})" if p < alpha
                     else f"no significant difference (p = {p:.3g} >= {alpha:g})"}
    out["mean_rank"] = {"base": sum(rank_b) / len(rank_b), "new": sum(rank_n) / len(rank_n)}
    fd = [{"seed": b["settings"]["seed"], "base": b["generated"]["model"]["fd"], "new": n["generated"]["model"]["fd"]}
          for b, n in zip(base, new)]
    out["fd"] = {"per_pair": fd, "base_mean": _mean([f["base"] for f in fd]), "new_mean": _mean([f["new"] for f in fd])}
    if len(fd) > 1 and all(f["base"] is not None and f["new"] is not None for f in fd):
        # The spread between one model's seeds: how much the measure moves with the noise alone.
        spread = max(max(f[m] for f in fd) - min(f[m] for f in fd) for m in ("base", "new"))
        lower = [f["new"] < f["base"] for f in fd]
        gap = out["fd"]["base_mean"] - out["fd"]["new_mean"]
        out["fd"]["seed_spread"] = spread
        if all(lower) and gap > spread:
            verdict = f"new lower on every pair, by {gap:.1f} on average: more than the seed spread {spread:.1f}"
        elif not any(lower) and -gap > spread:
            verdict = f"base lower on every pair, by {-gap:.1f} on average: more than the seed spread {spread:.1f}"
        else:
            verdict = f"within the noise (mean change {-gap:+.1f}, seed spread {spread:.1f})"
        out["fd"]["verdict"] = verdict
    else:
        out["fd"]["verdict"] = "one pair: no seed spread to judge the change against (give two seeds)"
    per_cat: dict[str, dict[str, int]] = {}
    for c, rb, rn in zip(cats, rank_b, rank_n):
        counts = per_cat.setdefault(c, {"clips": 0, "base": 0, "new": 0})
        counts["clips"] += 1
        counts["base"] += int(rb == 1)
        counts["new"] += int(rn == 1)
    out["per_category_top1"] = per_cat
    return out


def _mean(xs: Sequence[float | None]) -> float | None:
    return None if any(x is None for x in xs) else sum(xs) / len(xs)


def markdown_comparison(cmp: dict) -> str:
    from .evaluate import _fmt  # the report's number format ("-" for a missing value)

    def name(side: str) -> str:
        models = {s["model"] or "bundled default" for s in cmp[side]}
        return ", ".join(sorted(models))

    lines = [f"# audiodiff evaluate-compare: {cmp['clips']} paired clips from {cmp['pairs']} report pair(s)", "",
             f"base: {name('base')}; new: {name('new')}", "",
             "| measure | base | new | right only for base | right only for new | McNemar p | verdict |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for level in LEVELS:
        r = cmp[level]
        lines.append(f"| {level} (clips) | {r['base']} | {r['new']} | {r['base_only']} | {r['new_only']} | "
                     f"{r['p_value']:.3g} | {r['verdict']} |")
    lines.append(f"| mean rank of the true category | {cmp['mean_rank']['base']:.2f} | {cmp['mean_rank']['new']:.2f} "
                 "| | | | |")
    fd = cmp["fd"]
    lines += ["", "| seed | Frechet distance, base | new |", "|---:|---:|---:|"]
    lines += [f"| {f['seed']} | {_fmt(f['base'], 1)} | {_fmt(f['new'], 1)} |" for f in fd["per_pair"]]
    lines += ["", f"Frechet distance: {fd['verdict']}.", "",
              "Top-1 by category, where it changed (clips right, base -> new):", ""]
    changed = [f"{c} {v['base']} -> {v['new']} of {v['clips']}" for c, v in cmp["per_category_top1"].items()
               if v["base"] != v["new"]]
    lines.append("; ".join(changed) if changed else "none")
    return "\n".join(lines) + "\n"
