"""Training tasks: what is trained, on which features, with which loss, exported to what.

The trainer is task-agnostic; a :class:`Task` gives it

* ``modules``: the modules by name (saved in checkpoints; ``ema_modules`` are averaged and exported);
* ``ddp_modules``: what DDP wraps so every trained gradient is synchronised; for the diffusion
  tasks one ``objective`` module whose forward maps a batch to per-item losses (B,);
* ``optimizer_params`` and ``phase_loss``: one optimizer per phase of a step (one phase for
  diffusion; generator then discriminators for the vocoder GAN in :mod:`.vocoder`);
* the feature spec of its data, validation, audio samples and export to the release format.

Both diffusion tasks use the EDM loss (Karras et al. 2022, eq. 2) with every random draw of an item
(its noise level, its noise, whether its text is dropped for classifier-free guidance) taken from a
CPU generator seeded by the item's data position, so a batch split over processes, micro-batches
or a resume gives the same numbers as one process.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..audio.features import MelConfig, melody_planes, melody_template
from ..conditioning.base import Conditioning
from ..conditioning.text import TextConditioner
from ..config import Config
from ..diffusion import EDMDenoiser, EDMLoss, generators_from_seeds, loss_weight, randn_from_generators
from ..hub import load_component, load_config, resolve_pretrained
from ..models.unet_mel import UNetMel
from ..models.unet_wave import UNetWave
from ..models.vocoder import BUILTIN_VOCODERS, GriffinLim, load_vocoder
from ..pipelines import TextToAudioConfig, TextToAudioPipeline, WaveformConfig, WaveformPipeline
from ..pipelines.text_to_audio import DEFAULT_MODEL_DIR
from .config import DataConfig, DiffusionTaskConfig, VocoderTaskConfig, WaveformTaskConfig
from .data import FeatureSpec, derive_seed

# Validation evaluates every clip at these quantiles of the training sigma distribution, with
# fixed noise, so successive validation losses are comparable and not dominated by sigma draws.
VALID_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)


def edm_loss_per_item(denoiser: nn.Module, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                      cond: Conditioning | None, mask: torch.Tensor | None, sigma_data: float) -> torch.Tensor:
    """EDM loss of each item for given noise levels and noise (the per-item form of
    :class:`audiodiff.diffusion.EDMLoss`, whose draws come from one batch generator).

    x0, noise: (B, ...); sigma: (B,); mask: broadcastable to x0, 1 on real frames.
    Returns (B,) float32: lambda(sigma) * mean over real elements of (D(x0 + sigma n) - x0)^2.
    """
    sigma_b = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    denoised = denoiser(x0 + sigma_b * noise, sigma, cond)
    err = (denoised.float() - x0.float()).square()
    dims = tuple(range(1, x0.ndim))
    if mask is None:
        per_item = err.mean(dim=dims)
    else:
        mask = torch.broadcast_to(mask.to(err.dtype), err.shape)
        per_item = (err * mask).sum(dim=dims) / mask.sum(dim=dims).clamp_min(1.0)
    return loss_weight(sigma.float(), sigma_data) * per_item


def _keep_draws(generators: list[torch.Generator], drop_prob: float) -> torch.Tensor:
    """(B,) bool on the CPU: item i is kept unless its own generator's draw falls below
    ``drop_prob`` (reproducible per item; the caller applies it in one batched op, since a
    per-item loop costs ~10 launches per item on a GPU)."""
    return torch.cat([torch.rand(1, generator=g) >= drop_prob for g in generators])


class DiffusionObjective(nn.Module):
    """forward(batch, sigma=None) -> (B,) EDM losses of a text-conditioned denoising network.

    batch: x (B, C, ...) clean features, mask (B, N) over the last axis, tokens / token_mask /
    pooled text embeddings, optional frames (B, 12, N), noise_seeds (list of B ints).
    In training mode each item's text is replaced by the learned null condition with probability
    ``cfg_dropout``, its frames by zeros with probability ``frame_dropout`` and, for a network
    with a timing input, its sound length (batch["sound_frames"]) by "not said" with probability
    ``timing_dropout``. For a UNetMel the
    frames are laid over the mel axis as ``melody_layout`` says (``MELODY_LAYOUTS``).
    """

    def __init__(self, net: nn.Module, text: TextConditioner, loss: EDMLoss,
                 cfg_dropout: float, frame_dropout: float = 0.0, melody_layout: str = "broadcast",
                 mel: MelConfig | None = None, timing_dropout: float = 0.0):
        super().__init__()
        self.melody_layout = melody_layout
        # A buffer, so it moves with the module: no host-to-device copy per training step.
        self.register_buffer("melody_template", melody_template(mel or MelConfig(), melody_layout), persistent=False)
        self.net = net
        self.text = text
        self.denoiser = EDMDenoiser(net, sigma_data=loss.sigma_data)
        self.loss = loss
        self.cfg_dropout = cfg_dropout
        self.frame_dropout = frame_dropout
        self.timing_dropout = timing_dropout

    def forward(self, batch: dict, sigma: torch.Tensor | None = None) -> torch.Tensor:
        x0 = batch["x"]
        generators = generators_from_seeds(batch["noise_seeds"])
        if sigma is None:
            sigma = torch.cat([self.loss.sample_sigma(1, "cpu", g) for g in generators])
        sigma = sigma.to(x0.device)
        if x0.device.type == "cuda":
            # One draw on the GPU, seeded by the batch's first seed: per-item CPU draws would
            # cost more than the whole training step of a small UNet at batch 128.
            g = torch.Generator(device=x0.device).manual_seed(int(batch["noise_seeds"][0]))
            noise = torch.randn(x0.shape, generator=g, device=x0.device, dtype=x0.dtype)
        else:
            noise = randn_from_generators(x0.shape[1:], generators, device=x0.device, dtype=x0.dtype)
        cond = Conditioning(tokens=batch.get("tokens"), token_mask=batch.get("token_mask"),
                            pooled=batch.get("pooled"))
        frames = batch.get("frames")
        cond = cond.for_network(self.net.config)
        if self.training and self.cfg_dropout > 0 and cond.pooled is not None:
            cond = self.text.keep_items(cond, _keep_draws(generators, self.cfg_dropout))
        if frames is not None:
            if self.training and self.frame_dropout > 0:
                keep = _keep_draws(generators, self.frame_dropout)
                frames = frames * keep.to(frames.device, frames.dtype)[:, None, None]
            if x0.ndim == 4:  # (B, 12, N) -> (B, 12, n_mels, N), the UNetMel layout
                frames = melody_planes(frames, x0.shape[2], self.melody_layout, self.melody_template)
            cond.frames = frames
        if getattr(self.net.config, "timing_channels", 0):
            sound_frames = batch["sound_frames"].float()
            if self.training and self.timing_dropout > 0:
                said = _keep_draws(generators, self.timing_dropout)
                sound_frames = torch.where(said.to(sound_frames.device), sound_frames, -1.0)
            cond.sound_frames = sound_frames
        mask = batch["mask"].reshape(x0.shape[0], *([1] * (x0.ndim - 2)), -1)
        return edm_loss_per_item(self.denoiser, x0, sigma, noise, cond, mask, self.loss.sigma_data)


def sigma_quantiles(loss: EDMLoss, quantiles=VALID_QUANTILES) -> torch.Tensor:
    """Noise levels at the given quantiles of the lognormal training distribution."""
    q = torch.tensor(quantiles, dtype=torch.float64)
    return torch.exp(loss.p_mean + loss.p_std * torch.special.ndtri(q)).float()


class Task:
    """Base class: see the module docstring. Subclasses set config, modules and objective."""

    config: Config
    modules: dict[str, nn.Module]
    objective: nn.Module

    @property
    def ema_modules(self) -> dict[str, nn.Module]:
        """The modules whose weights are averaged (and exported)."""
        return self.modules

    def ddp_modules(self) -> dict[str, nn.Module]:
        """Modules the trainer wraps in DDP (each parameter in exactly one); ``phase_loss`` gets
        the wrapped versions."""
        return {"objective": self.objective}

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        """Trained parameters per optimizer, in the order the phases of a step run."""
        return {"model": [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]}

    def phase_loss(self, phase: str, wrapped: dict[str, nn.Module], batch: dict) -> torch.Tensor | dict:
        """The loss of one phase on one micro-batch: a tensor (per item or scalar), or a dict with
        "loss" and extra scalars to log."""
        return wrapped["objective"](batch)

    def begin_step(self, step: int) -> None:
        """Called before each optimizer step with the number of steps done (for step-dependent losses)."""

    def set_training(self, mode: bool) -> None:
        for module in (*self.modules.values(), *self.ddp_modules().values()):
            module.train(mode)

    def feature_spec(self, data: DataConfig) -> FeatureSpec:
        raise NotImplementedError

    @property
    def text_config(self):
        return None

    @classmethod
    def resolve_init(cls, config: Config, init_from: str) -> Config:
        """``config`` with its component configs taken from a pretrained folder (fine-tuning)."""
        raise NotImplementedError

    def load_init(self, init_from: str) -> None:
        """Load pretrained weights (fine-tuning) into ``modules``."""
        raise NotImplementedError

    def prepare(self, batch: dict, seed: int, device: torch.device) -> dict:
        """Move a collated batch to ``device`` and add per-item noise seeds (from positions)."""
        out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
               for k, v in batch.items()}
        out["noise_seeds"] = [derive_seed(seed, "noise", int(p)) for p in batch["positions"]]
        return out

    @torch.no_grad()
    def validation_loss(self, batch: dict, seed: int) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def samples(self, seed: int) -> list[tuple[str, torch.Tensor, int]]:
        """Audio samples [(name, wav (C, T), sample_rate)] with the current weights."""
        return []

    def export(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        raise NotImplementedError

    def compile(self) -> None:
        """Compile the network for training (the saved and exported modules stay uncompiled)."""
        self.objective.denoiser.net = torch.compile(self.objective.net)


class _TextDiffusionTask(Task):
    """Shared by the mel and waveform diffusion tasks."""

    def _build(self, net: nn.Module, frame_dropout: float = 0.0, melody_layout: str = "broadcast",
               mel: MelConfig | None = None, timing_dropout: float = 0.0) -> None:
        c = self.config
        self.text = TextConditioner(c.text)
        self.net = net
        self.modules = {"unet": self.net, "text": self.text}
        self.loss = EDMLoss.from_config(c.pipeline.schedule)
        self.objective = DiffusionObjective(self.net, self.text, self.loss, c.cfg_dropout, frame_dropout,
                                            melody_layout, mel, timing_dropout)
        if c.cfg_dropout == 0:  # the null condition is never used: keep it out of DDP and the optimizer
            self.text.requires_grad_(False)

    @property
    def text_config(self):
        return self.config.text

    def pipeline(self):
        """The inference pipeline over the live modules (used for samples and export)."""
        raise NotImplementedError

    def prepare(self, batch: dict, seed: int, device: torch.device) -> dict:
        out = super().prepare(batch, seed, device)
        if self.net.config.text_dim == 0:  # an unconditional or pooled-only network
            out.pop("tokens", None), out.pop("token_mask", None)
        if self.net.config.pooled_dim == 0:
            out.pop("pooled", None)
        return out

    @torch.no_grad()
    def samples(self, seed: int) -> list[tuple[str, torch.Tensor, int]]:
        c = self.config
        duration = min(max(c.sample_duration_s, c.pipeline.min_duration_s), c.pipeline.max_duration_s)
        out = self.pipeline()(list(c.sample_prompts), duration_s=duration, num_steps=c.sample_steps, seed=seed)
        return [(_slug(p), out.waveforms[i], out.sample_rate) for i, p in enumerate(out.prompts)]

    def export(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the release folder of the pipeline (call with the EMA weights loaded)."""
        return self.pipeline().save_pretrained(folder, dtype=dtype)

    @torch.no_grad()
    def validation_loss(self, batch: dict, seed: int) -> torch.Tensor:
        """(B,) loss averaged over fixed sigma quantiles with fixed per-item noise."""
        total = 0.0
        positions = [int(p) for p in batch["positions"]]
        sigmas = sigma_quantiles(self.loss)
        compiled, self.objective.denoiser.net = self.objective.denoiser.net, self.net  # eager for eval
        try:
            for k, sigma in enumerate(sigmas):
                b = dict(batch, noise_seeds=[derive_seed(seed, "valid-noise", p, k) for p in positions])
                total = total + self.objective(b, sigma=sigma.expand(len(positions)))
        finally:
            self.objective.denoiser.net = compiled
        return total / len(sigmas)

    def load_init(self, init_from: str) -> None:
        folder = _init_folder(init_from)
        for name, module in self.modules.items():
            pretrained = load_component(folder / name)
            module.load_state_dict(pretrained.state_dict(), strict=True)


