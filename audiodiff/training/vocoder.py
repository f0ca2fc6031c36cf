"""The vocoder GAN task: HiFi-GAN generator, its discriminators and losses (training only).

The generator is the release :class:`~audiodiff.models.vocoder.HiFiGAN`; everything else here
(discriminators, weight-norm parametrisation, losses) exists only while training and never enters
the exported folder (the inference class is not the training class, as in Vocos / audiocraft).

* Multi-period discriminator (Kong et al. 2020, HiFi-GAN sec. 2.2): the waveform folded into
  (T/p, p) for several prime periods p, 2D convs with (k, 1) kernels.
* Multi-resolution discriminator (Jang et al. 2021, UnivNet sec. 2.3): 2D convs over linear
  spectrograms at several STFT resolutions.
* Losses (HiFi-GAN eq. 1-6): least-squares GAN, feature matching (L1 between discriminator
  features of real and generated audio), and L1 between log-mels of real and generated audio
  over the full band.
* Optional multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN sec. 2.2): spectral
  convergence plus log-magnitude L1 at several STFT resolutions (``stft_weight > 0``). It scores
  linear-frequency magnitudes, which the log-mel loss blurs, so a fine-tune without
  discriminators does not trade loud spectral peaks for quiet detail.

A step has two phases: the generator's (which caches its output, detached) and then the
discriminators' (on that cached output), each with its own optimizer. When fine-tuning, the
generator can learn from the mel loss alone for the first ``disc_warmup_steps`` steps while the
fresh discriminators learn to score. With ``adversarial = false`` there are no discriminators and a
step has the generator's phase only (mel loss alone: a cheap fine-tune, e.g. on a CPU).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..audio import MelSpectrogram
from ..hub import load_component, load_config, resolve_pretrained, save_component
from ..models.vocoder import HiFiGAN, HiFiGANConfig, load_vocoder
from .config import DataConfig, VocoderTaskConfig
from .data import FeatureSpec
from .tasks import Task

_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    """forward: wav (B, 1, T) -> (scores (B, M), features): T folded into (T/period, period)."""

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1) if i < len(channels) - 1 else 1, padding=(2, 0)))
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = wav.shape
        if t % self.period:
            wav = F.pad(wav, (0, self.period - t % self.period), mode="reflect")
        x = wav.reshape(b, c, -1, self.period)
        return _score_with_features(self.convs, self.post, x)


def _score_with_features(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor):
    """Run a discriminator's conv stack; return flattened scores and every layer's activations
    (the feature-matching loss compares them between real and generated audio)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), _SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class ResolutionDiscriminator(nn.Module):
    """forward: wav (B, 1, T) -> (scores, features) over a linear magnitude spectrogram."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, channels: int):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            *(weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))) for _ in range(3)),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pad = (self.n_fft - self.hop_length) // 2
        x = F.pad(wav.float(), (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, center=False,
                          return_complex=True).abs()  # (B, F, frames)
        x = spec.transpose(1, 2)[:, None].to(wav.dtype)  # (B, 1, frames, F)
        return _score_with_features(self.convs, self.post, x)


class MultiDiscriminator(nn.Module):
    """Several sub-discriminators; forward: wav (B, 1, T) -> (list of scores, list of feature lists)."""

    def __init__(self, discriminators: list[nn.Module]):
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores pushed to 1, generated ones to 0 (HiFi-GAN eq. 1)."""
    return sum(((1 - r.float()) ** 2).mean() + (f.float() ** 2).mean() for r, f in zip(real, fake))


def generator_adversarial_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: generated scores pushed to 1 (HiFi-GAN eq. 2)."""
    return sum(((1 - f.float()) ** 2).mean() for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between discriminator features of real (held fixed) and generated audio (eq. 4)."""
    return sum(F.l1_loss(f.float(), r.detach().float()) for rs, fs in zip(real, fake) for r, f in zip(rs, fs))


def multi_resolution_stft_loss(est: torch.Tensor, ref: torch.Tensor, resolutions: tuple[tuple[int, int, int], ...],
                               floor: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """(spectral convergence, log-magnitude L1) of two (B, 1, T) batches, each averaged over the
    (n_fft, hop_length, win_length) resolutions (Parallel WaveGAN eq. 2-4; Hann window, centred
    frames, magnitudes floored at ``floor``: 1e-4 = sqrt(1e-8) as in Parallel WaveGAN). Spectral
    convergence is taken over the whole batch. Also benchmarks/vocoder.py's MR-STFT distance."""
    est, ref = est.float().flatten(0, 1), ref.float().flatten(0, 1)
    sc = log_mag = 0.0
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=est.device)
        mags = [torch.stft(x, n_fft, hop, win, window, return_complex=True).abs().clamp_min(floor)
                for x in (est, ref)]
        sc = sc + torch.linalg.norm(mags[1] - mags[0]) / torch.linalg.norm(mags[1]).clamp_min(1e-9)
        log_mag = log_mag + F.l1_loss(mags[0].log(), mags[1].log())
    return sc / len(resolutions), log_mag / len(resolutions)


def _generator_convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


def add_weight_norm(generator: nn.Module) -> nn.Module:
    for conv in _generator_convs(generator):
        weight_norm(conv)
    return generator


def remove_weight_norm(generator: nn.Module) -> nn.Module:
    """Fold weight-norm parametrisations into plain weights (in place)."""
    for conv in _generator_convs(generator):
        if parametrize.is_parametrized(conv, "weight"):
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    return generator


