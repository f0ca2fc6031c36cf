"""Text -> mel (UNetMel + EDM sampling with classifier-free guidance) -> waveform (vocoder).

Folder format (``save_pretrained`` / ``from_pretrained``)::

    pipeline.json        TextToAudioConfig: mel definition, noise schedule, defaults, vocoder
    unet/                config.json + model.safetensors (UNetMel)
    text/                config.json + model.safetensors (the learned null condition)
    sound_length/        optional: prompt -> seconds of sound (models with a timing input)
    guide/               optional: a weaker UNetMel of the same inputs, for autoguidance: a UNet
                         folder, or its low-bit difference to unet/ (audiodiff.delta)
    vocoder/             only when the vocoder is not a packaged one (referenced by name)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from ..audio.features import MELODY_LAYOUTS, MelConfig, denormalize_mel, melody_planes, melody_template
from ..conditioning.length import SoundLengthHead
from ..conditioning.text import TextConditioner
from ..config import Config, ConfigError, check, register_config
from ..delta import check_bits, is_delta_folder, load_delta, save_delta
from ..diffusion import AutoGuided, EDMDenoiser, NoiseScheduleConfig, get_sampler
from ..diffusion.guidance import check_autoguidance, check_interval
from ..hub import CONFIG_NAME, DEFAULT_MODEL_DIR, load_component, resolve_pretrained, save_component
from ..models.unet_mel import UNetMel
from ..models.vocoder import BUILTIN_VOCODERS, VOCODER_FOLDER, HiFiGAN, check_mel_match, load_vocoder
from . import variations
from .base import (
    AudioOutput, Request, check_text_width, encode_request, guided_sample, module_device, module_dtype,
    resolve_dtype, resolve_request,
)

PIPELINE_CONFIG = "pipeline.json"
SOUND_LENGTH_FOLDER = "sound_length"
GUIDE_FOLDER = "guide"
# What a guide network must share with the UNet it guides: it sees the same input and conditions.
_GUIDE_INPUTS = ("n_mels", "in_channels", "cond_channels", "timing_channels", "text_dim", "pooled_dim")


def load_guide(name_or_path: str | os.PathLike, base: UNetMel | None = None) -> UNetMel:
    """A guide network for autoguidance: a UNetMel folder, a pipeline folder's ``unet/``, or a
    weight difference to ``base`` (a pipeline's ``guide/`` saved with ``guide_bits``)."""
    folder = resolve_pretrained(name_or_path)
    if (folder / PIPELINE_CONFIG).is_file():
        folder = folder / "unet"
    if is_delta_folder(folder):
        if base is None:
            raise ValueError(f"{folder} is a guide stored as a difference to its model's UNet; "
                             "load it with that model (from_pretrained(model, guide=...))")
        return load_delta(folder, base)
    return load_component(folder, expected=UNetMel)


@register_config
@dataclasses.dataclass(frozen=True)
class TextToAudioConfig(Config):
    """Settings of a text-to-audio pipeline that are not a component's own."""

    mel: MelConfig = dataclasses.field(default_factory=MelConfig)
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=NoiseScheduleConfig)
    # A packaged vocoder name ("hifigan-universal", "griffinlim") or "vocoder" (the subfolder).
    vocoder: str = "hifigan-universal"
    # Longest generation accepted; the UNet is fully convolutional in time, so this is a memory
    # and quality bound, not an architectural one.
    max_duration_s: float = 60.0
    min_duration_s: float = 0.1
    default_duration_s: float = 5.0
    default_steps: int = 25
    default_guidance_scale: float = 3.0
    default_sampler: str = "dpmpp_2m"
    # Frames sampled past the end of every clip and cut off: the UNet's zero padding beyond the
    # last frame makes its final ~4 frames rise towards the mean, a click after a sound that has
    # ended (the bundled model: -24 dBFS after a bark, -84 dBFS with 8 frames); 0 = none.
    end_margin_frames: int = 8
    # Guide only the steps with lo < sigma <= hi (None: every step); unguided steps cost half.
    guidance_interval: tuple[float, float] | None = None
    # Autoguidance weight w (D + w (D - G)) when the folder has a guide network and the call
    # does not say; ignored without one.
    default_autoguidance: float = 0.0
    # The melody mode's default weight (None: default_autoguidance). A guide that follows a melody
    # differently from the model pulls the tune away: the bundled model's frame accuracy is 0.479
    # without its guide and 0.342 with it at w = 1, so its melody mode leaves it off.
    melody_autoguidance: float | None = None
    # The clip length the model was trained on: the context and window of the modes that work
    # window by window (continuation, generate_long, variations of clips over max_duration_s).
    window_s: float = 10.0
    # Longest input audio the audio-to-audio modes accept and longest generate_long output;
    # longer work goes window by window, so this bounds time, not memory.
    max_input_duration_s: float = 600.0
    # How a melody's 12 chroma channels reach a UNet with cond_channels = 12 (see
    # audiodiff.audio.features.MELODY_LAYOUTS); a property of the trained weights.
    melody_layout: str = "broadcast"

    def __post_init__(self):
        check(0 < self.min_duration_s <= self.default_duration_s <= self.max_duration_s,
              "TextToAudioConfig needs 0 < min_duration_s <= default_duration_s <= max_duration_s")
        check(self.default_steps >= 1, "TextToAudioConfig.default_steps must be >= 1")
        check(isinstance(self.end_margin_frames, int) and self.end_margin_frames >= 0,
              "TextToAudioConfig.end_margin_frames must be an integer >= 0")
        check(self.default_guidance_scale >= 0, "TextToAudioConfig.default_guidance_scale must be >= 0")
        check(self.default_autoguidance >= 0, "TextToAudioConfig.default_autoguidance must be >= 0")
        check(self.melody_autoguidance is None or self.melody_autoguidance >= 0,
              "TextToAudioConfig.melody_autoguidance must be None or >= 0")
        get_sampler(self.default_sampler)
        try:
            check_interval(self.guidance_interval)
        except ValueError as err:
            raise ConfigError(f"TextToAudioConfig.{err}") from None
        check(0 < self.window_s <= self.max_duration_s <= self.max_input_duration_s,
              "TextToAudioConfig needs 0 < window_s <= max_duration_s <= max_input_duration_s")
        check(self.melody_layout in MELODY_LAYOUTS,
              f"TextToAudioConfig.melody_layout must be one of {MELODY_LAYOUTS}, got {self.melody_layout!r}")