def _init_folder(init_from: str) -> Path:
    folder = DEFAULT_MODEL_DIR if init_from == "default" else resolve_pretrained(init_from)
    if not (folder / "pipeline.json").is_file():
        raise FileNotFoundError(f"init_from={init_from!r}: {folder} is not a pipeline folder (no pipeline.json)")
    return folder


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "sample"


class DiffusionTask(_TextDiffusionTask):
    """UNetMel over normalised log-mels, text (+ optional chroma frames); exports a
    :class:`TextToAudioPipeline` folder."""

    def __init__(self, config: DiffusionTaskConfig):
        self.config = config
        self._build(UNetMel(config.unet), config.frame_dropout, config.pipeline.melody_layout, config.pipeline.mel,
                    config.timing_dropout)
        self._vocoder: nn.Module | None = None

    def feature_spec(self, data: DataConfig) -> FeatureSpec:
        mel = self.config.pipeline.mel
        return FeatureSpec("mel", mel.sample_rate, mel.num_frames(data.crop_s), mel,
                           chroma=self.config.frame_condition == "chroma")

    @classmethod
    def resolve_init(cls, config: DiffusionTaskConfig, init_from: str) -> DiffusionTaskConfig:
        folder = _init_folder(init_from)
        pipeline = TextToAudioConfig.load(folder / "pipeline.json")
        if not config.init_vocoder:
            if config.pipeline.vocoder not in BUILTIN_VOCODERS:
                raise ValueError(f"task.init_vocoder = false keeps task.pipeline.vocoder, which must then be one of "
                                 f"{BUILTIN_VOCODERS} (exported by name), got {config.pipeline.vocoder!r}")
            pipeline = pipeline.replace(vocoder=config.pipeline.vocoder)
        elif pipeline.vocoder not in BUILTIN_VOCODERS:  # a vocoder stored in the pipeline folder
            pipeline = pipeline.replace(vocoder=str((folder / pipeline.vocoder).resolve()))
        unet = load_config(folder / "unet")
        # The condition follows the architecture: a model with a melody input (the bundled one)
        # keeps training it, on the chroma of the new clips, unless the config names one itself.
        frame_condition = config.frame_condition or ("chroma" if unet.cond_channels == 12 else "")
        return config.replace(unet=unet, text=load_config(folder / "text"), pipeline=pipeline,
                              frame_condition=frame_condition)

    def vocoder(self) -> nn.Module:
        if self._vocoder is None:
            self._vocoder = load_vocoder(self.config.pipeline.vocoder, mel_config=self.config.pipeline.mel)
        return self._vocoder

    def export(self, folder, dtype: torch.dtype | None = None):
        """A packaged vocoder is saved by name only, so exporting never needs its weights (a
        training machine may not have them installed)."""
        if self.config.pipeline.vocoder in BUILTIN_VOCODERS:
            pipe = TextToAudioPipeline(self.net, self.text, GriffinLim(self.config.pipeline.mel), self.config.pipeline)
            return pipe.save_pretrained(folder, dtype=dtype)
        return super().export(folder, dtype=dtype)

    def pipeline(self) -> TextToAudioPipeline:
        return TextToAudioPipeline(self.net, self.text, self.vocoder(), self.config.pipeline)


