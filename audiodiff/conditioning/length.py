"""How long should the sound be? A prediction from the prompt, for models with a timing input.

A model with a timing input (``UNetMel`` with ``timing_channels = 1``) makes a sound that lasts
as long as it is told. Left untold it guesses from the noise and often gets it wrong: "a single
beep" fills a 5 s clip. ``SoundLengthHead`` reads the prompt's pooled sentence embedding and
predicts the seconds of sound a clip with that caption had in training: a ridge regression of
log seconds, fitted in closed form (:func:`fit_sound_length`) on the captions and durations of
the training clips. Stable Audio asks the user for the seconds instead; this is the default a
user gets without asking, and any ``sound_s`` they give still wins.

The pipeline keeps the head in its ``sound_length/`` folder (385 weights); it is optional.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..config import Config, check, register_config
from ..hub import register_model


@register_config
@dataclasses.dataclass(frozen=True)
class SoundLengthConfig(Config):
    """A linear map of the pooled text embedding to log seconds, clamped to [min_s, max_s]."""

    dim: int = 384
    min_s: float = 0.1
    # Training durations are clipped here; a prediction at max_s means "a long sound".
    max_s: float = 10.0
    # Predictions at or above fill_s fill the clip (None: none do). Set it to the training crop of
    # the model's timing input: the model never saw a sound end later than its crop, and the
    # regression, fitted in log seconds on clips cut to a few seconds, puts long sounds (rain,
    # music) just above the crop rather than at their true lengths.
    fill_s: float | None = None
    # Predictions are exp(linear) * scale. The regression of log seconds predicts the median
    # length of clips with such a caption; fit_sound_length sets scale = exp(var / 2), var the
    # variance of its training residuals, which makes it the mean of that log-normal spread
    # (the median cut long sounds, music and ambiences, short).
    scale: float = 1.0

    def __post_init__(self):
        check(self.dim >= 1, "SoundLengthConfig.dim must be >= 1")
        check(0 < self.min_s < self.max_s, "SoundLengthConfig needs 0 < min_s < max_s")
        check(self.fill_s is None or self.fill_s > 0, "SoundLengthConfig.fill_s must be > 0 or None")
        check(self.scale > 0, "SoundLengthConfig.scale must be > 0")


@register_model(SoundLengthConfig)
class SoundLengthHead(nn.Module):
    """Pooled text embeddings (B, dim) -> predicted seconds of sound (B,)."""

    def __init__(self, config: SoundLengthConfig | None = None):
        super().__init__()
        self.config = config = config or SoundLengthConfig()
        self.proj = nn.Linear(config.dim, 1)
        # Unfitted: 1 s for every prompt.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if pooled.ndim != 2 or pooled.shape[1] != self.config.dim:
            raise ValueError(f"SoundLengthHead takes pooled text embeddings (B, {self.config.dim}), "
                             f"got {tuple(pooled.shape)}")
        log_s = self.proj(pooled.to(self.proj.weight)).squeeze(-1)
        return (log_s.float().exp() * self.config.scale).clamp(self.config.min_s, self.config.max_s)

    @torch.no_grad()
    def seconds(self, pooled: torch.Tensor, duration_s: float) -> list[float]:
        """What to tell the timing input for clips of ``duration_s``: the prediction rounded to
        10 ms, or ``duration_s`` (sound throughout) when it reaches ``fill_s`` or the clip's end."""
        out = []
        for s in self(pooled.detach().float().cpu()).tolist():
            fills = s >= duration_s or (self.config.fill_s is not None and s >= self.config.fill_s)
            out.append(float(duration_s) if fills else max(round(s, 2), 0.01))
        return out


def ridge_fit(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, ridge: float) -> tuple[torch.Tensor, float]:
    """Weighted ridge regression with an unpenalised intercept, in float64:
    argmin_w,b sum_i weights_i (x_i w + b - y_i)^2 + ridge |w|^2 (ridge 0: the least-norm
    minimiser, also when there are fewer samples than features). Returns (w (D,), b)."""
    x, y, weights = x.double(), y.double(), weights.double()
    share = weights / weights.sum()
    x_mean, y_mean = share @ x, share @ y
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ (weights[:, None] * xc) + ridge * torch.eye(x.shape[1], dtype=torch.float64)
    rhs = xc.T @ (weights * yc)
    if ridge > 0:  # positive definite
        w = torch.linalg.solve(gram, rhs)
    else:  # may be singular (fewer samples than features): the least-norm solution
        w = torch.linalg.lstsq(gram, rhs[:, None], driver="gelsd").solution[:, 0]
    return w, float(y_mean - x_mean @ w)


