"""Audio-to-audio modes of the text-to-audio pipeline: variation, inpainting, continuation,
long generation and melody conditioning. ``TextToAudioPipeline.vary`` etc. are thin wrappers.

Every mode works on normalised log-mels with the pipeline's own sampler and guidance
(:func:`~audiodiff.pipelines.base.guided_sample`), then the vocoder:

- variation (SDEdit, Meng et al. 2022): the input mel is noised to the sigma that ``strength``
  selects (log-linear in strength, :func:`~audiodiff.diffusion.variation_sigmas`) and denoised
  from there; strength 0 returns the vocoded input, 1 ignores it.
- inpainting (RePaint, Lugmayr et al. 2022, without its resampling loop): at every step the
  known frames of the network input are replaced by the known mel noised to the current sigma
  with the item's own seeded noise, and the known frames of the prediction by the known mel,
  under a mask that ramps over a few frames at the borders. The decoded region is spliced into
  the vocoded input with a short equal-power crossfade, so outside it the output *is* the
  vocoded input.
- continuation and long generation: outpainting window by window, each window the last frames
  generated so far (known) plus new frames (unknown).
- melody: one-hot chroma (12, N) of the reference laid over the mel axis as the UNet's frame
  channels, in the layout the model was trained with (``TextToAudioConfig.melody_layout``).

A model with a timing input (``unet.timing_channels = 1``) is told in every mode that the sound
fills the whole clip (``settings["sound_s"]`` = the output's length).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..audio import AudioError, Chroma, MelConfig, MelSpectrogram, check_waveform, load_audio, normalize_mel, resample
from ..diffusion import randn_from_seeds, variation_sigmas
from .base import AudioOutput, Request, guided_sample, module_dtype, resolve_request

MODES = ("vary", "inpaint", "continuation", "long", "melody")
# The inpainting mask ramps over this many frames at each border (~46 ms at 22.05 kHz / 256).
BORDER_FRAMES = 4
# Windowed modes crossfade the overlap of consecutive windows over at most this many frames.
OVERLAP_RAMP_FRAMES = 16
CROSSFADE_S = 0.02          # equal-power waveform crossfade at inpainting / continuation borders
SILENCE_PEAK = 1e-4         # -80 dBFS: quieter input is "silent"
DECODE_CHUNK_S = 30.0       # the vocoder runs on at most this much mel at once ...
DECODE_CONTEXT_FRAMES = 128  # ... with this much context each side (beyond its receptive field)
_WINDOW_SEED_STRIDE = 1_000_003


# ---------------------------------------------------------------------------- inputs
def load_input(audio: Any, mel: MelConfig, sample_rate: int | None = None,
               max_duration_s: float = 600.0, name: str = "audio") -> torch.Tensor:
    """A path or a float tensor/array (C, T) / (T,) at ``sample_rate`` -> mono (1, T) float32 on
    the CPU at the mel's rate. Refuses silent audio, audio shorter than one mel frame
    (n_fft samples) and audio longer than ``max_duration_s``."""
    if isinstance(audio, (str, os.PathLike)):
        wav, _ = load_audio(audio, sample_rate=mel.sample_rate, mono=True, max_duration_s=max_duration_s)
    elif isinstance(audio, (torch.Tensor, np.ndarray)):
        if sample_rate is None:
            raise ValueError(f"{name}: pass sample_rate= (Hz) with a tensor or array")
        if isinstance(audio, np.ndarray) and np.issubdtype(audio.dtype, np.integer):
            audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)  # int16 PCM etc.
        wav = check_waveform(audio, name).detach().to("cpu", torch.float32)
        if wav.dim() == 3 and wav.shape[0] == 1:
            wav = wav[0]
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2:
            raise ValueError(f"{name} must be (channels, samples) or (samples,), got shape {tuple(wav.shape)}")
        if wav.shape[0] > 16:
            raise ValueError(f"{name} must be (channels, samples), got shape {tuple(wav.shape)}; "
                             "transpose a (samples, channels) array")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
        if wav.shape[-1] / sample_rate > max_duration_s:
            raise AudioError(f"{name} is {wav.shape[-1] / sample_rate:.1f} s long; "
                             f"at most {max_duration_s:g} s is accepted")
        wav = resample(wav.mean(dim=0, keepdim=True), int(sample_rate), mel.sample_rate)
    else:
        raise ValueError(f"{name} must be a path to an audio file or a float tensor/array of shape "
                         f"(channels, samples) or (samples,), got {type(audio).__name__}")
    if wav.shape[-1] < mel.n_fft:
        raise ValueError(f"{name} is {1000 * wav.shape[-1] / mel.sample_rate:.1f} ms long, shorter than one "
                         f"mel frame ({mel.n_fft} samples = {1000 * mel.n_fft / mel.sample_rate:.0f} ms)")
    peak = float(wav.abs().max())
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise ValueError(f"{name} is silent (peak {level} dBFS); give audio with some sound in it")
    return wav


def input_mel(wav: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """(1, T) -> normalised log-mel (1, 1, n_mels, ceil(T / hop)): the clip is zero-padded to a
    whole number of hops so that decoding covers every input sample."""
    n = -(-wav.shape[-1] // mel.hop_length)
    padded = torch.nn.functional.pad(wav, (0, n * mel.hop_length - wav.shape[-1]))
    with torch.inference_mode():
        return normalize_mel(MelSpectrogram(mel)(padded), mel)[:, None]


def melody_chroma(wav: torch.Tensor, mel: MelConfig, harmonic: bool = True) -> torch.Tensor:
    """(1, T) -> one-hot chroma (1, 12, ceil(T / hop)) at the mel frame rate, zeros where silent.

    Bass (< 130 Hz) and treble (> 2.1 kHz) are ignored by :class:`Chroma`; ``harmonic`` also drops
    drums first (librosa's harmonic/percussive separation), so the argmax follows the tune.
    """
    n = -(-wav.shape[-1] // mel.hop_length)
    padded = torch.nn.functional.pad(wav, (0, n * mel.hop_length - wav.shape[-1]))
    if harmonic:
        import librosa

        padded = torch.from_numpy(librosa.effects.harmonic(padded.numpy(), n_fft=mel.n_fft,
                                                           hop_length=mel.hop_length)).float()
    with torch.inference_mode():
        return Chroma(mel, argmax=True)(padded)[..., :n]


def check_number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high]); else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value:g}")
    return value


# ---------------------------------------------------------------------------- sampling
@dataclasses.dataclass
class _Job:
    """A checked request with its encoded conditions."""

    req: Request
    cond: Any
    uncond: Any
    guidance: float  # what sampling runs with (1 when both branches are the null condition)


def _job(pipe, prompt, negative_prompt, duration_s, num_steps, guidance_scale, sampler, seed,
         batch_size, allow_no_prompt: bool = True, autoguidance: float | None = None,
         mode: str | None = None) -> _Job:
    """resolve_request, with prompt None allowed (the learned null condition) and durations up to
    the input limit (windowed modes check their own); ``autoguidance`` None = the model's default
    for ``mode``."""
    cfg = pipe.config
    if prompt is None and not allow_no_prompt:
        raise ValueError("prompt is empty; describe the sound you want, e.g. 'rain on a tin roof'")
    check_d = min(max(duration_s, cfg.min_duration_s), cfg.max_duration_s)
    req = resolve_request(cfg, "-" if prompt is None else prompt, negative_prompt, check_d, num_steps,
                          guidance_scale, sampler, seed, batch_size)
    req.duration_s = duration_s
    req.autoguidance = pipe.autoguidance(autoguidance, mode=mode)
    n = len(req.prompts)
    with torch.inference_mode():
        if prompt is None:
            req.prompts = [""] * n
            cond = pipe.text.null(n)
        else:
            cond = pipe.text(req.prompts)
        uncond = pipe.text.null(n) if req.negatives is None else pipe.text(req.negatives)
    cond, uncond = cond.for_network(pipe.unet.config), uncond.for_network(pipe.unet.config)
    # No prompt and no negative: both branches are the null condition, one forward is the same.
    guidance = 1.0 if prompt is None and req.negatives is None else req.guidance_scale
    return _Job(req, cond, uncond, guidance)


class _KnownRegion:
    """Wraps a denoiser D(x, sigma, cond) for inpainting: where ``mask`` is 0 the network sees the
    known mel noised to sigma and predicts the known mel; ramps in between blend."""

    def __init__(self, denoiser, known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor):
        self.denoiser, self.known, self.mask, self.noise = denoiser, known, mask, noise

    def __call__(self, x: torch.Tensor, sigma, cond) -> torch.Tensor:
        known, noise = self.known, self.noise
        if x.shape[0] != known.shape[0]:  # guidance batches [cond; uncond]
            reps = x.shape[0] // known.shape[0]
            known, noise = known.repeat(reps, 1, 1, 1), noise.repeat(reps, 1, 1, 1)
        s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
        s = s.reshape(-1, 1, 1, 1) if s.ndim else s
        m = self.mask
        x_in = m * x + (1 - m) * (known + s * noise)
        return m * self.denoiser(x_in, sigma, cond) + (1 - m) * known


def _window_seeds(seeds: Sequence[int], k: int) -> list[int]:
    return list(seeds) if k == 0 else [(s + k * _WINDOW_SEED_STRIDE) % 2**63 for s in seeds]


def _sample(pipe, job: _Job, n_frames: int, sigmas: torch.Tensor, seeds: list[int], *,
            init: torch.Tensor | None = None, known: torch.Tensor | None = None,
            mask: torch.Tensor | None = None, frames: torch.Tensor | None = None,
            uncond_frames: torch.Tensor | None = None,
            progress: bool = False, callback: Callable[[dict], None] | None = None,
            window: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """One sampler run over (len(seeds), 1, n_mels, n_frames); known/mask make it inpainting.
    ``uncond_frames`` (default: ``frames``) is the unconditional branch's frame condition.
    When the window's last frame is generated (no ``init``, not known), ``config.end_margin_frames``
    more frames are sampled (unknown, no frame condition) and cut off, so its end has no edge
    artefact; known frames are the input's whatever the network predicts there."""
    n = len(seeds)
    margin = pipe.end_margin(init, mask)
    if margin:
        def pad(t: torch.Tensor | None, value: float = 0.0) -> torch.Tensor | None:
            return None if t is None else torch.nn.functional.pad(t, (0, margin), value=value)
        frames, uncond_frames, known, mask = pad(frames), pad(uncond_frames), pad(known), pad(mask, 1.0)
    shape = (pipe.unet.config.in_channels, pipe.config.mel.n_mels, n_frames + margin)
    if frames is None:
        frames = pipe.frame_condition(n, n_frames + margin)
    else:
        frames = frames.to(pipe.device, module_dtype(pipe.unet))
    job.cond.frames = frames
    job.uncond.frames = frames if uncond_frames is None else uncond_frames.to(frames.device, frames.dtype)
    if pipe.unet.config.timing_channels:
        # Every window of these modes lies inside the clip, as a training crop that the clip fills:
        # sound from its first frame to its last. Left unsaid, a model with a timing input guesses
        # an end (v0.5's first stage halved its melody accuracy so). The margin is more of the clip.
        job.cond.sound_frames = job.uncond.sound_frames = torch.full((n,), float(n_frames + margin),
                                                                     device=pipe.device)
    denoiser = pipe.sampling_denoiser(job.req.autoguidance)
    if known is not None:
        device = pipe.device
        known, mask = known.to(device, torch.float32), mask.to(device, torch.float32)
        # The same seeded noise guided_sample starts from: known frames stay known + sigma * noise.
        noise = randn_from_seeds(shape, seeds, device=device, dtype=torch.float32)
        denoiser = _KnownRegion(denoiser, known, mask, noise)
        if init is None:
            init = known * (mask < 1)
    def report(info: dict) -> None:
        callback({**info, "window": window[0], "windows": window[1]})

    x = guided_sample(denoiser, shape, seeds, sigmas, job.cond, job.uncond, job.guidance, job.req.sampler,
                      pipe.device, progress=progress, callback=None if callback is None else report, init=init,
                      guidance_interval=job.req.guidance_interval)
    return x[..., :n_frames]


def _border_mask(n_frames: int, a: int, b: int, ramp: int) -> torch.Tensor:
    """(1, 1, 1, n_frames): 1 on frames [a, b), 0 elsewhere, rising over ``ramp`` frames inside
    [a, b) at each border that is not the clip's edge."""
    mask = torch.zeros(n_frames)
    mask[a:b] = 1.0
    ramp = min(ramp, (b - a) // 2)
    steps = torch.arange(1, ramp + 1) / (ramp + 1)
    if ramp and a > 0:
        mask[a:a + ramp] = steps
    if ramp and b < n_frames:
        mask[b - ramp:b] = steps.flip(0)
    return mask.view(1, 1, 1, -1)


def decode_long(pipe, mel: torch.Tensor, num_samples: int) -> torch.Tensor:
    """pipe.decode over mels of any length: chunks of DECODE_CHUNK_S with context each side, so
    memory stays bounded; clips up to one chunk decode in one call (bit-identical to decode)."""
    hop = pipe.config.mel.hop_length
    n = mel.shape[-1]
    chunk = max(1, round(DECODE_CHUNK_S * pipe.config.mel.frame_rate))
    if n <= chunk:
        wav = pipe.decode(mel)
    else:
        pieces = []
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            lo, hi = max(0, a - DECODE_CONTEXT_FRAMES), min(n, b + DECODE_CONTEXT_FRAMES)
            pieces.append(pipe.decode(mel[..., lo:hi])[..., (a - lo) * hop:(b - lo) * hop])
        wav = torch.cat(pieces, dim=-1)
    if wav.shape[-1] < num_samples:
        wav = torch.nn.functional.pad(wav, (0, num_samples - wav.shape[-1]))
    return wav[..., :num_samples]


def splice(outer: torch.Tensor, inner: torch.Tensor, a: int, b: int, fade: int) -> torch.Tensor:
    """``outer`` outside samples [a, b), ``inner`` inside, with equal-power crossfades of ``fade``
    samples placed inside [a, b) (none at the clip's own edges): outside, the result is exactly
    ``outer``."""
    out = outer.clone()
    out[..., a:b] = inner[..., a:b]
    fade = min(fade, (b - a) // 2)
    if fade <= 0:
        return out
    t = (torch.arange(fade, dtype=torch.float32) + 0.5) / fade * (math.pi / 2)
    fade_in, fade_out = torch.sin(t), torch.cos(t)
    if a > 0:
        out[..., a:a + fade] = inner[..., a:a + fade] * fade_in + outer[..., a:a + fade] * fade_out
    if b < outer.shape[-1]:
        out[..., b - fade:b] = inner[..., b - fade:b] * fade_out + outer[..., b - fade:b] * fade_in
    return out


def extend_mel(pipe, job: _Job, mel: torch.Tensor, target_frames: int, context: int, new_per_window: int,
               ramp: int, sigmas: torch.Tensor, first_window: int = 0, progress: bool = False,
               callback=None) -> torch.Tensor:
    """Outpaint ``mel`` (B, 1, n_mels, N) to ``target_frames``, window by window: each window is
    the last ``context`` frames so far (known; the last ``ramp`` of them crossfade into the new
    window) plus up to ``new_per_window`` new frames."""
    windows = first_window + math.ceil(max(0, target_frames - mel.shape[-1]) / new_per_window)
    k = first_window
    while mel.shape[-1] < target_frames:
        c = min(context, mel.shape[-1])
        step = min(new_per_window, target_frames - mel.shape[-1])
        known = torch.cat([mel[..., mel.shape[-1] - c:], mel.new_zeros(*mel.shape[:-1], step)], dim=-1)
        mask = _border_mask(c + step, c, c + step, 0)
        r = min(ramp, c // 2)
        if r:
            mask[..., c - r:c] = torch.arange(1, r + 1) / (r + 1)
        x = _sample(pipe, job, c + step, sigmas, _window_seeds(job.req.seeds, k), known=known, mask=mask,
                    progress=progress, callback=callback, window=(k, windows)).cpu()
        mel = torch.cat([mel[..., :mel.shape[-1] - c], x], dim=-1)
        k += 1
    return mel


def _settings(job: _Job, mode: str, **extra) -> dict[str, Any]:
    settings = {"mode": mode, **job.req.settings(), **extra}
    if job.cond.sound_frames is not None:  # told: sound throughout (see _sample)
        settings["sound_s"] = settings["duration_s"]
    return settings


# ---------------------------------------------------------------------------- modes
def vary(pipe, audio, strength: float = 0.5, prompt=None, sample_rate: int | None = None,
         negative_prompt=None, num_steps=None, guidance_scale=None, sampler=None, seed=None,
         batch_size: int = 1, progress: bool = False, callback=None,
         autoguidance: float | None = None) -> AudioOutput:
    """Variations of ``audio`` (SDEdit): see :meth:`TextToAudioPipeline.vary`."""
    strength = check_number("strength", strength, 0.0, 1.0)
    cfg, mc = pipe.config, pipe.config.mel
    wav = load_input(audio, mc, sample_rate, cfg.max_input_duration_s)
    num = wav.shape[-1]
    mel = input_mel(wav, mc)
    job = _job(pipe, prompt, negative_prompt, num / mc.sample_rate, num_steps, guidance_scale, sampler, seed,
               batch_size, autoguidance=autoguidance)
    sch = cfg.schedule
    sigmas = variation_sigmas(job.req.num_steps, strength, sch.sigma_min, sch.sigma_max, sch.rho)
    n, total = len(job.req.seeds), mel.shape[-1]
    # Clips over max_duration_s are varied in windows that overlap and crossfade.
    win = max(1, round(cfg.max_duration_s * mc.frame_rate))
    overlap = min(round(cfg.window_s * mc.frame_rate / 4), win // 4)
    out = torch.zeros(n, 1, mc.n_mels, total)
    weight = torch.zeros(total)
    starts = [0] if total <= win else list(range(0, total - overlap, win - overlap))
    for k, a in enumerate(starts):
        b = min(total, a + win)
        init = None if strength == 1.0 else mel[..., a:b].expand(n, -1, -1, -1)
        x = _sample(pipe, job, b - a, sigmas, _window_seeds(job.req.seeds, k), init=init, progress=progress,
                    callback=callback, window=(k, len(starts))).cpu()
        w = torch.ones(b - a)
        if a > 0:  # linear crossfade of the overlap (weights sum to 1)
            w[:overlap] = torch.linspace(0, 1, overlap + 2)[1:-1]
        if b < total:
            w[-overlap:] = torch.linspace(1, 0, overlap + 2)[1:-1]
        out[..., a:b] += x * w
        weight[a:b] += w
    out = out / weight
    wav_out = decode_long(pipe, out, num)
    return AudioOutput(wav_out, pipe.sample_rate, job.req.seeds, job.req.prompts, _settings(
        job, "vary", strength=strength, start_sigma=float(sigmas[0]), steps_run=len(sigmas) - 1,
        prompt=prompt, input_duration_s=num / mc.sample_rate))


def inpaint(pipe, audio, start_s: float, end_s: float, prompt=None, sample_rate: int | None = None,
            negative_prompt=None, num_steps=None, guidance_scale=None, sampler=None, seed=None,
            batch_size: int = 1, progress: bool = False, callback=None,
            autoguidance: float | None = None) -> AudioOutput:
    """Regenerate [start_s, end_s) of ``audio``: see :meth:`TextToAudioPipeline.inpaint`."""
    cfg, mc = pipe.config, pipe.config.mel
    wav = load_input(audio, mc, sample_rate, cfg.max_input_duration_s)
    num, sr, hop = wav.shape[-1], mc.sample_rate, mc.hop_length
    duration = num / sr
    start_s = check_number("start_s", start_s, 0.0, duration)
    end_s = check_number("end_s", end_s, 0.0, duration)
    if end_s <= start_s:
        raise ValueError(f"the inpainting region [{start_s:g}, {end_s:g}) s is empty or reversed; "
                         f"need 0 <= start_s < end_s <= {duration:.3f} (the clip's length)")
    a, b = round(start_s * sr), min(num, round(end_s * sr))
    if b <= a:
        raise ValueError(f"the inpainting region [{start_s:g}, {end_s:g}) s holds no samples")
    if (end_s - start_s) > cfg.max_duration_s - 1.0:
        raise ValueError(f"the inpainting region is {end_s - start_s:.1f} s; at most "
                         f"{cfg.max_duration_s - 1.0:g} s (the model's max_duration_s minus context) is accepted")
    mel = input_mel(wav, mc)
    total = mel.shape[-1]
    fa, fb = a // hop, -(-b // hop)
    # Context each side: fill the model's training window, at least 1 s, within max_duration_s.
    window = round(cfg.window_s * mc.frame_rate)
    ctx = max((window - (fb - fa)) // 2, round(mc.frame_rate))
    ctx = min(ctx, (round(cfg.max_duration_s * mc.frame_rate) - (fb - fa)) // 2)
    lo, hi = max(0, fa - ctx), min(total, fb + ctx)
    job = _job(pipe, prompt, negative_prompt, (hi - lo) * hop / sr, num_steps, guidance_scale, sampler, seed,
               batch_size, autoguidance=autoguidance)
    n = len(job.req.seeds)
    known = mel[..., lo:hi].expand(n, -1, -1, -1)
    mask = _border_mask(hi - lo, fa - lo, fb - lo, BORDER_FRAMES)
    x = _sample(pipe, job, hi - lo, cfg.schedule.sigmas(job.req.num_steps), job.req.seeds, known=known,
                mask=mask, progress=progress, callback=callback).cpu()
    vocoded = decode_long(pipe, mel, num).expand(n, -1, -1)
    inner = vocoded.clone()
    end = min(hi * hop, num)
    inner[..., lo * hop:end] = pipe.decode(x)[..., :end - lo * hop]
    out = splice(vocoded, inner, a, b, round(CROSSFADE_S * sr))
    return AudioOutput(out, sr, job.req.seeds, job.req.prompts, _settings(
        job, "inpaint", start_s=start_s, end_s=end_s, duration_s=duration, prompt=prompt,
        input_duration_s=duration))


def continuation(pipe, audio, seconds: float, prompt=None, sample_rate: int | None = None,
                 negative_prompt=None, num_steps=None, guidance_scale=None, sampler=None, seed=None,
                 batch_size: int = 1, progress: bool = False, callback=None,
                 autoguidance: float | None = None) -> AudioOutput:
    """Extend ``audio`` by ``seconds``: see :meth:`TextToAudioPipeline.continuation`."""
    cfg, mc = pipe.config, pipe.config.mel
    sr, hop = mc.sample_rate, mc.hop_length
    seconds = check_number("seconds", seconds, 0.0, cfg.max_input_duration_s, low_open=True)
    wav = load_input(audio, mc, sample_rate, cfg.max_input_duration_s)
    num = wav.shape[-1]
    total = num + round(seconds * sr)
    if total > cfg.max_input_duration_s * sr:
        raise ValueError(f"input ({num / sr:.1f} s) plus seconds ({seconds:g}) is {total / sr:.1f} s; "
                         f"at most {cfg.max_input_duration_s:g} s in all is accepted")
    if total == num:
        raise ValueError(f"seconds={seconds:g} is less than one sample at {sr} Hz")
    mel = input_mel(wav, mc)
    keep = num // hop  # whole input frames; new frames start here
    window = round(cfg.window_s * mc.frame_rate)
    job = _job(pipe, prompt, negative_prompt, min(total / sr, cfg.max_duration_s), num_steps, guidance_scale,
               sampler, seed, batch_size, autoguidance=autoguidance)
    job.req.duration_s = total / sr
    n = len(job.req.seeds)
    start = mel[..., :keep].expand(n, -1, -1, -1)
    target = -(-total // hop)
    full = extend_mel(pipe, job, start, target, context=window, new_per_window=window, ramp=0,
                      sigmas=cfg.schedule.sigmas(job.req.num_steps), progress=progress, callback=callback)
    # Decode the generated part with a window of context before it; splice the vocoded input in.
    lo = max(0, keep - window)
    outer = torch.zeros(n, 1, total)
    outer[..., lo * hop:] = decode_long(pipe, full[..., lo:], total - lo * hop)
    vocoded = torch.nn.functional.pad(decode_long(pipe, mel, num), (0, total - num)).expand(n, -1, -1)
    out = splice(outer, vocoded, 0, num, round(CROSSFADE_S * sr))
    return AudioOutput(out, sr, job.req.seeds, job.req.prompts, _settings(
        job, "continuation", seconds=seconds, prompt=prompt, input_duration_s=num / sr))


def generate_long(pipe, prompt, duration_s: float, window_s: float = 10.0, overlap_s: float = 2.5,
                  negative_prompt=None, num_steps=None, guidance_scale=None, sampler=None, seed=None,
                  batch_size: int = 1, progress: bool = False, callback=None,
                  autoguidance: float | None = None) -> AudioOutput:
    """Audio longer than the model's window: see :meth:`TextToAudioPipeline.generate_long`."""
    cfg, mc = pipe.config, pipe.config.mel
    sr, hop = mc.sample_rate, mc.hop_length
    duration_s = check_number("duration_s", duration_s, 0.0, cfg.max_input_duration_s, low_open=True)
    window_s = check_number("window_s", window_s, 0.0, cfg.max_duration_s, low_open=True)
    overlap_s = check_number("overlap_s", overlap_s, 0.0, window_s, low_open=True)
    window, overlap = round(window_s * mc.frame_rate), round(overlap_s * mc.frame_rate)
    if not 0 < overlap < window:
        raise ValueError(f"overlap_s ({overlap_s:g}) must be shorter than window_s ({window_s:g}) by one frame")
    num = round(duration_s * sr)
    if num < mc.n_fft:
        raise ValueError(f"duration_s={duration_s:g} is shorter than one mel frame")
    target = -(-num // hop)
    job = _job(pipe, prompt, negative_prompt, min(duration_s, cfg.max_duration_s), num_steps, guidance_scale,
               sampler, seed, batch_size, allow_no_prompt=False, autoguidance=autoguidance)
    job.req.duration_s = duration_s
    sigmas = cfg.schedule.sigmas(job.req.num_steps)
    first = min(window, target)
    windows = 1 + math.ceil((target - first) / (window - overlap))
    mel = _sample(pipe, job, first, sigmas, job.req.seeds, progress=progress, callback=callback,
                  window=(0, windows)).cpu()
    mel = extend_mel(pipe, job, mel, target, context=overlap, new_per_window=window - overlap,
                     ramp=OVERLAP_RAMP_FRAMES, sigmas=sigmas, first_window=1, progress=progress,
                     callback=callback)
    wav = decode_long(pipe, mel, num)
    return AudioOutput(wav, sr, job.req.seeds, job.req.prompts, _settings(
        job, "long", window_s=window_s, overlap_s=overlap_s, windows=windows))


def melody(pipe, reference, prompt=None, sample_rate: int | None = None, negative_prompt=None,
           num_steps=None, guidance_scale=None, sampler=None, seed=None, batch_size: int = 1,
           melody_guidance: bool = True, progress: bool = False, callback=None,
           autoguidance: float | None = None) -> AudioOutput:
    """Generate audio that follows the melody of ``reference``: see :meth:`TextToAudioPipeline.melody`."""
    channels = pipe.unet.config.cond_channels
    if channels != 12:
        raise ValueError(f"this model has no melody input: its UNet takes {channels} frame-condition channels, "
                         "melody conditioning needs 12 (a model trained with frame_condition = 'chroma')")
    cfg, mc = pipe.config, pipe.config.mel
    wav = load_input(reference, mc, sample_rate, cfg.max_input_duration_s, name="reference")
    ref_duration = wav.shape[-1] / mc.sample_rate
    wav = wav[..., :round(cfg.max_duration_s * mc.sample_rate)]  # the model's longest generation
    num = wav.shape[-1]
    chroma = melody_chroma(wav, mc)
    job = _job(pipe, prompt, negative_prompt, num / mc.sample_rate, num_steps, guidance_scale, sampler, seed,
               batch_size, autoguidance=autoguidance, mode="melody")
    n, frames_n = len(job.req.seeds), chroma.shape[-1]
    frames = pipe.melody_frames(chroma.expand(n, -1, -1))
    # With melody guidance the unconditional branch has neither text nor melody, so the guidance
    # scale pushes towards both (training drops each on its own: the model knows all four cases).
    x = _sample(pipe, job, frames_n, cfg.schedule.sigmas(job.req.num_steps), job.req.seeds, frames=frames,
                uncond_frames=torch.zeros_like(frames) if melody_guidance else None,
                progress=progress, callback=callback)
    out = pipe.decode(x, num)
    return AudioOutput(out, mc.sample_rate, job.req.seeds, job.req.prompts, _settings(
        job, "melody", prompt=prompt, reference_duration_s=ref_duration, melody_guidance=melody_guidance,
        truncated=num < round(ref_duration * mc.sample_rate)))