class WaveformTask(_TextDiffusionTask):
    """UNetWave over raw waveforms with text; exports a :class:`WaveformPipeline` folder."""

    def __init__(self, config: WaveformTaskConfig):
        self.config = config
        self._build(UNetWave(config.unet))

    def feature_spec(self, data: DataConfig) -> FeatureSpec:
        sr = self.config.pipeline.sample_rate
        return FeatureSpec("wave", sr, max(1, round(data.crop_s * sr)))

    @classmethod
    def resolve_init(cls, config: WaveformTaskConfig, init_from: str) -> WaveformTaskConfig:
        folder = _init_folder(init_from)
        return config.replace(unet=load_config(folder / "unet"), text=load_config(folder / "text"),
                                   pipeline=WaveformConfig.load(folder / "pipeline.json"))

    def pipeline(self) -> WaveformPipeline:
        return WaveformPipeline(self.net, self.text, self.config.pipeline)


TASK_CLASSES: dict[type[Config], type[Task]] = {
    DiffusionTaskConfig: DiffusionTask,
    WaveformTaskConfig: WaveformTask,
}


def task_class(config: Config) -> type[Task]:
    if isinstance(config, VocoderTaskConfig):
        from .vocoder import VocoderTask  # imports this module

        return VocoderTask
    try:
        return TASK_CLASSES[type(config)]
    except KeyError:
        raise ValueError(f"no training task for {type(config).__name__}") from None


def build_task(config: Config) -> Task:
    """The task for a task config section."""
    return task_class(config)(config)

