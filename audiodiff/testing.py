"""Tiny components built in code, for fast tests and examples (no download), and the small
training loop of the learning tests.

Like diffusers' ``get_dummy_components``: every factory is deterministic for a seed and small
enough that a forward pass takes milliseconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .audio.features import MelConfig
from .conditioning.text import TextConditioner, TextConditionerConfig
from .models.unet_mel import UNetMel, UNetMelConfig
from .models.unet_wave import UNetWave, UNetWaveConfig
from .models.vocoder import GriffinLim
from .pipelines import TextToAudioConfig, TextToAudioPipeline, WaveformConfig, WaveformPipeline

TINY_TEXT_DIM = 32


def tiny_text_conditioner(encoder: str = "hash") -> TextConditioner:
    dim = 384 if encoder == "minilm" else TINY_TEXT_DIM
    return TextConditioner(TextConditionerConfig(encoder=encoder, dim=dim))


def tiny_unet_mel_config(n_mels: int = 80, text_dim: int = TINY_TEXT_DIM, cond_channels: int = 0,
                         base_channels: int = 16, timing_channels: int = 0) -> UNetMelConfig:
    return UNetMelConfig(n_mels=n_mels, cond_channels=cond_channels, timing_channels=timing_channels,
                         base_channels=base_channels,
                         channel_mults=(1, 2, 2), num_res_blocks=1, self_attention_levels=(2,),
                         cross_attention_levels=(1, 2), num_heads=2, text_dim=text_dim, pooled_dim=text_dim)


def tiny_unet_wave_config(text_dim: int = TINY_TEXT_DIM, base_channels: int = 16) -> UNetWaveConfig:
    return UNetWaveConfig(base_channels=base_channels, channel_mults=(1, 2, 2, 4), factors=(4, 4, 4),
                          num_res_blocks=1, kernel_size=3, self_attention_levels=(3,),
                          cross_attention_levels=(2, 3), num_heads=2, text_dim=text_dim, pooled_dim=text_dim)


def tiny_text_to_audio_pipeline(seed: int = 0, encoder: str = "hash", n_mels: int = 80,
                                vocoder: str = "griffinlim", **unet_kw) -> TextToAudioPipeline:
    """A randomly initialised text-to-audio pipeline (Griffin-Lim vocoder, hash text encoder)."""
    torch.manual_seed(seed)
    text = tiny_text_conditioner(encoder)
    mel = MelConfig(n_mels=n_mels)
    unet = UNetMel(tiny_unet_mel_config(n_mels=n_mels, text_dim=text.config.dim, **unet_kw))
    config = TextToAudioConfig(mel=mel, vocoder=vocoder, default_steps=4)
    if vocoder == "griffinlim":
        voc = GriffinLim(mel)
    else:
        from .models.vocoder import load_vocoder
        voc = load_vocoder(vocoder, mel_config=mel)
    return TextToAudioPipeline(unet, text, voc, config)


def tiny_waveform_pipeline(seed: int = 0, sample_rate: int = 8000) -> WaveformPipeline:
    torch.manual_seed(seed)
    text = tiny_text_conditioner("hash")
    unet = UNetWave(tiny_unet_wave_config(text_dim=text.config.dim))
    return WaveformPipeline(unet, text, WaveformConfig(sample_rate=sample_rate, default_steps=4))


def train_with_ema(pipe, loss_fn: Callable, draw: Callable, steps: int, lr: float = 2e-3,
                   seed: int = 0) -> list[float]:
    """Adam on a pipeline's UNet and text conditioner for ``steps`` steps, with an EMA of the
    weights (decay min(0.98, (1 + step) / (10 + step))) loaded into the pipeline at the end;
    the UNet is left in eval mode. ``draw(generator) -> (x0, cond)`` makes one batch;
    ``loss_fn(denoiser, x0, cond, generator=)`` is an EDM loss. Returns the losses."""
    params = list(pipe.unet.parameters()) + list(pipe.text.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    pipe.unet.train()
    for step in range(steps):
        x0, cond = draw(g)
        loss = loss_fn(pipe.denoiser, x0, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay = min(0.98, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p, 1 - decay)
        losses.append(loss.item())
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    pipe.unet.eval()
    return losses