class TextToAudioPipeline:
    """Generate audio from text prompts.

    >>> pipe = TextToAudioPipeline.from_pretrained()            # the bundled default model
    >>> out = pipe("heavy rain on a tin roof", duration_s=5, seed=0)
    >>> out.waveforms.shape, out.sample_rate                     # (1, 1, 110250), 22050
    """

    def __init__(self, unet: UNetMel, text: TextConditioner, vocoder: nn.Module,
                 config: TextToAudioConfig | None = None, sound_length: SoundLengthHead | None = None,
                 guide: UNetMel | None = None):
        self.config = config = config or TextToAudioConfig()
        if unet.config.n_mels != config.mel.n_mels:
            raise ConfigError(f"the UNet takes {unet.config.n_mels} mels, the pipeline's mel has {config.mel.n_mels}")
        check_text_width(unet, text)
        check_mel_match(vocoder.mel_config, config.mel)
        if sound_length is not None:
            if not unet.config.timing_channels:
                raise ConfigError("a sound length head needs a UNet with a timing input (timing_channels = 1); "
                                  "this UNet has none: leave sound_length unset")
            if sound_length.config.dim != text.config.dim:
                raise ConfigError(f"the sound length head takes {sound_length.config.dim}-d text embeddings, "
                                  f"the text conditioner gives {text.config.dim}-d")
            sound_length = sound_length.eval()
        if guide is not None:
            differ = [k for k in _GUIDE_INPUTS if getattr(guide.config, k) != getattr(unet.config, k)]
            if differ:
                raise ConfigError("the guide network must take the UNet's inputs; they differ in "
                                  + ", ".join(f"{k} ({getattr(guide.config, k)} vs {getattr(unet.config, k)})"
                                              for k in differ))
            guide = guide.eval()
        self.unet = unet.eval()
        self.text = text.eval()
        self.vocoder = vocoder.eval()
        # Kept on the CPU in float32 whatever the pipeline's device: 385 weights.
        self.sound_length = sound_length
        self.denoiser = EDMDenoiser(self.unet, sigma_data=config.schedule.sigma_data)
        self.guide = guide
        self._set_memory_format()

    def _set_memory_format(self) -> None:
        # On the CPU, channels-last UNet weights make oneDNN's convolutions about 30% faster;
        # elsewhere the weights stay contiguous (not measured there in the pipeline yet).
        cpu = self.device.type == "cpu"
        for net in (self.unet, self.guide):
            if net is not None:
                net.to(memory_format=torch.channels_last if cpu else torch.contiguous_format)

    def autoguidance(self, weight: float | None = None, mode: str | None = None) -> float:
        """The autoguidance weight a call runs with: ``weight``, or when None the model's default
        (``config.default_autoguidance``; for ``mode="melody"``, ``config.melody_autoguidance``
        if set); 0 for a model without a guide network."""
        if weight is None:
            if self.guide is None:
                return 0.0
            if mode == "melody" and self.config.melody_autoguidance is not None:
                return self.config.melody_autoguidance
            return self.config.default_autoguidance
        weight = check_autoguidance(weight)
        if weight > 0 and self.guide is None:
            raise ValueError(f"autoguidance={weight} needs a guide network (a guide/ folder beside unet/); "
                             "this model has none: leave autoguidance at None or 0")
        return weight

    def end_margin(self, init: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> int:
        """Frames to sample past a window's end and cut off (``config.end_margin_frames``): where
        its last frame is generated, not given by ``init`` nor known (``mask`` 0 there)."""
        if init is not None or (mask is not None and float(mask[..., -1].max()) == 0.0):
            return 0
        return self.config.end_margin_frames

    def sampling_denoiser(self, autoguidance: float = 0.0) -> nn.Module:
        """What the samplers call: the UNet's denoiser, autoguided by the guide network with
        weight ``autoguidance`` (a value from :meth:`autoguidance`) when it is above 0."""
        if autoguidance == 0:
            return self.denoiser
        guide = EDMDenoiser(self.guide, sigma_data=self.config.schedule.sigma_data)
        return AutoGuided(self.denoiser, guide, autoguidance)

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None,
                        device: torch.device | str | None = None,
                        dtype: torch.dtype | str | None = None,
                        guide: str | os.PathLike | None = None) -> TextToAudioPipeline:
        """Load a pipeline folder (or hub id); None loads the model bundled with audiodiff.
        ``guide``: a guide network for autoguidance, in place of the folder's own ``guide/``: a
        UNetMel folder, or a pipeline folder whose ``unet/`` is taken (e.g. an earlier
        checkpoint of the same model, whose learned null condition is close to this one's).

        ``dtype`` of the UNet and the vocoder: None (float32), a torch dtype, or "fp32", "bf16",
        "fp16", "auto" (bf16 on CPUs with native bf16, such as AVX512-BF16 / AMX x86 chips: a
        5 s clip ~1.6x faster, same measured quality; float32 elsewhere). The text encoder and
        the sound length head stay float32."""
        if name_or_path is None:
            if not (DEFAULT_MODEL_DIR / PIPELINE_CONFIG).is_file():
                raise FileNotFoundError(f"the bundled default model is missing from {DEFAULT_MODEL_DIR}; "
                                        "reinstall audiodiff or pass a model folder")
            folder = DEFAULT_MODEL_DIR
        else:
            folder = resolve_pretrained(name_or_path)
        if not (folder / PIPELINE_CONFIG).is_file():
            raise FileNotFoundError(f"{folder} has no {PIPELINE_CONFIG}: not a text-to-audio pipeline folder")
        config = TextToAudioConfig.load(folder / PIPELINE_CONFIG)
        unet = load_component(folder / "unet", expected=UNetMel)
        text = load_component(folder / "text", expected=TextConditioner)
        if config.vocoder in BUILTIN_VOCODERS:
            vocoder = load_vocoder(config.vocoder, mel_config=config.mel)
        else:
            vocoder = load_vocoder(folder / config.vocoder, mel_config=config.mel)
        sound_length = None
        if (folder / SOUND_LENGTH_FOLDER / CONFIG_NAME).is_file():
            sound_length = load_component(folder / SOUND_LENGTH_FOLDER, expected=SoundLengthHead)
        if guide is not None:
            guide = load_guide(guide, base=unet)
        elif (folder / GUIDE_FOLDER / CONFIG_NAME).is_file():
            guide = load_guide(folder / GUIDE_FOLDER, base=unet)
        return cls(unet, text, vocoder, config, sound_length, guide).to(device, resolve_dtype(dtype, device))

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None,
                        guide_bits: int | None = None) -> Path:
        """Write the pipeline folder; ``dtype=torch.float16`` halves its size. ``guide_bits``
        (2..8) stores the guide network as its difference to the UNet in that many bits per
        weight (6: about 3/8 of an fp16 copy, and the bundled model's measured gain intact)."""
        if guide_bits is not None:  # checked before anything is written
            if self.guide is None:
                raise ValueError("guide_bits is for a pipeline with a guide network; this one has none")
            check_bits(guide_bits)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_component(self.unet, folder / "unet", dtype=dtype)
        save_component(self.text, folder / "text", dtype=dtype)
        if self.sound_length is not None:
            save_component(self.sound_length, folder / SOUND_LENGTH_FOLDER)  # float32 whatever dtype
        if self.guide is not None:
            if guide_bits is None:
                save_component(self.guide, folder / GUIDE_FOLDER, dtype=dtype)
            else:
                save_delta(self.guide, self.unet, folder / GUIDE_FOLDER, bits=guide_bits, base_dtype=dtype)
        config = self.config
        if isinstance(self.vocoder, HiFiGAN) and config.vocoder not in BUILTIN_VOCODERS:
            save_component(self.vocoder, folder / VOCODER_FOLDER, dtype=dtype)
            config = config.replace(vocoder=VOCODER_FOLDER)
        config.save(folder / PIPELINE_CONFIG)
        return folder

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TextToAudioPipeline:
        """Move the networks; ``dtype`` (bf16 on CPUs with native bf16, bf16/fp16 on GPUs) applies to
        the UNet and the vocoder, whose last stage stays float32 (``HiFiGAN.low_precision``).
        On the CPU the UNet's weights are kept channels-last: oneDNN's convolutions are then
        about 30% faster (a guided 5 s step: 0.41 -> 0.29 s on 2 cores), same results to rounding."""
        self.unet.to(device=device, dtype=dtype)
        if self.guide is not None:
            self.guide.to(device=device, dtype=dtype)
        self._set_memory_format()
        if isinstance(self.vocoder, HiFiGAN) and dtype in (torch.bfloat16, torch.float16):
            self.vocoder.to(device=device).low_precision(dtype)  # its last stage stays float32
        else:
            self.vocoder.to(device=device, dtype=dtype)
        self.text.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return module_device(self.unet)

    @property
    def dtype(self) -> torch.dtype:
        """The denoiser's weights dtype (the vocoder's, but for its float32 last stage)."""
        return module_dtype(self.unet)

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    # ------------------------------------------------------------------ generation
    def frame_condition(self, batch: int, n_frames: int) -> torch.Tensor | None:
        """Frame-aligned inputs for a text-only call: zeros ("absent") when the UNet has any."""
        channels = self.unet.config.cond_channels
        if channels == 0:
            return None
        return torch.zeros(batch, channels, self.config.mel.n_mels, n_frames,
                           device=self.device, dtype=module_dtype(self.unet))

    def melody_frames(self, chroma: torch.Tensor) -> torch.Tensor:
        """Chroma (B, 12, N) -> the UNet's frame condition (B, 12, n_mels, N), in the layout the
        model was trained with (``config.melody_layout``), on the UNet's device and dtype."""
        mel, layout = self.config.mel, self.config.melody_layout
        frames = melody_planes(chroma.float(), mel.n_mels, layout, melody_template(mel, layout))
        return frames.to(self.device, module_dtype(self.unet))

    def check_sound_s(self, sound_s: float | Sequence[float], duration_s: float, batch: int) -> list[float]:
        """``sound_s`` (one value for every item or one per item) as one checked number per item."""
        if not self.unet.config.timing_channels:
            raise ValueError("sound_s needs a model trained with a timing input (unet timing_channels = 1); "
                             "this model has none: leave sound_s unset or 'auto'")
        values = [sound_s] * batch if isinstance(sound_s, (int, float, str)) else list(sound_s)
        if len(values) != batch:
            raise ValueError(f"sound_s has {len(values)} values for {batch} items; give one, or one per item")
        seconds = []
        for v in values:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"sound_s must be a number of seconds, 'auto' or None, got {v!r}") from None
            if not 0 < v <= duration_s:
                raise ValueError(f"sound_s must be in (0, duration_s] = (0, {duration_s:g}] s, got {v:g}")
            seconds.append(v)
        return seconds

    @torch.inference_mode()
    def predict_sound_s(self, prompt: str | Sequence[str], duration_s: float | None = None) -> list[float] | None:
        """Seconds of sound the model's length head gives each prompt for clips of ``duration_s``
        (default: the model's; see ``SoundLengthHead.seconds``), or None when the model has no
        head (``sound_s="auto"`` then leaves the length to the model)."""
        if self.sound_length is None:
            return None
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        duration_s = self.config.default_duration_s if duration_s is None else duration_s
        return self.sound_length.seconds(self.text(prompts).pooled, duration_s)

    def generate_mel(
        self,
        prompt: str | Sequence[str],
        negative_prompt: str | Sequence[str] | None = None,
        duration_s: float | None = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        seed: int | Sequence[int] | None = None,
        batch_size: int = 1,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        frames: torch.Tensor | None = None,
        init_mel: torch.Tensor | None = None,
        sigmas: torch.Tensor | None = None,
        sampler_options: dict | None = None,
        guidance_interval: tuple[float, float] | None = None,
        sound_s: float | Sequence[float] | str | None = "auto",
        autoguidance: float | None = None,
    ) -> tuple[torch.Tensor, Request]:
        """Sample normalised log-mels (B, 1, n_mels, N); the building block of every mode."""
        req = resolve_request(self.config, prompt, negative_prompt, duration_s, num_steps, guidance_scale,
                              sampler, seed, batch_size, guidance_interval)
        req.autoguidance = self.autoguidance(autoguidance)
        mel = self.config.mel
        # Enough frames to cover the requested samples; the waveform is cropped to length.
        n_frames = -(-round(req.duration_s * mel.sample_rate) // mel.hop_length)
        # ... and a margin past the end, cut off after sampling (config.end_margin_frames).
        margin = self.end_margin(init_mel)
        cond, uncond = encode_request(self.text, req, self.unet)
        if frames is None:
            frames = self.frame_condition(len(req.prompts), n_frames + margin)
        elif margin:
            frames = torch.nn.functional.pad(frames, (0, margin))  # no frame condition in the margin
        cond.frames = uncond.frames = frames
        from_prompt = isinstance(sound_s, str) and sound_s == "auto"
        if from_prompt:
            sound_s = None if self.sound_length is None else self.sound_length.seconds(cond.pooled, req.duration_s)
        if sound_s is not None:
            seconds = self.check_sound_s(sound_s, req.duration_s, len(req.prompts))
            req.sound_s = seconds[0] if len(set(seconds)) == 1 else seconds
            if from_prompt:
                req.sound_s_from = "prompt"
            # Both branches: guidance steers towards the prompt, not towards a length. A sound
            # that fills the clip goes on through the margin: the clip's end does not end it.
            sound_frames = torch.tensor(seconds, device=self.device) * (mel.sample_rate / mel.hop_length)
            fills = torch.tensor(seconds, device=self.device) >= req.duration_s
            cond.sound_frames = uncond.sound_frames = torch.where(fills, sound_frames + margin, sound_frames)
        if sigmas is None:
            sigmas = self.config.schedule.sigmas(req.num_steps)
        x = guided_sample(
            self.sampling_denoiser(req.autoguidance), (self.unet.config.in_channels, mel.n_mels, n_frames + margin),
            req.seeds, sigmas, cond, uncond, req.guidance_scale, req.sampler, self.device,
            progress=progress, callback=callback, init=init_mel, sampler_options=sampler_options,
            guidance_interval=req.guidance_interval,
        )
        return x[..., :n_frames], req

    @torch.inference_mode()
    def decode(self, mel: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """Normalised log-mel (B, 1, n_mels, N) -> waveform (B, 1, T) float32 on the CPU."""
        log_mel = denormalize_mel(mel[:, 0].float(), self.config.mel)
        # module_dtype is float32 for the parameter-free Griffin-Lim.
        wav = self.vocoder(log_mel.to(module_dtype(self.vocoder)))
        wav = wav.float().cpu()
        if num_samples is not None:
            wav = wav[..., :num_samples]
        return wav

    def __call__(
        self,
        prompt: str | Sequence[str],
        negative_prompt: str | Sequence[str] | None = None,
        duration_s: float | None = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        seed: int | Sequence[int] | None = None,
        batch_size: int = 1,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        guidance_interval: tuple[float, float] | None = None,
        sound_s: float | Sequence[float] | str | None = "auto",
        autoguidance: float | None = None,
    ) -> AudioOutput:
        """Generate ``batch_size`` clips per prompt; returns waveforms of exactly ``duration_s``.

        prompt: one prompt or a list (each gets ``batch_size`` items).
        negative_prompt: what to steer away from (replaces the unconditional branch of guidance).
        guidance_scale: 0 = unconditional, 1 = conditional without guidance, >1 stronger adherence.
        sampler: "dpmpp_2m" (default), "dpmpp_2m_sde" (stochastic: fresh noise each step, seeded
            per item), "dpmpp_3m" (for 25 or more steps), "euler", "heun" or "ddim".
        seed: base seed (item i uses seed + i) or one seed per item; None picks one (reported).
        guidance_interval: (sigma_lo, sigma_hi): guide only the steps with sigma_lo < sigma <=
            sigma_hi, the others cost half; None = the model's default (config.guidance_interval),
            (0, inf) = every step.
        sound_s: seconds of sound from the start of the clip, then silence (a one-shot effect
            in a longer clip), for every item or one value per item (needs a model with a timing
            input); "auto" (default) = predicted from the prompt by the model's sound length head
            (``predict_sound_s``; settings["sound_s_from"] says "prompt"), or left to the model
            when it has none; None = left to the model.
        autoguidance: weight w of autoguidance by the model's guide network, D + w (D - G)
            (needs one: a ``guide/`` folder, or ``from_pretrained(guide=...)``; the bundled
            model's is an earlier checkpoint of its UNet); None = the model's default
            (``config.default_autoguidance``; the bundled model's is 1), 0 = off (one network
            call less per step).
        """
        mel, req = self.generate_mel(prompt, negative_prompt, duration_s, num_steps, guidance_scale,
                                     sampler, seed, batch_size, progress, callback,
                                     guidance_interval=guidance_interval, sound_s=sound_s, autoguidance=autoguidance)
        wav = self.decode(mel, round(req.duration_s * self.sample_rate))
        return AudioOutput(wav, self.sample_rate, req.seeds, req.prompts, req.settings())

    # ------------------------------------------------------------------ audio-to-audio modes
    # The logic lives in variations.py. Every mode takes the generation keywords of __call__
    # (negative_prompt, num_steps, guidance_scale, sampler, seed, batch_size, progress, callback,
    # autoguidance)
    # and returns an AudioOutput whose settings name the mode and its parameters. ``audio`` is a
    # file path (any format soundfile reads, any rate and channels) or a float tensor/array (C, T)
    # or (T,) with ``sample_rate``; it is mixed to mono and resampled to the pipeline's rate.

    def vary(self, audio, strength: float = 0.5, prompt: str | Sequence[str] | None = None,
             sample_rate: int | None = None, **kw) -> AudioOutput:
        """Variations (SDEdit): the input's mel noised to a sigma log-linear in ``strength``
        (0.05 at 0+ to sigma_max at 1; see diffusion.variation_sigmas), then denoised in
        ceil(strength * num_steps) steps. 0 returns the vocoded input, 1 ignores it. prompt None
        = the learned "no text" condition. Same length as the input."""
        return variations.vary(self, audio, strength, prompt, sample_rate, **kw)

    def inpaint(self, audio, start_s: float, end_s: float, prompt: str | Sequence[str] | None = None,
                sample_rate: int | None = None, **kw) -> AudioOutput:
        """Regenerate [start_s, end_s) of the input; outside it the output equals the vocoded input
        exactly (equal-power crossfades inside the region's borders)."""
        return variations.inpaint(self, audio, start_s, end_s, prompt, sample_rate, **kw)

    def continuation(self, audio, seconds: float, prompt: str | Sequence[str] | None = None,
                     sample_rate: int | None = None, **kw) -> AudioOutput:
        """The vocoded input followed by ``seconds`` of new audio, generated window by window with
        up to ``config.window_s`` of context; exactly input + seconds long."""
        return variations.continuation(self, audio, seconds, prompt, sample_rate, **kw)

    def generate_long(self, prompt: str | Sequence[str], duration_s: float, window_s: float = 10.0,
                      overlap_s: float = 2.5, **kw) -> AudioOutput:
        """Up to ``config.max_input_duration_s`` (600 s) of audio: windows of ``window_s``, each
        continuing the last ``overlap_s`` of the one before and crossfading in the overlap."""
        return variations.generate_long(self, prompt, duration_s, window_s, overlap_s, **kw)

    def melody(self, reference, prompt: str | Sequence[str] | None = None, sample_rate: int | None = None,
               **kw) -> AudioOutput:
        """Audio that follows the reference's melody (one-hot chroma frames); needs a UNet with 12
        frame channels. As long as the reference, at most ``config.max_duration_s``.
        ``melody_guidance=True`` (default) guides towards the melody as well as the prompt (the
        unconditional branch gets neither); False guides the prompt only."""
        return variations.melody(self, reference, prompt, sample_rate, **kw)
