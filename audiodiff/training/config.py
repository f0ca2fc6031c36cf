"""TrainConfig: one frozen dataclass for a training run, read from JSON or TOML.

A run is described by a file such as ``configs/tiny_cpu.json``; any value can be overridden on
the command line with ``--set key=value`` (dotted keys for nested sections, values parsed as JSON
and otherwise taken as strings: ``--set optim.lr=3e-4 --set task.text.encoder=hash``). Every key
is checked against the dataclasses before anything is built: an unknown key or a value of the
wrong type is an error naming the dotted key, never a silently ignored setting.

The ``task`` section says what is trained; its ``type`` picks the task ("text_to_audio",
"waveform", "vocoder"; the class names ``DiffusionTaskConfig`` / ``WaveformTaskConfig`` also work) and it
holds the component configs (UNet, text conditioner, pipeline settings; or a HiFi-GAN
generator and its discriminators for "vocoder"), so one file fully
describes both the model and how to train it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import tomllib

from ..audio.features import MelConfig
from ..conditioning.text import TextConditionerConfig
from ..config import Config, ConfigError, check, config_class, register_config
from ..models.unet_mel import UNetMelConfig
from ..models.unet_wave import UNetWaveConfig
from ..models.vocoder import HiFiGANConfig
from ..pipelines import TextToAudioConfig, WaveformConfig

PRECISIONS = ("auto", "fp32", "bf16")
LR_DECAYS = ("cosine", "constant")
FRAME_CONDITIONS = ("", "chroma")


@register_config
@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Where the clips come from and how they are cut."""

    # A manifest JSONL (audiodiff.data.manifest) or a folder of audio + captions; exactly one.
    manifest: str = ""
    folder: str = ""
    # Or a mel feature cache / compact export folder (audiodiff.data.feature_cache): whole-clip
    # normalised mels and captions, no audio decoding (text_to_audio only; its MelConfig must match).
    features: str = ""
    train_split: str = "train"
    valid_split: str = "valid"
    # Folder only: fraction of files (by a hash of their path) held out for validation.
    valid_fraction: float = 0.05
    # Length of the random training crops; shorter clips are padded with silence.
    crop_s: float = 5.0
    # True: the padding is masked out of the loss, so the model never learns where a sound ends and
    # fills a generated clip with sound. False: the padding is learned as silence, so a short effect
    # ends and falls silent (as AudioLDM-style training on zero-padded clips does).
    mask_padding: bool = True
    # Normalised mels of whole clips are kept on disk here (fp16 safetensors); "" = memory only.
    cache_dir: str = ""
    # Whole clips kept in memory per data worker (LRU); 0 = reload every time.
    memory_cache_clips: int = 2048
    num_workers: int = 0
    # Precomputed caption embeddings (audiodiff.training.data.build_text_cache), used instead of
    # running the text encoder: for machines without its weights; "" = encode on the fly.
    text_cache: str = ""
    # Validation uses the first clips of the valid split (fixed crops, fixed noise, fixed sigmas).
    max_valid_clips: int = 64

    def __post_init__(self) -> None:
        check(self.crop_s > 0, f"data.crop_s must be > 0, got {self.crop_s}")
        check(0 <= self.valid_fraction < 1, f"data.valid_fraction must be in [0, 1), got {self.valid_fraction}")
        check(self.memory_cache_clips >= 0, "data.memory_cache_clips must be >= 0")
        check(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        check(self.max_valid_clips >= 0, "data.max_valid_clips must be >= 0")


@register_config
@dataclasses.dataclass(frozen=True)
class OptimConfig(Config):
    """AdamW, LR warm-up and decay, gradient clipping and the EMA of the weights."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    # Decoupled weight decay on weight matrices / conv kernels only (not biases, norms, embeddings).
    weight_decay: float = 0.0
    # Linear warm-up from 0, then "cosine" decay to min_lr_ratio * lr at the last step, or "constant".
    warmup_steps: int = 500
    decay: str = "cosine"
    min_lr_ratio: float = 0.1
    # Length of the decay: "steps" (the run's `steps`) or "time": for time-budgeted runs
    # (max_minutes), the trainer measures its step rate (over the last ~500 steps, again every 100
    # steps) and ends the decay when the budget ends (at most `steps`), so a short GPU run finishes
    # at a low LR and a slow spell early on does not end the decay early. A resumed run continues
    # its decay from where it stopped and fits the rest to its new max_minutes (one that had
    # finished stays near the floor: to train on from a higher LR, start a new run with init_from).
    horizon: str = "steps"
    # Clip the global gradient norm to this; 0 = no clipping (the norm is still logged).
    grad_clip: float = 1.0
    # EMA of the weights (what export ships). The decay ramps up as 1 - (1 + step)^-ema_power
    # (k-diffusion's EMA warm-up) and is capped at ema_decay, so early weights are forgotten
    # quickly; ema_power = 1 is the plain running mean 1 - 1/(step + 1).
    ema_decay: float = 0.999
    ema_power: float = 0.75

    def __post_init__(self) -> None:
        check(self.lr > 0 and math.isfinite(self.lr), f"optim.lr must be a positive number, got {self.lr}")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
              f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        check(self.eps > 0, f"optim.eps must be > 0, got {self.eps}")
        check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        check(self.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.decay in LR_DECAYS, f"optim.decay must be one of {LR_DECAYS}, got {self.decay!r}")
        check(self.horizon in ("steps", "time"), f"optim.horizon must be 'steps' or 'time', got {self.horizon!r}")
        check(0 <= self.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        check(self.grad_clip >= 0, f"optim.grad_clip must be >= 0, got {self.grad_clip}")
        check(0 <= self.ema_decay < 1, f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        check(self.ema_power > 0, f"optim.ema_power must be > 0, got {self.ema_power}")


@register_config
@dataclasses.dataclass(frozen=True)
class DiffusionTaskConfig(Config):
    """Text-to-audio over mels: UNetMel + text conditioner, EDM loss, exported as a
    :class:`~audiodiff.pipelines.TextToAudioPipeline` folder."""

    unet: UNetMelConfig = dataclasses.field(default_factory=UNetMelConfig)
    text: TextConditionerConfig = dataclasses.field(default_factory=TextConditionerConfig)
    # Mel definition, noise schedule (sigma_data, p_mean, p_std), vocoder and sampling defaults.
    pipeline: TextToAudioConfig = dataclasses.field(default_factory=TextToAudioConfig)
    # Probability of replacing an item's text by the learned null condition, which trains the
    # unconditional branch of classifier-free guidance (Ho & Salimans 2022 use 0.1-0.2).
    cfg_dropout: float = 0.1
    # Frame-aligned condition computed from each clip: "" (none) or "chroma" (12 channels, laid
    # over the mel axis as pipeline.melody_layout says; needs unet.cond_channels = 12). Dropped
    # to zeros ("absent") with probability frame_dropout.
    frame_condition: str = ""
    frame_dropout: float = 0.3
    # With unet.timing_channels = 1: the probability that an item's sound length is not said
    # (its timing plane is zeros), so the model also generates when the user gives none.
    timing_dropout: float = 0.3
    # With init_from: take its vocoder too (true), or keep pipeline.vocoder, a builtin name that
    # the export records without needing weights (false): for a machine that gets the denoiser to
    # fine-tune but not the vocoder's weights (scripts/gpu_train.py's unpublish(vocoder_from=...)
    # puts a folder's vocoder back into the exported model).
    init_vocoder: bool = True
    # Audio samples written every `sample_every` steps with the EMA weights.
    sample_prompts: tuple[str, ...] = ("heavy rain on a tin roof", "a dog barking", "a church organ chord")
    sample_duration_s: float = 4.0
    sample_steps: int = 25

    def __post_init__(self) -> None:
        check(self.unet.n_mels == self.pipeline.mel.n_mels,
              f"task.unet.n_mels ({self.unet.n_mels}) must equal task.pipeline.mel.n_mels "
              f"({self.pipeline.mel.n_mels})")
        check(self.unet.text_dim in (0, self.text.dim),
              f"task.unet.text_dim ({self.unet.text_dim}) must equal task.text.dim ({self.text.dim})")
        check(self.unet.pooled_dim in (0, self.text.dim),
              f"task.unet.pooled_dim ({self.unet.pooled_dim}) must equal task.text.dim ({self.text.dim})")
        check(0 <= self.cfg_dropout <= 1, f"task.cfg_dropout must be in [0, 1], got {self.cfg_dropout}")
        check(0 <= self.frame_dropout <= 1, f"task.frame_dropout must be in [0, 1], got {self.frame_dropout}")
        check(0 <= self.timing_dropout <= 1, f"task.timing_dropout must be in [0, 1], got {self.timing_dropout}")
        check(self.frame_condition in FRAME_CONDITIONS,
              f"task.frame_condition must be one of {FRAME_CONDITIONS}, got {self.frame_condition!r}")
        needed = 12 if self.frame_condition == "chroma" else 0
        check(self.unet.cond_channels == needed,
              f"task.frame_condition={self.frame_condition!r} needs task.unet.cond_channels={needed}, "
              f"got {self.unet.cond_channels}")
        check(self.sample_duration_s > 0 and self.sample_steps >= 1,
              "task.sample_duration_s and sample_steps must be positive")

    @property
    def mel(self) -> MelConfig:
        return self.pipeline.mel


@register_config
@dataclasses.dataclass(frozen=True)
class WaveformTaskConfig(Config):
    """Text-to-waveform: UNetWave + text conditioner, exported as a WaveformPipeline folder."""

    unet: UNetWaveConfig = dataclasses.field(default_factory=UNetWaveConfig)
    text: TextConditionerConfig = dataclasses.field(default_factory=TextConditionerConfig)
    pipeline: WaveformConfig = dataclasses.field(default_factory=WaveformConfig)
    cfg_dropout: float = 0.1
    sample_prompts: tuple[str, ...] = ("a short beep", "a door knock")
    sample_duration_s: float = 1.0
    sample_steps: int = 25

    def __post_init__(self) -> None:
        check(self.unet.text_dim in (0, self.text.dim),
              f"task.unet.text_dim ({self.unet.text_dim}) must equal task.text.dim ({self.text.dim})")
        check(self.unet.pooled_dim in (0, self.text.dim),
              f"task.unet.pooled_dim ({self.unet.pooled_dim}) must equal task.text.dim ({self.text.dim})")
        check(self.unet.cond_channels == 0,
              "the waveform task has no frame conditions: task.unet.cond_channels must be 0")
        check(0 <= self.cfg_dropout <= 1, f"task.cfg_dropout must be in [0, 1], got {self.cfg_dropout}")
        check(self.sample_duration_s > 0 and self.sample_steps >= 1,
              "task.sample_duration_s and sample_steps must be positive")


@register_config
@dataclasses.dataclass(frozen=True)
class VocoderTaskConfig(Config):
    """HiFi-GAN generator trained adversarially (Kong et al. 2020) against a multi-period
    discriminator (HiFi-GAN) and a multi-resolution spectrogram discriminator (UnivNet, Jang et
    al. 2021), with LSGAN, feature-matching and mel L1 losses; exported as a vocoder folder.
    Fine-tune the packaged one with ``init_from = "hifigan-universal"``. Training crops
    (data.crop_s) are rounded down to whole mel frames; HiFi-GAN used 8192 samples (0.37 s)."""

    generator: HiFiGANConfig = dataclasses.field(default_factory=HiFiGANConfig)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    # (n_fft, hop_length, win_length) of each spectrogram discriminator.
    mrd_resolutions: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    mrd_channels: int = 32
    # Loss weights of HiFi-GAN: 45 x mel L1, 2 x feature matching, 1 x adversarial.
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    # Multi-resolution STFT loss (Parallel WaveGAN): stft_weight x (spectral convergence + log-magnitude
    # L1), averaged over stft_resolutions (n_fft, hop_length, win_length). 0 = off (HiFi-GAN's recipe).
    stft_weight: float = 0.0
    stft_resolutions: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    # Weight normalisation of the generator's convs during training (as HiFi-GAN was trained);
    # folded back into plain weights at export.
    weight_norm: bool = True
    # For this many first steps the generator learns from the mel loss only while the fresh
    # discriminators learn to score: a random discriminator's gradients would wreck a pretrained
    # generator (measured: the mel L1 of the universal HiFi-GAN went 0.26 -> 1.1 in 2 steps).
    disc_warmup_steps: int = 0
    # False: no discriminators at all; the generator learns from the mel loss alone (fm_weight and
    # disc_warmup_steps unused). No discriminator runs forward or backward, which makes a short
    # fine-tune of a pretrained generator affordable on a CPU (configs/vocoder_cpu.toml: ~4 s a
    # step at batch 4 on 2 cores, where a GAN step took ~24 s on 1).
    adversarial: bool = True

    def __post_init__(self) -> None:
        check(len(self.mpd_periods) > 0 and all(p >= 2 for p in self.mpd_periods),
              f"task.mpd_periods must be integers >= 2, got {self.mpd_periods}")
        check(len(self.mpd_channels) >= 1 and all(c > 0 for c in self.mpd_channels),
              f"task.mpd_channels must be positive, got {self.mpd_channels}")
        _check_resolutions("mrd_resolutions", self.mrd_resolutions)
        check(self.mrd_channels > 0, f"task.mrd_channels must be > 0, got {self.mrd_channels}")
        check(self.mel_weight >= 0 and self.fm_weight >= 0 and self.stft_weight >= 0,
              "task.mel_weight, fm_weight and stft_weight must be >= 0")
        _check_resolutions("stft_resolutions", self.stft_resolutions)
        check(self.disc_warmup_steps >= 0, f"task.disc_warmup_steps must be >= 0, got {self.disc_warmup_steps}")


def _check_resolutions(name: str, resolutions: tuple) -> None:
    check(len(resolutions) > 0 and all(len(r) == 3 and 0 < r[2] <= r[0] and r[1] > 0 for r in resolutions),
          f"task.{name} must be a non-empty list of (n_fft, hop_length, win_length) with "
          f"0 < win_length <= n_fft and hop_length > 0, got {resolutions}")


# Short names for the task section's "type" (the class names work too).
TASK_TYPES: dict[str, str] = {"text_to_audio": "DiffusionTaskConfig", "waveform": "WaveformTaskConfig",
                              "vocoder": "VocoderTaskConfig"}


@register_config
@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Everything about one training run. ``batch_size`` is the global batch per optimizer step,
    so the same file trains the same model on 1 CPU, 1 GPU or N GPUs (micro-batch per process =
    batch_size / (grad_accum * world_size))."""

    task: Config = dataclasses.field(default_factory=DiffusionTaskConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    # Checkpoints, logs, samples and the resolved config go here; an existing run is resumed.
    run_dir: str = "runs/default"
    # A pipeline folder to start from (fine-tuning); its component configs replace the task's.
    # "default" is the model bundled with audiodiff. "" trains from scratch.
    init_from: str = ""
    seed: int = 0
    steps: int = 100_000
    batch_size: int = 16
    grad_accum: int = 1
    # "auto" = bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), fp32 on
    # other CPUs, where bf16 is emulated and slow.
    precision: str = "auto"
    compile: bool = False
    device: str = "auto"
    # Stop cleanly (checkpoint, then exit) after this many minutes of training; 0 = no budget.
    max_minutes: float = 0.0
    # Stop cleanly after this step, as if interrupted (the LR schedule still follows `steps`).
    stop_at_step: int = 0
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 20.0
    keep_checkpoints: int = 3
    log_every: int = 10
    valid_every: int = 1000
    sample_every: int = 5000
    # NaN / inf loss or gradient: the step is skipped and the LR halved; this many in a row stop the run.
    max_nan_steps: int = 5
    progress: bool = True

    def __post_init__(self) -> None:
        check(type(self.task).__name__ in TASK_TYPES.values(),
              f"task.type must be one of {sorted(TASK_TYPES)}, got {type(self.task).__name__}")
        check(bool(self.run_dir), "run_dir must not be empty")
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints",
                     "log_every", "valid_every", "sample_every", "max_nan_steps"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.stop_at_step >= 0, f"stop_at_step must be >= 0, got {self.stop_at_step}")
        check(self.max_minutes >= 0 and self.checkpoint_minutes >= 0, "max_minutes and checkpoint_minutes must be >= 0")
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")


# -- loading with strict type checks and overrides ----------------------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _check_value(tp: Any, value: Any, where: str) -> None:
    """Raise ConfigError unless ``value`` (parsed JSON) fits the annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_value(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (an object), got {value!r}")
        check_config_dict(tp, value, where)
        return
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(args[0], v) for v in value]
        else:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
            items = list(zip(args, value))
        for i, (arg, v) in enumerate(items):
            _check_value(arg, v, f"{where}[{i}]")
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }.get(tp)
    if ok is not None and not ok(value):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _section_class(base: type[Config], data: dict, where: str) -> type[Config]:
    name = data.get("type")
    if name is None:
        return DiffusionTaskConfig if base is Config else base
    if not isinstance(name, str):
        raise ConfigError(f"{where}.type: expected a name, got {name!r}")
    cls = config_class(TASK_TYPES.get(name, name))
    if not issubclass(cls, base):
        raise ConfigError(f"{where}.type: {name} is not a {base.__name__}")
    return cls


def check_config_dict(cls: type[Config], data: dict, where: str = "config") -> None:
    """Check every key and value type of a parsed config section, recursively, before building."""
    cls = _section_class(cls, data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields - {"type", "format_version"})
    if unknown:
        keys = ", ".join(f"{where}.{k}" for k in unknown)
        raise ConfigError(f"unknown config key(s) {keys}; {where} accepts: {', '.join(sorted(fields))}")
    for key, value in data.items():
        if key in fields:
            tp = hints[key]
            if tp is Config:  # the polymorphic task section
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}.{key}: expected a section (an object), got {value!r}")
                check_config_dict(Config, value, f"{where}.{key}")
            else:
                _check_value(tp, value, f"{where}.{key}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], value parsed as JSON, else the raw string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (dotted keys for sections), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return [k.strip() for k in key.split(".")], value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to a raw config dict (a copy is returned)."""
    data = json.loads(json.dumps(data))
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {'.'.join(keys[:i + 1])} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return data


def _normalise_task_type(data: dict) -> dict:
    task = data.get("task")
    if isinstance(task, dict):
        name = task.get("type", "text_to_audio")
        task["type"] = TASK_TYPES.get(name, name)
    return data


def read_config_file(path: str | os.PathLike) -> dict:
    """Parse a .json or .toml config file into a dict (no checks yet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ConfigError(f"{path} is not valid {kind}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold an object at the top level")
    return data


def train_config_from_dict(data: dict, overrides: list[str] | None = None,
                           default_task: str | None = None) -> TrainConfig:
    """Build a TrainConfig from a raw dict plus ``--set`` overrides, checking keys and types.

    default_task: the task type when neither the dict nor the overrides name one.
    """
    data = apply_overrides(data, overrides or [])
    if default_task is not None:
        task = data.setdefault("task", {})
        if isinstance(task, dict):
            task.setdefault("type", default_task)
    data = _normalise_task_type(data)
    data.pop("type", None)
    check_config_dict(TrainConfig, data, "config")
    try:
        return TrainConfig.from_dict(data)
    except TypeError as err:  # a constructor rejected a value the type check let through
        raise ConfigError(f"invalid config: {err}") from None


def load_train_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                      default_task: str | None = None) -> TrainConfig:
    """Read a config file (.json or .toml; None = all defaults) and apply ``--set`` overrides."""
    data = read_config_file(path) if path is not None else {}
    return train_config_from_dict(data, overrides, default_task)


def config_diff(a: Config | dict, b: Config | dict, where: str = "") -> list[str]:
    """Dotted keys on which two configs (or their dicts) differ, with both values."""
    da = a.to_dict() if isinstance(a, Config) else a
    db = b.to_dict() if isinstance(b, Config) else b
    out = []
    for key in sorted(set(da) | set(db)):
        if key == "format_version":
            continue
        va, vb = da.get(key), db.get(key)
        name = f"{where}.{key}" if where else key
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, name)
        elif va != vb:
            out.append(f"{name}: {va!r} != {vb!r}")
    return out
