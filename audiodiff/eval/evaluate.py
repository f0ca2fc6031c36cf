"""``audiodiff evaluate``: how recognisable and how realistic a text-to-audio model's sounds are.

For every taxonomy category (:mod:`audiodiff.eval.taxonomy`) the model generates clips from the
category's held-out prompts; generated and real clips are embedded with aiSFX
(:mod:`audiodiff.eval.embedding`) and scored (:mod:`audiodiff.eval.metrics`):

* label accuracy (top-1/top-5) of a per-class k-NN classifier over the labelled real clips;
  the same classifier on the real clips themselves (leave-one-out) is the ceiling;
* Frechet distance of generated vs real embeddings; two halves of the real set give the floor
  (the distance between two samples of the same distribution at that size);
* optionally the same for an untrained model of the same architecture (random init);
* the sounding fraction of generated and real clips (:func:`~audiodiff.eval.metrics.sounding_fraction`):
  whether a model lets a short sound end, as real effects do, or fills the clip.

Generated clips are embedded as the corpora store real ones: with their leading and trailing
silence cut (:func:`trim_generated`, the corpora's -60 dB threshold). The real clips were trimmed
when the corpora were built, and a correct short sound followed by the silence of a 4 s clip
embeds far from its trimmed self (real clips padded so score top-1 0.491 instead of 0.656, most
often as kick drums: ``benchmarks/representation.py``). ``trim_db=None`` embeds them whole, as
reports without a ``trim_db`` setting (before 2026-12-05) did.

Real clips per category come from held-out splits first ("test": sources reserved for
evaluation, then "valid"), topped up from "train" when a category has too few; the JSON records
how many of each, since train clips flatter a model that memorised them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..data.corpus import ClipPolicy, trim_silence
from .embedding import EMBEDDER_VERSION, EmbeddingCache, SoundEmbedder, embed_files
from .metrics import class_scores, frechet_distance, label_accuracy, sounding_frames, true_class_ranks
from .taxonomy import TAXONOMY_VERSION, Category, get_categories, label_caption

SPLIT_PRIORITY = ("test", "valid", "train")  # held-out first
SOUNDING_FRAME_S = 2048 / 22050  # librosa's default frame at the pipeline's rate, at any rate
TRIM_DB = ClipPolicy.trim_db  # the corpora's: silence this far below a clip's peak is cut (-60 dB)


@dataclasses.dataclass(frozen=True)
class RealClip:
    path: Path
    category: str
    split: str
    source: str


def find_manifests(data_dirs: Sequence[str | os.PathLike]) -> list[Path]:
    """Every manifest.jsonl in the given folders (or the files themselves), one level deep."""
    found: list[Path] = []
    for d in data_dirs:
        d = Path(d)
        if d.is_file():
            found.append(d)
        elif (d / "manifest.jsonl").is_file():
            found.append(d / "manifest.jsonl")
        elif d.is_dir():
            found += sorted(d.glob("*/manifest.jsonl"))
    if not found:
        raise FileNotFoundError(f"no manifest.jsonl in {', '.join(map(str, data_dirs))}; "
                                "build corpora with `audiodiff prepare all --out data/corpora`")
    return found


def collect_real_clips(manifests: Sequence[Path], categories: Sequence[Category],
                       per_category: int) -> list[RealClip]:
    """Up to ``per_category`` labelled clips per category, held-out splits first, in a fixed order.

    Reserved sources (split "test") are read here on purpose: this is evaluation code."""
    wanted = {c.name for c in categories}
    pools: dict[str, list[tuple[int, str, RealClip]]] = {c.name: [] for c in categories}
    for manifest in manifests:
        with open(manifest, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                captions = row.get("captions") or []
                label = label_caption(captions[0]) if captions else None
                if label not in wanted:
                    continue
                split = row.get("split", "train")
                path = (manifest.parent / row["path"]).resolve()
                rank = SPLIT_PRIORITY.index(split) if split in SPLIT_PRIORITY else len(SPLIT_PRIORITY)
                order = hashlib.sha1(row["path"].encode()).hexdigest()
                pools[label].append((rank, order, RealClip(path, label, split, row.get("source", "?"))))
    clips: list[RealClip] = []
    for c in categories:
        clips += [clip for _, _, clip in sorted(pools[c.name], key=lambda t: t[:2])[:per_category]]
    return clips


SOUND_LENGTHS = ("auto", "untold", "real")
_LENGTH_NOTES = {"real": "told the lengths of real clips, ", "auto": "sound lengths predicted from the prompt, "}


def untrained_like(pipe=None, seed: int = 0):
    """A pipeline with a randomly initialised UNet: ``pipe``'s architecture, text encoder and
    vocoder, or the default architecture (UNetMelConfig(), MiniLM, packaged HiFi-GAN)."""
    from ..models.unet_mel import UNetMel, UNetMelConfig
    from ..pipelines import TextToAudioConfig, TextToAudioPipeline

    torch.manual_seed(seed)
    if pipe is not None:
        unet = UNetMel(pipe.unet.config).to(pipe.device, next(pipe.unet.parameters()).dtype)
        return TextToAudioPipeline(unet, pipe.text, pipe.vocoder, pipe.config, pipe.sound_length)
    from ..conditioning.text import TextConditioner, TextConditionerConfig
    from ..models.vocoder import load_vocoder

    config = TextToAudioConfig()
    return TextToAudioPipeline(UNetMel(UNetMelConfig()), TextConditioner(TextConditionerConfig()),
                               load_vocoder(config.vocoder, mel_config=config.mel), config)


def generate_clips(pipe, categories: Sequence[Category], clips_per_category: int, duration_s: float,
                   steps: int | None, guidance: float | None, seed: int, desc: str,
                   progress: bool = True, guidance_interval: tuple[float, float] | None = None,
                   sound_lengths: dict[str, list[float]] | str | None = "auto",
                   autoguidance: float | None = None, sampler: str | None = None,
                   ) -> tuple[list[torch.Tensor], list[str], list[str]]:
    """Clip j of a category uses prompt j mod len(prompts); prompt i's items use seeds
    seed + 1000 i + 0, 1, ... so a category's clips do not depend on the other categories.
    ``sound_lengths``: seconds of sound per category (models with a timing input), clip j gets
    value j mod their number; or the pipeline's ``sound_s`` for every clip ("auto", None)."""
    from tqdm.auto import tqdm

    wavs, labels, prompts = [], [], []
    bar = tqdm(total=len(categories) * clips_per_category, desc=desc, unit="clip", disable=not progress)
    for cat in categories:
        for i, prompt in enumerate(cat.prompts):
            n = len(range(i, clips_per_category, len(cat.prompts)))
            if n == 0:
                continue
            sound_s = sound_lengths
            if isinstance(sound_lengths, dict):
                lengths = sound_lengths[cat.name]
                sound_s = [lengths[j % len(lengths)] for j in range(i, clips_per_category, len(cat.prompts))]
            out = pipe(prompt, duration_s=duration_s, num_steps=steps, guidance_scale=guidance,
                       seed=seed + 1000 * i, batch_size=n, guidance_interval=guidance_interval, sound_s=sound_s,
                       autoguidance=autoguidance, sampler=sampler)
            wavs += [w.float().cpu() for w in out.waveforms]
            labels += [cat.name] * n
            prompts += [prompt] * n
            bar.update(n)
    bar.close()
    return wavs, labels, prompts


