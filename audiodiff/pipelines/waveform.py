"""Text -> waveform directly, with the 1D UNet (the waveform model family).

No mel and no vocoder: the network denoises raw audio (B, C, T) scaled to [-1, 1]. Useful for
short sounds and tests of the 1D family; the mel pipeline is the default for quality and speed.

Folder format: ``pipeline.json`` (WaveformConfig), ``unet/`` (UNetWave), ``text/``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..conditioning.text import TextConditioner
from ..config import Config, check, register_config
from ..diffusion import EDMDenoiser, NoiseScheduleConfig, get_sampler
from ..hub import load_component, resolve_pretrained, save_component
from ..models.unet_wave import UNetWave
from .base import AudioOutput, check_text_width, encode_request, guided_sample, module_device, resolve_request

PIPELINE_CONFIG = "pipeline.json"


@register_config
@dataclasses.dataclass(frozen=True)
class WaveformConfig(Config):
    sample_rate: int = 22050
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=NoiseScheduleConfig)
    max_duration_s: float = 30.0
    min_duration_s: float = 0.01
    default_duration_s: float = 1.0
    default_steps: int = 25
    default_guidance_scale: float = 3.0
    default_sampler: str = "dpmpp_2m"

    def __post_init__(self):
        check(self.sample_rate > 0, f"WaveformConfig.sample_rate must be positive, got {self.sample_rate}")
        check(0 < self.min_duration_s <= self.default_duration_s <= self.max_duration_s,
              "WaveformConfig needs 0 < min_duration_s <= default_duration_s <= max_duration_s")
        check(self.default_steps >= 1, "WaveformConfig.default_steps must be >= 1")
        get_sampler(self.default_sampler)


class WaveformPipeline:
    """Generate waveforms from text with a :class:`UNetWave` denoiser."""

    def __init__(self, unet: UNetWave, text: TextConditioner, config: WaveformConfig | None = None):
        self.config = config or WaveformConfig()
        check_text_width(unet, text)
        self.unet = unet.eval()
        self.text = text.eval()
        self.denoiser = EDMDenoiser(self.unet, sigma_data=self.config.schedule.sigma_data)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device=None, dtype=None) -> WaveformPipeline:
        folder = resolve_pretrained(name_or_path)
        if not (folder / PIPELINE_CONFIG).is_file():
            raise FileNotFoundError(f"{folder} has no {PIPELINE_CONFIG}: not a waveform pipeline folder")
        config = WaveformConfig.load(folder / PIPELINE_CONFIG)
        unet = load_component(folder / "unet", expected=UNetWave)
        text = load_component(folder / "text", expected=TextConditioner)
        return cls(unet, text, config).to(device, dtype)

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        folder = Path(folder)
        save_component(self.unet, folder / "unet", dtype=dtype)
        save_component(self.text, folder / "text", dtype=dtype)
        self.config.save(folder / PIPELINE_CONFIG)
        return folder

    def to(self, device=None, dtype=None) -> WaveformPipeline:
        self.unet.to(device=device, dtype=dtype)
        self.text.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return module_device(self.unet)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

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
    ) -> AudioOutput:
        """Same arguments and result as :meth:`TextToAudioPipeline.__call__`."""
        c = self.config
        req = resolve_request(c, prompt, negative_prompt, duration_s, num_steps, guidance_scale, sampler,
                              seed, batch_size)
        prompts = req.prompts
        num_samples = round(req.duration_s * c.sample_rate)
        cond, uncond = encode_request(self.text, req, self.unet)
        if self.unet.config.cond_channels:
            zeros = torch.zeros(len(prompts), self.unet.config.cond_channels, num_samples, device=self.device)
            cond.frames = uncond.frames = zeros
        wav = guided_sample(
            self.denoiser, (self.unet.config.in_channels, num_samples), req.seeds, c.schedule.sigmas(req.num_steps),
            cond, uncond, req.guidance_scale, req.sampler, self.device, progress=progress, callback=callback,
        )
        return AudioOutput(wav.float().clamp(-1, 1).cpu(), c.sample_rate, req.seeds, prompts, req.settings())
