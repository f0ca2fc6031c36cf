"""What the web demo does per request: check inputs, call the public pipeline API, package results.

Every handler turns a mistake a user can make (an empty prompt, a file that is not audio, a clip
that is too long, an out-of-range setting) into ``gr.Error`` with a readable message: the UI shows
it and the server keeps serving. All state lives on the :class:`DemoRunner` instance that
``build_demo`` creates, never in module globals, so two demos in one process share nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from ..audio import AudioError, MelSpectrogram, load_audio, save_audio
from ..diffusion import SAMPLERS
from ..pipelines.base import dtype_name
from .media import spectrogram_image

# Errors that name a problem with the request, never a bug: shown to the user as they are.
USER_ERRORS = (ValueError, FileNotFoundError)
MELODY_CHANNELS = 12  # a melody model reads 12 chroma bins as frame-aligned conditions
MAX_AUTOGUIDANCE = 3.0  # the slider's top; the bundled model's default is 1 (2 already costs top-1)


@dataclasses.dataclass(frozen=True)
class DemoLimits:
    """Caps that keep one user from holding a shared server for minutes."""

    max_duration_s: float = 30.0      # generated seconds (also capped by the model's own limit)
    max_steps: int = 100
    max_batch: int = 4                # clips per request; also the number of players shown
    max_upload_s: float = 30.0        # seconds of uploaded or recorded audio
    max_upload_mb: int = 20           # bytes of one upload, enforced by the server at upload time
    max_add_s: float = 30.0           # seconds a continuation may add
    concurrency: int = 1              # generations running at once, over all tabs
    queue_size: int = 64              # requests waiting beyond that; more are refused politely

    def __post_init__(self):
        for name in ("max_duration_s", "max_upload_s", "max_add_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"DemoLimits.{name} must be a positive number, got {value!r}")
        for name in ("max_steps", "max_batch", "max_upload_mb", "concurrency", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DemoLimits.{name} must be an integer >= 1, got {value!r}")


def supports_melody(pipeline: Any) -> bool:
    """Melody generation needs a UNet trained with 12 chroma condition channels."""
    return getattr(pipeline.unet.config, "cond_channels", 0) == MELODY_CHANNELS


def supports_timing(pipeline: Any) -> bool:
    """A sound-length control needs a UNet trained with a timing input."""
    return getattr(pipeline.unet.config, "timing_channels", 0) > 0


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    """A finite number within [low, high], or a gr.Error that says what is accepted."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < low or number > high:
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    if integer:
        if number != int(number):
            raise gr.Error(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number


def _optional_text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class DemoRunner:
    """Holds the pipeline, the limits and a scratch folder for the files it serves."""

    def __init__(self, pipeline: Any, limits: DemoLimits, workdir: Path):
        self.pipeline = pipeline
        self.limits = limits
        self.workdir = Path(workdir)
        self.outputs = self.workdir / "outputs"
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.mel = MelSpectrogram(pipeline.config.mel)
        config = pipeline.config
        self.min_duration_s = float(config.min_duration_s)
        self.max_duration_s = float(min(limits.max_duration_s, config.max_duration_s))
        self.default_duration_s = float(min(config.default_duration_s, self.max_duration_s))
        self.default_steps = int(min(config.default_steps, limits.max_steps))
        self.default_guidance = float(config.default_guidance_scale)
        self.default_sampler = config.default_sampler
        self.samplers = sorted(SAMPLERS)
        self.has_melody = supports_melody(pipeline)
        self.has_timing = supports_timing(pipeline)
        # Autoguidance by the model's guide network: a control only for models that have one.
        self.has_guide = getattr(pipeline, "guide", None) is not None
        self.default_autoguidance = float(pipeline.autoguidance())  # 0 without a guide
        self.default_melody_autoguidance = float(pipeline.autoguidance(mode="melody"))

    # ------------------------------------------------------------------ the five modes
    def text_to_audio(self, prompt, negative_prompt, duration_s, steps, guidance, sampler, seed, batch,
                      sound_s=0.0, autoguidance=None, progress=gr.Progress()):
        """sound_s: seconds of sound, then silence (models with a timing input); 0 = predicted from
        the prompt when the model has a sound length head, else the model decides. autoguidance:
        the weight of the model's guide network (models with one; None = the model's default)."""
        if _optional_text(prompt) is None:
            raise gr.Error("The prompt is empty: describe the sound you want, e.g. 'rain on a tin roof'.")
        duration_s = _number("Duration (s)", duration_s, self.min_duration_s, self.max_duration_s)
        sound_s = _number("Sound length (s)", sound_s, 0.0, duration_s if self.has_timing else 0.0)
        call = dict(prompt=prompt.strip(), negative_prompt=_optional_text(negative_prompt), duration_s=duration_s,
                    **({"sound_s": sound_s} if sound_s else {}),  # 0: the pipeline's default, "auto"
                    **self._sampling(steps, guidance, sampler, seed, batch, autoguidance))
        out = self._run(self.pipeline, (), call, progress)
        return self._package("pipe", out, call, None)

    def vary(self, audio, strength, prompt, steps, guidance, sampler, seed, batch, autoguidance=None,
             progress=gr.Progress()):
        wav, sr, source = self._load_upload(audio, "the audio to vary")
        call = dict(strength=_number("Strength", strength, 0.0, 1.0), prompt=_optional_text(prompt),
                    sample_rate=sr, **self._sampling(steps, guidance, sampler, seed, batch, autoguidance))
        out = self._run(self.pipeline.vary, (wav,), call, progress)
        return self._package("pipe.vary", out, call, source)

    def inpaint(self, audio, start_s, end_s, prompt, steps, guidance, sampler, seed, batch, autoguidance=None,
                progress=gr.Progress()):
        wav, sr, source = self._load_upload(audio, "the audio to inpaint")
        length_s = wav.shape[-1] / sr
        start_s = _number("Region start (s)", start_s, 0.0, length_s)
        end_s = _number("Region end (s)", end_s, 0.0, length_s)
        if end_s <= start_s:
            raise gr.Error(f"The region must end after it starts (got {start_s:g} s to {end_s:g} s).")
        call = dict(start_s=start_s, end_s=end_s, prompt=_optional_text(prompt), sample_rate=sr,
                    **self._sampling(steps, guidance, sampler, seed, batch, autoguidance))
        out = self._run(self.pipeline.inpaint, (wav,), call, progress)
        return self._package("pipe.inpaint", out, call, source)

    def continuation(self, audio, seconds, prompt, steps, guidance, sampler, seed, batch, autoguidance=None,
                     progress=gr.Progress()):
        wav, sr, source = self._load_upload(audio, "the audio to continue")
        seconds = _number("Seconds to add", seconds, 0.1, self.limits.max_add_s)
        call = dict(seconds=seconds, prompt=_optional_text(prompt), sample_rate=sr,
                    **self._sampling(steps, guidance, sampler, seed, batch, autoguidance))
        out = self._run(self.pipeline.continuation, (wav,), call, progress)
        return self._package("pipe.continuation", out, call, source)

    def melody(self, audio, prompt, steps, guidance, sampler, seed, batch, autoguidance=None,
               progress=gr.Progress()):
        if not self.has_melody:
            raise gr.Error("This model has no melody conditioning (it needs 12 chroma channels).")
        wav, sr, source = self._load_upload(audio, "the melody")
        call = dict(prompt=_optional_text(prompt), sample_rate=sr,
                    **self._sampling(steps, guidance, sampler, seed, batch, autoguidance))
        out = self._run(self.pipeline.melody, (wav,), call, progress)
        return self._package("pipe.melody", out, call, source)

    # ------------------------------------------------------------------ shared steps
    def _sampling(self, steps, guidance, sampler, seed, batch, autoguidance=None) -> dict:
        if sampler not in SAMPLERS:
            raise gr.Error(f"Unknown sampler {sampler!r}; choose one of {', '.join(self.samplers)}.")
        seed = None if seed is None or seed == "" or float(seed) < 0 else _number("Seed", seed, 0, 2**31 - 1, True)
        call = dict(num_steps=_number("Steps", steps, 1, self.limits.max_steps, integer=True),
                    guidance_scale=_number("Guidance", guidance, 0.0, 20.0),
                    sampler=sampler, seed=seed,
                    batch_size=_number("Batch size", batch, 1, self.limits.max_batch, integer=True))
        if autoguidance is not None:
            if not self.has_guide:
                raise gr.Error("This model has no guide network, so autoguidance is not available.")
            call["autoguidance"] = _number("Autoguidance", autoguidance, 0.0, MAX_AUTOGUIDANCE)
        return call

    def _load_upload(self, path, what: str) -> tuple[torch.Tensor, int, dict]:
        """An uploaded or recorded file -> mono (1, T) float32 and its rate, within the caps."""
        if not path:
            raise gr.Error(f"Upload or record {what} first.")
        path = Path(path)
        try:
            size_mb = path.stat().st_size / 2**20
        except OSError:
            raise gr.Error(f"The uploaded file for {what} is missing; upload it again.") from None
        if size_mb > self.limits.max_upload_mb:
            raise gr.Error(f"The file is {size_mb:.1f} MB; at most {self.limits.max_upload_mb} MB is accepted.")
        try:
            wav, sr = load_audio(path, mono=True, max_duration_s=self.limits.max_upload_s)
        except (AudioError, FileNotFoundError) as err:
            # The message names the file; the user knows it by its own name, not the server's path.
            message = str(err).replace(str(path), path.name)
            raise gr.Error(f"Cannot use {what}: {message}") from None
        source = {"file": path.name, "duration_s": round(wav.shape[-1] / sr, 3), "sample_rate": sr}
        return wav, sr, source

    def _run(self, fn, args: tuple, call: dict, progress) -> Any:
        """Call the pipeline with a step callback that drives the UI's progress bar."""
        done = [0]

        def on_step(info: dict) -> None:
            # Windowed modes (long continuations) run the sampler once per window; audio-to-audio
            # modes may run fewer steps than asked, so the total is an upper bound kept >= done.
            done[0] += 1
            total = max(call["num_steps"] * int(info.get("windows", 1)), done[0])
            progress((done[0], total), desc="sampling", unit="steps")

        progress(0, desc="starting")
        try:
            return fn(*args, **call, callback=on_step)
        except USER_ERRORS as err:
            raise gr.Error(str(err)) from None

    def _package(self, method: str, out, call: dict, source: dict | None) -> list:
        """Players, spectrogram, reproducible settings and downloadable files of one result."""
        self._prune()
        stamp = uuid.uuid4().hex[:8]
        mode = method.split(".")[-1] if "." in method else "text"
        paths = []
        for i, (wav, seed) in enumerate(zip(out.waveforms, out.seeds)):
            paths.append(str(save_audio(self.outputs / f"{mode}_{seed}_{stamp}_{i}.wav", wav, out.sample_rate)))
        image = spectrogram_image(out.waveforms, self.mel, labels=[f"seed {s}" for s in out.seeds])
        settings = {
            "mode": mode,
            "call": method,
            "arguments": {k: v for k, v in call.items() if v is not None},
            "input": source,
            "sample_rate": out.sample_rate,
            "duration_s": round(out.waveforms.shape[-1] / out.sample_rate, 3),
            "items": [{"seed": s, "prompt": p, "file": Path(f).name}
                      for s, p, f in zip(out.seeds, out.prompts, paths)],
            "settings": out.settings,
        }
        # Plain values (a path, or None for an unused player) keep the API simple for clients;
        # the page shows as many players as the "Clips" slider asks for.
        players = paths + [None] * (self.limits.max_batch - len(paths))
        weights = dtype_name(self.pipeline.dtype)
        return [*players, image, settings, reproduce_markdown(method, call, out.seeds, source, weights), paths]

    def _prune(self, max_age_s: float = 3600.0) -> None:
        """Drop served files older than an hour (gradio keeps its own copy while a page shows one)."""
        cutoff = time.time() - max_age_s
        for path in self.outputs.glob("*.wav"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass


def reproduce_markdown(method: str, call: dict, seeds: list[int], source: dict | None,
                       weights: str = "fp32") -> str:
    """The Python call that regenerates item i of a result on its own (seed i, batch 1), with
    the pipeline loaded in the demo's weights dtype (``weights``: "fp32", "bf16", ...)."""
    kwargs = {k: v for k, v in call.items() if v is not None and k not in ("batch_size", "seed")}
    if source is not None:
        kwargs.pop("sample_rate", None)
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    audio = f"{source['file']!r}, " if source is not None else ""
    lines = [f"out = {method}({audio}{args}, seed={s})  # item {i}" for i, s in enumerate(seeds)]
    load = "MODEL_DIR" if weights == "fp32" else f"MODEL_DIR, dtype={weights!r}"
    text = f"Reproduce any item on its own (`pipe = TextToAudioPipeline.from_pretrained({load})`):\n\n"
    return text + "```python\n" + "\n".join(lines) + "\n```"