def trim_generated(wav: torch.Tensor, sample_rate: int, trim_db: float | None = TRIM_DB) -> torch.Tensor:
    """A generated clip (C, T) as the corpora store a real one: leading and trailing audio more
    than ``-trim_db`` dB below its peak cut, with 10 ms to spare (``audiodiff.data.corpus.trim_silence``).
    ``trim_db=None`` or a silent clip: unchanged."""
    if trim_db is None:
        return wav
    return trim_silence(wav.reshape(-1, wav.shape[-1]), sample_rate, trim_db)


def clip_sounding_frames(wav: np.ndarray | torch.Tensor, sample_rate: int, duration_s: float
                         ) -> tuple[np.ndarray, int]:
    """:func:`sounding_frames` of the first ``duration_s`` (zero-padded) with ~93 ms frames, and
    the hop in samples (frame i starts at i * hop)."""
    frame = max(16, round(SOUNDING_FRAME_S * sample_rate))
    wav = wav.float().numpy() if isinstance(wav, torch.Tensor) else wav
    return sounding_frames(wav, round(duration_s * sample_rate), frame_length=frame, hop_length=frame // 4), frame // 4


def clip_sounding_fraction(wav: np.ndarray | torch.Tensor, sample_rate: int, duration_s: float) -> float:
    """:func:`sounding_fraction` of the first ``duration_s`` (zero-padded) with ~93 ms frames."""
    return float(np.mean(clip_sounding_frames(wav, sample_rate, duration_s)[0]))


def real_sounding_fractions(paths: Sequence[Path], duration_s: float) -> list[float]:
    from ..audio import load_audio

    out = []
    for path in paths:
        wav, sr = load_audio(path, mono=True)
        out.append(clip_sounding_fraction(wav[0, :math.ceil(duration_s * sr)], sr, duration_s))
    return out


def _halves(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Alternate clips of each category between two halves (stratified split)."""
    seen: dict[str, int] = {}
    first = []
    for lab in labels:
        first.append(seen.get(lab, 0) % 2 == 0)
        seen[lab] = seen.get(lab, 0) + 1
    first = np.array(first)
    return np.flatnonzero(first), np.flatnonzero(~first)


def _score_generated(emb: np.ndarray, labels: list[str], prompts: list[str], real_emb: np.ndarray,
                     real_idx: np.ndarray, names: list[str], k: int) -> dict:
    """Scores of the generated clips; ``per_clip`` keeps each clip's rank of its true category, so two
    reports over the same prompts and seeds compare clip by clip (:mod:`audiodiff.eval.compare`)."""
    idx = np.array([names.index(lab) for lab in labels])
    scores = class_scores(emb, real_emb, real_idx, len(names), k)
    ranks = true_class_ranks(scores, idx)
    pred = scores.argmax(axis=1)
    per_cat = {n: float(np.mean(ranks[idx == c] == 1)) if (idx == c).any() else None
               for c, n in enumerate(names)}
    per_clip = [{"category": lab, "prompt": prompt, "rank": int(rank), "predicted": names[int(p)]}
                for lab, prompt, rank, p in zip(labels, prompts, ranks, pred)]
    return {"clips": len(labels), "top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
            "fd": frechet_distance(emb, real_emb) if len(emb) > 1 else None, "per_category_top1": per_cat,
            "per_clip": per_clip}


def run_evaluation(model: str | None = None, baseline: str | None = None,
                   data_dirs: Sequence[str | os.PathLike] = ("data/corpora",),
                   category_names: list[str] | None = None, clips_per_category: int = 4,
                   real_per_category: int = 16, duration_s: float = 4.0, steps: int | None = None,
                   guidance: float | None = None, seed: int = 0, device: str | None = None,
                   cache_dir: str | os.PathLike | None = None, k_neighbours: int = 3,
                   progress: bool = True, guidance_interval: tuple[float, float] | None = None,
                   sound_lengths: str = "auto", dtype: str | None = "auto",
                   autoguidance: float | None = None, guide: str | os.PathLike | None = None,
                   pipeline=None, trim_db: float | None = TRIM_DB, sampler: str | None = None) -> dict:
    """Score a model (and/or an untrained baseline) against the real clips; returns the report dict.

    sound_lengths (models with a timing input): "auto" (the pipeline's default: lengths predicted
    from the prompt when the model has a sound length head, else the model decides), "untold"
    (the model decides) or "real" (each generated clip is told the length of a real clip of its
    category, up to ``duration_s``, as a user who says how long the sound should be).
    dtype: the model's weights, as ``TextToAudioPipeline.from_pretrained`` takes it ("auto": what
    ``audiodiff generate`` uses on this machine); the report records what it resolved to.
    autoguidance: the model's weight of its guide network (None: its default; the untrained
    baseline has none); the report records what it resolved to. guide: a guide network folder in
    place of the model's own (``TextToAudioPipeline.from_pretrained(guide=...)``). pipeline: a
    loaded TextToAudioPipeline to score instead of loading ``model`` (``model`` then only names
    it in the report). trim_db: generated clips lose their leading and trailing silence below this
    level relative to their peak before they are embedded, as the real clips did when the corpora
    were built (:func:`trim_generated`); None embeds them whole (the sounding fraction is always
    measured on the whole clip). sampler: a sampler name (``audiodiff.diffusion.SAMPLERS``) in
    place of the model's default (None)."""
    if trim_db is not None and not -120 <= trim_db < 0:
        raise ValueError(f"--trim-db must be a level below the peak in [-120, 0) dB, or none; got {trim_db}")
    if clips_per_category < 1 or real_per_category < 2:
        raise ValueError("need --clips-per-category >= 1 and --real-per-category >= 2")
    if sound_lengths not in SOUND_LENGTHS:
        raise ValueError(f"--sound-lengths must be one of {', '.join(SOUND_LENGTHS)}, got {sound_lengths!r}")
    if sampler is not None:
        from ..diffusion import get_sampler

        get_sampler(sampler)  # an unknown name fails here, not after minutes of embedding
    if baseline not in (None, "untrained"):
        raise ValueError(f"--baseline must be 'untrained', got {baseline!r}")
    start = time.perf_counter()
    categories = get_categories(category_names)
    names = [c.name for c in categories]
    real = collect_real_clips(find_manifests(data_dirs), categories, real_per_category)
    counts = {n: sum(r.category == n for r in real) for n in names}
    empty = [n for n, c in counts.items() if c < 2]
    if empty:
        raise ValueError(f"categories with fewer than 2 real clips in {', '.join(map(str, data_dirs))}: "
                         f"{', '.join(empty)}. The evaluation set is built by `audiodiff prepare all --out "
                         "data/corpora` (effects, music, and the synth corpus of sweeps, tones and noises, "
                         "which `audiodiff prepare synth --out data/corpora/synth` adds to an older build), "
                         "or pass --categories to score a subset")

    pipe, weights = pipeline, None
    if pipe is None and (model is not None or _bundled_model_present()):
        from ..pipelines import TextToAudioPipeline

        pipe = TextToAudioPipeline.from_pretrained(model, device=device, dtype=dtype, guide=guide)
        if guide is not None and pipe.autoguidance(autoguidance) == 0:
            raise ValueError(f"guide={guide} is only used with autoguidance > 0 (this model's default weight is 0)")
    if pipe is not None:
        from ..pipelines.base import dtype_name

        weights = dtype_name(pipe.dtype)
    if sound_lengths == "real" and (pipe is None or not pipe.unet.config.timing_channels):
        # Before the (minutes-long) embedding of the real clips.
        raise ValueError("--sound-lengths real needs a model with a timing input (unet timing_channels = 1)")

    embedder = SoundEmbedder(device=device or "cpu")
    cache = EmbeddingCache(cache_dir)
    real_emb = embed_files(embedder, [r.path for r in real], duration_s, cache, progress)
    real_idx = np.array([names.index(r.category) for r in real])
    real_sounding = real_sounding_fractions([r.path for r in real], duration_s)
    ceiling = label_accuracy(real_emb, real_idx, real_emb, real_idx, len(names), k_neighbours, leave_one_out=True)
    a, b = _halves([r.category for r in real])
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"model": model, "baseline": baseline, "clips_per_category": clips_per_category,
                     "real_per_category": real_per_category, "duration_s": duration_s, "steps": steps,
                     "guidance": guidance, "guidance_interval": None if guidance_interval is None
                     else list(guidance_interval), "sound_lengths": sound_lengths, "seed": seed,
                     "device": device or "cpu", "dtype": weights,
                     "autoguidance": None if pipe is None else pipe.autoguidance(autoguidance),
                     "guide": None if guide is None else str(guide), "trim_db": trim_db, "sampler": sampler,
                     "k_neighbours": k_neighbours, "data": [str(d) for d in data_dirs]},
        "embedder": EMBEDDER_VERSION, "taxonomy_version": TAXONOMY_VERSION,
        "host": platform.node(), "torch": torch.__version__,
        "real": {"clips": len(real), "top1_leave_one_out": ceiling["top1"], "top5_leave_one_out": ceiling["top5"],
                 "fd_half_vs_half": frechet_distance(real_emb[a], real_emb[b]), "half_sizes": [len(a), len(b)],
                 "sounding_fraction": float(np.mean(real_sounding)),
                 "by_split": {s: sum(r.split == s for r in real) for s in sorted({r.split for r in real})}},
        "categories": [{"name": c.name, "prompts": list(c.prompts), "real_clips": counts[c.name],
                        "real_by_split": {s: sum(r.split == s for r in real if r.category == c.name)
                                          for s in sorted({r.split for r in real if r.category == c.name})}}
                       for c in categories],
        "generated": {},
    }

    targets = [("model", pipe)] if pipe is not None else []
    if pipe is None and baseline is None:
        report["note"] = "no model (the bundled default is not shipped yet): real-data ceiling and floor only"
    if baseline == "untrained":
        targets.append(("untrained", untrained_like(pipe, seed).to(device)))
    lengths = {"auto": "auto", "untold": None}.get(sound_lengths)
    if pipe is not None and sound_lengths == "auto" and pipe.sound_length is None:
        report["settings"]["sound_lengths"] = "untold"  # what "auto" does without a length head
    if sound_lengths == "real":
        lengths = {n: [min(float(sf.info(str(r.path)).duration), duration_s) for r in real if r.category == n]
                   for n in names}
    for name, p in targets:
        t0 = time.perf_counter()
        wavs, labels, prompts = generate_clips(p, categories, clips_per_category, duration_s, steps, guidance,
                                               seed, f"generating ({name})", progress, guidance_interval, lengths,
                                               autoguidance if p is pipe else None, sampler)
        gen_seconds = time.perf_counter() - t0
        emb = embedder.embed([trim_generated(w, p.sample_rate, trim_db) for w in wavs], p.sample_rate)
        scored = _score_generated(emb, labels, prompts, real_emb, real_idx, names, k_neighbours)
        scored["sounding_fraction"] = float(np.mean([clip_sounding_fraction(w.reshape(-1), p.sample_rate, duration_s)
                                                     for w in wavs]))
        scored["generation_s"] = round(gen_seconds, 1)
        report["generated"][name] = scored
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def _bundled_model_present() -> bool:
    from ..pipelines.text_to_audio import DEFAULT_MODEL_DIR, PIPELINE_CONFIG

    return (DEFAULT_MODEL_DIR / PIPELINE_CONFIG).is_file()


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_report(report: dict) -> str:
    s, real = report["settings"], report["real"]
    lines = [f"# audiodiff evaluate ({report['date']})", "",
             f"model `{(s['model'] or 'bundled default') if 'model' in report['generated'] else 'none'}`, "
             f"{len(report['categories'])} categories, "
             f"{s['clips_per_category']} generated clips per category ({s['duration_s']:g} s, steps "
             f"{s['steps'] or 'default'}{', sampler ' + s['sampler'] if s.get('sampler') else ''}, "
             f"guidance {s['guidance'] if s['guidance'] is not None else 'default'}"
             f"{'' if s.get('guidance_interval') is None else ' in sigma ' + str(tuple(s['guidance_interval']))}"
             f"{', autoguidance ' + format(s['autoguidance'], 'g') if s.get('autoguidance') else ''}"
             f"{' by ' + s['guide'] if s.get('autoguidance') and s.get('guide') else ''}, "
             f"{_LENGTH_NOTES.get(s.get('sound_lengths'), '')}"
             f"seed {s['seed']}{', weights ' + s['dtype'] if s.get('dtype') else ''}), "
             f"{real['clips']} real clips {real['by_split']}; embedding {report['embedder']}, "
             f"per-class {s['k_neighbours']}-NN (cosine) classifier over the real clips; generated clips "
             + (f"trimmed of silence below {s['trim_db']:g} dB of their peak, as the corpora's clips, before "
                "embedding." if s.get("trim_db") is not None else "embedded whole (not trimmed)."), "",
             "| clips | n | top-1 | top-5 | Frechet distance to real | sounding fraction |",
             "|---|---|---|---|---|---|",
             f"| real (leave-one-out: ceiling) | {real['clips']} | {_fmt(real['top1_leave_one_out'])} | "
             f"{_fmt(real['top5_leave_one_out'])} | {_fmt(real['fd_half_vs_half'], 2)} (half vs half "
             f"{real['half_sizes'][0]}/{real['half_sizes'][1]}: floor) | {_fmt(real.get('sounding_fraction'), 2)} |"]
    for name, g in report["generated"].items():
        lines.append(f"| {name} | {g['clips']} | {_fmt(g['top1'])} | {_fmt(g['top5'])} | {_fmt(g['fd'], 2)} | "
                     f"{_fmt(g.get('sounding_fraction'), 2)} |")
    if report.get("note"):
        lines += ["", report["note"]]
    gen_names = list(report["generated"])
    lines += ["", "| category | real clips |" + "".join(f" {n} top-1 |" for n in gen_names),
              "|---|---|" + "---|" * len(gen_names)]
    for c in report["categories"]:
        cells = [_fmt(report["generated"][n]["per_category_top1"].get(c["name"]), 2) for n in gen_names]
        split = ", ".join(f"{v} {k}" for k, v in c["real_by_split"].items())
        lines.append(f"| {c['name']} | {c['real_clips']} ({split}) |" + "".join(f" {x} |" for x in cells))
    lines += ["", f"{report['seconds']:.0f} s in all. Frechet distances compare only at equal set sizes. "
              "Sounding fraction: the share of ~93 ms frames within 40 dB of the clip's loudest, real clips "
              "zero-padded to the duration (a generator that never lets a sound end scores near 1)."]
    return "\n".join(lines) + "\n"


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_report(report: dict, output: str | os.PathLike) -> tuple[Path, Path]:
    """``output`` (JSON) and the markdown table next to it (same name, .md)."""
    output = Path(output)
    json_path = write_atomic(output, json.dumps(report, indent=2) + "\n")
    md_path = write_atomic(output.with_suffix(".md"), markdown_report(report))
    return json_path, md_path