@dataclasses.dataclass(frozen=True)
class LengthFitReport:
    """What :func:`fit_sound_length` measured on the clips of ``valid_split`` (every caption of
    every clip, each clip weighted equally): mean |log predicted - log true| and mean |seconds|
    with both sides capped at ``cap_s``, for the head and for the constant median of training."""

    train_clips: int
    valid_clips: int
    captions: int
    mae_log: float | None
    mae_log_constant: float | None
    mae_s: float | None
    mae_s_constant: float | None
    cap_s: float
    median_s: float

    def summary(self) -> str:
        text = (f"sound length head: fitted on {self.train_clips} clips ({self.captions} captions), "
                f"median {self.median_s:.2f} s")
        if self.mae_log is None:
            return text + "; no validation clips"
        return (text + f"; on {self.valid_clips} validation clips the mean error is {self.mae_s:.2f} s "
                f"(constant median: {self.mae_s_constant:.2f} s), in log seconds {self.mae_log:.3f} "
                f"(constant: {self.mae_log_constant:.3f}), lengths capped at {self.cap_s:g} s")


def fit_sound_length(
    entries: Sequence,
    encode: Callable[[list[str]], torch.Tensor],
    config: SoundLengthConfig | None = None,
    ridge: float = 1.0,
    train_split: str = "train",
    valid_split: str = "valid",
    cap_s: float = 5.0,
    batch_size: int = 256,
) -> tuple[SoundLengthHead, LengthFitReport]:
    """Fit a :class:`SoundLengthHead` on clips with ``captions``, ``duration_s`` and ``split``
    (manifest entries, or :func:`audiodiff.training.data.load_entries` of a feature export, whose
    durations are what the trainer's timing input saw). Every caption of a clip is one sample of
    that clip's log duration (clipped to [min_s, max_s]); each clip weighs the same in total.
    ``config.scale`` is replaced by the log-normal mean correction (see SoundLengthConfig).

    encode: captions -> pooled embeddings (N, dim), e.g. ``lambda c: text.encoder.encode(c)[2]``.
    """
    config = config or SoundLengthConfig()
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    train = [e for e in entries if e.split == train_split]
    valid = [e for e in entries if e.split == valid_split]
    if len(train) < 2:
        raise ValueError(f"fitting a sound length head needs at least 2 clips in split {train_split!r}, "
                         f"got {len(train)} (splits present: {sorted({e.split for e in entries})})")
    captions = sorted({c for e in train + valid for c in e.captions})
    pooled = {}
    for i in range(0, len(captions), batch_size):
        chunk = captions[i:i + batch_size]
        emb = encode(chunk).float().cpu()
        if emb.shape != (len(chunk), config.dim):
            raise ValueError(f"encode returned shape {tuple(emb.shape)} for {len(chunk)} captions; "
                             f"the head takes (N, {config.dim})")
        pooled.update(zip(chunk, emb))

    def samples(clips):
        x = torch.stack([pooled[c] for e in clips for c in e.captions])
        seconds = torch.tensor([min(max(e.duration_s, config.min_s), config.max_s)
                                for e in clips for _ in e.captions], dtype=torch.float64)
        weights = torch.tensor([1.0 / len(e.captions) for e in clips for _ in e.captions], dtype=torch.float64)
        return x, seconds, weights

    x, seconds, weights = samples(train)
    w, b = ridge_fit(x, seconds.log(), weights, ridge)
    residual = seconds.log() - (x.double() @ w + b)
    variance = float((weights * residual ** 2).sum() / weights.sum())
    config = dataclasses.replace(config, scale=math.exp(variance / 2))
    head = SoundLengthHead(config)
    with torch.no_grad():
        head.proj.weight.copy_(w[None].float())
        head.proj.bias.fill_(b)
    median = float(seconds.median())
    report = dict(train_clips=len(train), valid_clips=len(valid), captions=len(x), cap_s=cap_s, median_s=median,
                  mae_log=None, mae_log_constant=None, mae_s=None, mae_s_constant=None)
    if valid:
        xv, sv, wv = samples(valid)
        wv = wv / wv.sum()
        with torch.no_grad():
            pred = head(xv).double()
        true = sv.clamp(max=cap_s)
        const = torch.full_like(true, median)
        report.update(
            mae_log=float(wv @ (pred.clamp(max=cap_s).log() - true.log()).abs()),
            mae_log_constant=float(wv @ (const.clamp(max=cap_s).log() - true.log()).abs()),
            mae_s=float(wv @ (pred.clamp(max=cap_s) - true).abs()),
            mae_s_constant=float(wv @ (const.clamp(max=cap_s) - true).abs()))
    return head, LengthFitReport(**report)