class VocoderTask(Task):
    """Train or fine-tune a HiFi-GAN generator; exports a vocoder folder (``load_vocoder(folder)``)."""

    def __init__(self, config: VocoderTaskConfig):
        self.config = config
        self.generator = HiFiGAN(config.generator)
        if config.weight_norm:
            add_weight_norm(self.generator)
        mel = config.generator.mel
        self.mel = MelSpectrogram(mel)
        # HiFi-GAN's mel loss covers the full band (fmax_for_loss = None), not just the input's 8 kHz.
        self.loss_mel = MelSpectrogram(mel.replace(f_max=mel.sample_rate / 2))
        self.modules = {"generator": self.generator, "mel": self.mel, "loss_mel": self.loss_mel}
        # The discriminators, by name; none when the generator learns from the mel loss alone.
        self.discriminators: dict[str, MultiDiscriminator] = {}
        if config.adversarial:
            self.discriminators = {
                "mpd": MultiDiscriminator([PeriodDiscriminator(p, config.mpd_channels) for p in config.mpd_periods]),
                "mrd": MultiDiscriminator([ResolutionDiscriminator(*r, config.mrd_channels)
                                           for r in config.mrd_resolutions])}
            self.modules.update(self.discriminators)
        self._fake: dict[int, torch.Tensor] = {}
        self._step = 0

    def begin_step(self, step: int) -> None:
        self._step = step

    @property
    def ema_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}

    def ddp_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, **self.discriminators}

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        params = {"generator": list(self.generator.parameters())}
        if self.discriminators:
            params["discriminator"] = [p for d in self.discriminators.values() for p in d.parameters()]
        return params

    def feature_spec(self, data: DataConfig) -> FeatureSpec:
        mel = self.config.generator.mel
        frames = max(1, int(data.crop_s * mel.sample_rate) // mel.hop_length)
        return FeatureSpec("wave", mel.sample_rate, frames * mel.hop_length)

    @classmethod
    def resolve_init(cls, config: VocoderTaskConfig, init_from: str) -> VocoderTaskConfig:
        if init_from in ("hifigan", "hifigan-universal"):
            return config.replace(generator=HiFiGANConfig())
        generator = load_config(resolve_pretrained(init_from))
        if not isinstance(generator, HiFiGANConfig):
            raise ValueError(f"init_from={init_from!r} holds a {type(generator).__name__}, not a HiFi-GAN vocoder")
        return config.replace(generator=generator)

    def load_init(self, init_from: str) -> None:
        if init_from in ("hifigan", "hifigan-universal"):
            pretrained = load_vocoder(init_from)
        else:
            pretrained = load_component(resolve_pretrained(init_from), expected=HiFiGAN)
        remove_weight_norm(self.generator)
        self.generator.load_state_dict(pretrained.state_dict(), strict=True)
        if self.config.weight_norm:
            add_weight_norm(self.generator)

    def _mels(self, wav: torch.Tensor, module: MelSpectrogram) -> torch.Tensor:
        with torch.autocast(wav.device.type, enabled=False):  # spectra in float32 under bf16 autocast
            return module(wav.float())

    def phase_loss(self, phase: str, wrapped: dict[str, nn.Module], batch: dict) -> dict:
        wav = batch["x"]  # (B, 1, T), T a multiple of hop_length
        key = int(batch["positions"][0])
        if phase == "generator":
            if len(self._fake) > 1024:  # left over by steps whose generator phase was NaN
                self._fake.clear()
            fake = wrapped["generator"](self._mels(wav, self.mel))
            mel_l1 = F.l1_loss(self._mels(fake, self.loss_mel), self._mels(wav, self.loss_mel))
            c = self.config
            out = {"loss": c.mel_weight * mel_l1, "mel_l1": mel_l1}
            if c.stft_weight > 0:
                with torch.autocast(wav.device.type, enabled=False):
                    sc, log_mag = multi_resolution_stft_loss(fake, wav, c.stft_resolutions)
                out.update(loss=out["loss"] + c.stft_weight * (sc + log_mag), stft_sc=sc, stft_log_mag=log_mag)
            if self.discriminators:
                self._fake[key] = fake.detach()  # for the discriminators' phase, warm-up included
            # Reconstruction losses alone without discriminators, or while they still learn to score.
            if not self.discriminators or self._step < c.disc_warmup_steps:
                return out
            adv = fm = 0.0
            for name in self.discriminators:
                scores, features = wrapped[name](torch.cat([wav, fake.to(wav.dtype)]))
                b = wav.shape[0]
                adv = adv + generator_adversarial_loss([s[b:] for s in scores])
                fm = fm + feature_matching_loss([[f[:b] for f in fs] for fs in features],
                                                [[f[b:] for f in fs] for fs in features])
            return {**out, "loss": out["loss"] + adv + c.fm_weight * fm, "adv": adv, "fm": fm}
        fake = self._fake.pop(key)
        loss = 0.0
        for name in self.discriminators:
            scores, _ = wrapped[name](torch.cat([wav, fake.to(wav.dtype)]))
            b = wav.shape[0]
            loss = loss + discriminator_loss([s[:b] for s in scores], [s[b:] for s in scores])
        return {"loss": loss}

    @torch.no_grad()
    def validation_loss(self, batch: dict, seed: int) -> torch.Tensor:
        """(B,) full-band log-mel L1 of the resynthesised validation crops."""
        wav = batch["x"]
        fake = self.generator(self._mels(wav, self.mel))
        err = (self._mels(fake, self.loss_mel) - self._mels(wav, self.loss_mel)).abs()
        return err.mean(dim=(1, 2))

    def compile(self) -> None:
        self.generator.forward = torch.compile(self.generator.forward)

    def export(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """A plain HiFi-GAN component folder (weight norm folded), loadable with load_vocoder(folder)."""
        plain = remove_weight_norm(copy.deepcopy(self.generator)).cpu().eval()
        return save_component(plain, folder, dtype=dtype)
