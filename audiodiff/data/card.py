"""The data card written beside every manifest: what is in a corpus and under which licences.

:func:`data_card` summarises clip records (the dicts the builders keep in their part files: the
manifest fields plus ``labels``) per source: clips, hours, splits, the most common labels and
the licences. :func:`card_markdown` renders it for people; the JSON form is for tools.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def data_card(name: str, records: Iterable[dict], description: str = "",
              notes: Iterable[str] = ()) -> dict:
    """Summary of clip records: totals and, per source, clips / hours / splits / labels / licences."""
    sources: dict[str, dict] = {}
    total_clips, total_s = 0, 0.0
    splits: Counter = Counter()
    for rec in records:
        src = sources.setdefault(rec["source"], {"clips": 0, "seconds": 0.0, "splits": Counter(),
                                                 "labels": Counter(), "licences": Counter(),
                                                 "with_melody": 0})
        src["clips"] += 1
        src["seconds"] += rec["duration_s"]
        src["splits"][rec["split"]] += 1
        src["licences"][rec["license"]] += 1
        src["with_melody"] += int(bool(rec.get("melody")))
        for label in rec.get("labels") or ():
            src["labels"][label] += 1
        total_clips += 1
        total_s += rec["duration_s"]
        splits[rec["split"]] += 1
    per_source = {
        name_: {"clips": s["clips"], "hours": round(s["seconds"] / 3600, 3),
                "splits": dict(sorted(s["splits"].items())),
                "labels": dict(s["labels"].most_common(25)), "distinct_labels": len(s["labels"]),
                "licences": dict(s["licences"].most_common()), "with_melody": s["with_melody"]}
        for name_, s in sorted(sources.items())}
    return {"name": name, "description": description, "clips": total_clips,
            "hours": round(total_s / 3600, 3), "splits": dict(sorted(splits.items())),
            "sources": per_source, "notes": list(notes)}


def card_markdown(card: dict) -> str:
    """The card as a Markdown page."""
    lines = [f"# Data card: {card['name']}", ""]
    if card.get("description"):
        lines += [card["description"], ""]
    split_text = ", ".join(f"{k} {v}" for k, v in card["splits"].items())
    lines += [f"**{card['clips']} clips, {card['hours']:.2f} hours** ({split_text}).", ""]
    lines += ["| source | clips | hours | train / valid / test | licences | top labels |",
              "|---|---:|---:|---|---|---|"]
    for name, s in card["sources"].items():
        sp = s["splits"]
        split = f"{sp.get('train', 0)} / {sp.get('valid', 0)} / {sp.get('test', 0)}"
        licences = "; ".join(f"{k} ({v})" for k, v in list(s["licences"].items())[:3])
        labels = ", ".join(list(s["labels"])[:8])
        lines.append(f"| {name} | {s['clips']} | {s['hours']:.2f} | {split} | {licences} | {labels} |")
    if card.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in card["notes"]]
    return "\n".join(lines) + "\n"
