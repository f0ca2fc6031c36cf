"""Build a captioned music corpus with melody labels (``audiodiff prepare music``).

Render specs come from :class:`audiodiff.data.music_render.MusicPlanner` (a seed fixes every
choice); each render is cut into segments of at most ``max_segment_s`` on mel-frame boundaries,
so the melody labels of :func:`~audiodiff.data.music_render.melody_pitch` stay aligned, and
written as FLAC with ``.pitch.npy`` / ``.melody.npy`` beside it. Renders are grouped in batches
of ``batch_size`` (one resumable unit each) until the corpus holds ``hours`` of audio; rerunning
with a larger ``hours`` keeps every earlier clip and adds more.

A missing soundfont is one report line (the others are used); an unreadable score or a failed
render is one report line and the build goes on.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio import Chroma, MelConfig, loudness_normalize, save_audio
from .card import card_markdown, data_card
from .corpus import BuildFolder, assign_split, clip_stats, cut_segments
from .manifest import ManifestEntry
from .midi import Track
from .music import MusicPiece, piece_notes
from .music_render import (DEFAULT_SOUNDFONTS, LICENCE, MusicPlanner, RenderSpec, _transpose, _trim_parts,
                           chroma_of, estimate_key, melody_pitch, music_captions, render_wav)

SAMPLE_RATE = 22050


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    os.replace(tmp, path)


def render_clips(folder: BuildFolder, spec: RenderSpec, max_piece_s: float, max_segment_s: float,
                 valid_fraction: float, mel: MelConfig, chroma: Chroma) -> tuple[list[dict], str]:
    """One render -> (clip records, "") or ([], why it was skipped)."""
    try:
        parts = piece_notes(spec.piece)
    except Exception as err:  # music21 raises many types on a bad score
        return [], f"cannot read score ({type(err).__name__}: {str(err)[:120]})"
    parts = _trim_parts(_transpose(parts, spec.transpose), max_piece_s * spec.tempo_bpm / 60.0)[:15]
    if not parts:
        return [], "score has no notes"
    programs = [spec.ensemble.programs[min(i, len(spec.ensemble.programs) - 1)] for i in range(len(parts))]
    tracks = [Track(f"part {i + 1}", prog, tuple(p)) for i, (p, prog) in enumerate(zip(parts, programs))]
    with tempfile.TemporaryDirectory(prefix="audiodiff-render-") as tmp:
        try:
            samples, rate = render_wav(tracks, spec.tempo_bpm, spec.soundfont, mel.sample_rate, Path(tmp))
        except (RuntimeError, OSError, ValueError) as err:
            return [], str(err)
    if rate != mel.sample_rate or samples.size < mel.n_fft:
        return [], f"render has {samples.size} samples at {rate} Hz"
    wav = torch.from_numpy(samples)[None]
    peak = float(wav.abs().max())
    if peak < 1e-4:
        return [], "render is silent"
    wav = loudness_normalize(wav, rate, -20.0, -1.0)  # no trimming: labels are aligned to sample 0
    frames = wav.shape[-1] // mel.hop_length
    pitch = melody_pitch(parts, spec.tempo_bpm, frames, mel)
    key = estimate_key(parts)
    captions, labels = music_captions(spec, key, len(parts))
    split = assign_split(spec.piece.collection, spec.piece.piece_id, valid_fraction)
    seg_frames = int(max_segment_s * mel.frame_rate)
    segments = [s for s in cut_segments(frames, 1, seg_frames)]
    name = f"{spec.index:06d}_{spec.piece.piece_id.replace('/', '_')}"
    records = []
    for i, (a, b) in enumerate(segments):
        seg_pitch = pitch[a:b]
        if (seg_pitch >= 0).mean() < 0.2:
            continue  # mostly rests: the release tail of the last note
        seg = wav[:, a * mel.hop_length:b * mel.hop_length]
        suffix = "" if len(segments) == 1 else f"_s{i + 1:02d}"
        base = f"clips/{spec.piece.collection}/{name}{suffix}"
        save_audio(folder.root / f"{base}.flac", seg, rate)
        _save_npy(folder.root / f"{base}.pitch.npy", seg_pitch)
        _save_npy(folder.root / f"{base}.melody.npy", chroma_of(seg_pitch))
        with torch.no_grad():
            heard = chroma(seg[None])[0].argmax(dim=0).numpy()[: len(seg_pitch)]
        voiced = seg_pitch >= 0
        agree = float((heard[voiced] == seg_pitch[voiced] % 12).mean()) if voiced.any() else 0.0
        records.append({
            "path": f"{base}.flac", "melody": f"{base}.melody.npy", "pitch": f"{base}.pitch.npy",
            "captions": captions, "labels": labels, "duration_s": round(seg.shape[-1] / rate, 4),
            "sample_rate": rate, "source": spec.piece.collection, "license": LICENCE, "split": split,
            "origin": f"music21:{spec.piece.source}" + ("" if spec.piece.number is None else f"#{spec.piece.number}")
                      + f" render {spec.index}" + ("" if len(segments) == 1 else f" part {i + 1}/{len(segments)}"),
            "render": {"ensemble": spec.ensemble.name, "tempo_bpm": spec.tempo_bpm, "key": key,
                       "transpose": spec.transpose, "soundfont": Path(spec.soundfont).name},
            "stats": {**{k: round(v, 4) for k, v in clip_stats(seg, rate).items()},
                      "voiced_fraction": round(float(voiced.mean()), 3),
                      "chroma_agreement": round(agree, 3)}})
    if not records:
        return [], "no segment with enough notes"
    return records, ""


def build_music(out: str | os.PathLike, hours: float = 5.0, seed: int = 0,
                collections: Sequence[str] = ("bach-chorales", "essen"),
                soundfonts: Sequence[str] = DEFAULT_SOUNDFONTS, max_piece_s: float = 90.0,
                max_segment_s: float = 30.0, batch_size: int = 40, valid_fraction: float = 0.05,
                pieces: dict[str, list[MusicPiece]] | None = None, time_limit_s: float | None = None,
                force: bool = False, echo: Callable[[str], None] | None = print) -> dict:
    """Build (or extend) the rendered-music corpus in ``out`` until it holds ``hours``; returns
    the data card. ``pieces`` replaces music21's catalogue (tests); ``time_limit_s`` stops after
    the batch that passes it (the command is resumable)."""
    settings = {"seed": seed, "collections": list(collections), "soundfonts": [str(s) for s in soundfonts],
                "max_piece_s": max_piece_s, "max_segment_s": max_segment_s, "batch_size": batch_size,
                "valid_fraction": valid_fraction}
    folder = BuildFolder(out, "music", settings, force=force, echo=echo)
    started = time.perf_counter()
    available = []
    for sf2 in soundfonts:
        if Path(sf2).is_file():
            available.append(str(sf2))
        else:
            folder.report.line(f"skip soundfont {sf2}: not found (apt-get install fluid-soundfont-gm "
                               "timgm6mb-soundfont musescore-general-soundfont-small)")
    if available:
        mel = MelConfig()
        chroma = Chroma(mel, argmax=False)
        planner = MusicPlanner(seed, collections, available, pieces)
        total_s = sum(e["duration_s"] for r in folder.records() for e in r.get("entries", []))
        batch = 0
        while total_s < hours * 3600:
            unit = f"batch-{batch:05d}"
            batch += 1
            if folder.unit_done(unit):
                continue
            writer = folder.open_unit(unit)
            total_s += sum(e["duration_s"] for r in writer.records for e in r.get("entries", []))
            for index in range((batch - 1) * batch_size, batch * batch_size):
                spec = planner.spec(index)
                if writer.done(spec.item):
                    continue
                records, why = render_clips(folder, spec, max_piece_s, max_segment_s, valid_fraction, mel, chroma)
                writer.add(spec.item, entries=records, skip=why or None)
                total_s += sum(r["duration_s"] for r in records)
            made = sum(len(r["entries"]) for r in writer.records)
            writer.close({"clips": made, "seconds": round(time.perf_counter() - writer.started, 1)})
            if echo:
                echo(f"{unit}: {made} clips; corpus {total_s / 3600:.2f} h "
                     f"({time.perf_counter() - started:.0f} s this run)")
            if made == 0:
                folder.report.line(f"stop: {unit} rendered nothing (see the skip lines above)")
                break
            if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
                folder.report.line(f"stop: time limit of {time_limit_s:g} s reached; rerun to continue")
                break
    else:
        folder.report.line("no soundfont available: nothing rendered")
    card = assemble_music(folder)
    if echo:
        echo(f"music corpus: {card['clips']} clips, {card['hours']:.2f} h in {folder.root}")
    return card


def assemble_music(folder: BuildFolder) -> dict:
    """Write manifest.jsonl and the data card from the finished batches."""
    records = [e for r in folder.records() for e in r.get("entries", [])]
    entries = [ManifestEntry(path=str(folder.root / e["path"]), captions=tuple(e["captions"]),
                             duration_s=e["duration_s"], sample_rate=e["sample_rate"], source=e["source"],
                             license=e["license"], split=e["split"], melody=str(folder.root / e["melody"]),
                             origin=e["origin"]) for e in records]
    agree = [e["stats"]["chroma_agreement"] for e in records]
    notes = ["Rendered with fluidsynth from music21 scores; mono FLAC at 22.05 kHz, -20 LUFS.",
             "Melody labels beside each clip: NAME.pitch.npy (int16 MIDI pitch of the top voice per "
             "mel frame, hop 256 at 22.05 kHz, -1 = rest) and NAME.melody.npy ((12, frames) one-hot "
             "chroma, the manifest's melody field).",
             "Splits by piece (all renders of one score share a split); the reserved O'Neill "
             "collection is never used."]
    if agree:
        notes.append(f"Label check: the label's pitch class is the strongest chroma bin of the "
                     f"audio on {100 * float(np.mean(agree)):.0f}% of voiced frames on average "
                     "(lower for chorales, where the lower voices are loud too).")
    card = data_card("rendered music with melody labels", records,
                     "music21 chorales and folk songs rendered with General MIDI soundfonts "
                     "(audiodiff prepare music).", notes)
    folder.finish(entries, card, card_markdown(card))
    return card
