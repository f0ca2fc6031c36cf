"""The task-agnostic training loop.

One :class:`Trainer` runs any :class:`~audiodiff.training.tasks.Task` on the CPU, one GPU or many
(torchrun + DDP), and never loses more than the steps since the last checkpoint:

* AdamW with linear LR warm-up and cosine decay, gradient clipping and accumulation, bf16
  autocast on GPUs and on CPUs that compute bf16 natively, optional ``torch.compile``;
* an EMA of the weights with warm-up (:mod:`.ema`), which is what :func:`export_run` ships;
* atomic checkpoints every N steps, every M minutes, at the end, on SIGTERM / Ctrl-C and when the
  time budget (``max_minutes``) runs out; an existing run directory is resumed exactly (weights,
  EMA, optimizer, LR state, RNG and data position), so 2 + resume + 2 steps equal 4 steps;
* a NaN / inf loss or gradient skips the step and halves the LR; ``max_nan_steps`` of them in a
  row stop the run with :class:`TrainingDivergedError`;
* rank 0 alone logs (tqdm, ``metrics.jsonl``, TensorBoard when installed), validates, writes audio
  samples and checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import atomic_write_text
from ..pipelines.base import cpu_has_native_bf16
from . import distributed
from .checkpoint import (
    CheckpointError,
    capture_rng,
    flatten_optimizer_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    unflatten_optimizer_state,
)
from .config import TrainConfig, config_diff
from .data import ClipDataset, PositionSampler, collate, derive_seed, load_entries, load_text_cache
from .ema import EMA
from .monitor import RunLogger
from .tasks import Task, build_task, task_class


class TrainingDivergedError(ValueError):
    """The loss or the gradients were NaN / inf for ``max_nan_steps`` steps in a row."""


@dataclasses.dataclass
class TrainResult:
    step: int
    samples_seen: int
    reason: str                  # "done", "stop_at_step", "time_budget", "signal"
    checkpoint: Path | None
    valid_loss: float | None     # last validation loss of the EMA weights (None without a valid split)


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, decay: str,
          min_lr_ratio: float) -> float:
    """LR of optimizer step ``step`` (0-based): linear warm-up from 0, then cosine or constant."""
    return LRSchedule(base_lr, warmup_steps, total_steps, decay, min_lr_ratio)(step)


class LRSchedule:
    """Linear warm-up from 0, then a cosine decay to ``min_lr_ratio * base_lr`` at ``total_steps``
    (or a constant LR), whose end may move while the run goes (:meth:`set_horizon`).

    A moved end re-plans the rest of the decay from where it stands: the cosine's progress keeps its
    value at that step and then runs linearly to 1 at the new end, so the LR never jumps and never
    rises. With a fixed end this is the plain schedule (:func:`lr_at`).
    """

    def __init__(self, base_lr: float, warmup_steps: int, total_steps: int, decay: str, min_lr_ratio: float):
        self.base_lr, self.warmup_steps, self.decay, self.min_lr_ratio = base_lr, warmup_steps, decay, min_lr_ratio
        self.total_steps = total_steps
        self._anchor = (warmup_steps, 0.0)  # (step, cosine progress there)

    def progress(self, step: int) -> float:
        """How far along the cosine step ``step`` is, 0 at the end of the warm-up, 1 at the end."""
        anchor_step, anchor_progress = self._anchor
        if step <= anchor_step:
            return anchor_progress
        return min(1.0, anchor_progress + (1 - anchor_progress) * (step - anchor_step)
                   / max(1, self.total_steps - anchor_step))

    def set_horizon(self, step: int, total_steps: int) -> None:
        """End the decay at ``total_steps`` instead, continuing from step ``step``."""
        if step > self.warmup_steps and self.total_steps > self.warmup_steps:
            self._anchor = (step, self.progress(step))
        self.total_steps = total_steps

    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "anchor_step": self._anchor[0],
                "anchor_progress": self._anchor[1]}

    def load_state_dict(self, state: dict) -> None:
        self.total_steps = int(state["total_steps"])
        self._anchor = (int(state["anchor_step"]), float(state["anchor_progress"]))

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.decay == "constant" or self.total_steps <= self.warmup_steps:
            return self.base_lr
        cosine = 0.5 * (1 + math.cos(math.pi * self.progress(step)))
        return self.base_lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


class BudgetHorizon:
    """How many steps a time budget holds, for ``optim.horizon = "time"``.

    The step rate is measured over a trailing window of ``window_steps`` steps (from step
    ``start_step + skip_steps``, past start-up costs) and re-measured every ``every`` steps, so a
    slow spell (another job on the machine, a cold cache) does not fix the decay's end for the
    whole run: measured once over steps 20-120 while another process shared the 2 cores, a 100-minute
    CPU run planned 1,966 steps where it made 4,255, and spent the rest at the lowest LR.
    Validation and checkpoints fall inside the windows; 5% of the time left stays in reserve for the
    last export.
    """

    def __init__(self, budget_s: float, max_steps: int, start_step: int, *, skip_steps: int = 20,
                 first_steps: int = 100, every: int = 100, window_steps: int = 500):
        self.budget_s, self.max_steps = budget_s, max_steps
        self.first = start_step + skip_steps + first_steps
        self.every, self.window_steps = every, window_steps
        self.start_measuring = start_step + skip_steps
        self._marks: list[tuple[int, float]] = []  # (step, elapsed s), one per `every` steps

    def update(self, step: int, elapsed_s: float) -> tuple[int, float] | None:
        """After step ``step``, ``elapsed_s`` into the budget: ``(horizon, steps_per_s)`` when it is
        time to re-measure, else None."""
        if step == self.start_measuring:
            self._marks = [(step, elapsed_s)]
            return None
        if step < self.first or (step - self.first) % self.every:
            return None
        while len(self._marks) > 1 and step - self._marks[1][0] >= self.window_steps:
            self._marks.pop(0)  # the window still spans window_steps without it
        first_step, first_s = self._marks[0]
        self._marks.append((step, elapsed_s))
        rate = (step - first_step) / max(elapsed_s - first_s, 1e-9)
        left = max(0.0, self.budget_s - elapsed_s)
        return min(self.max_steps, step + int(0.95 * rate * left)), rate


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Take the component configs from ``init_from`` when fine-tuning (see TrainConfig.init_from)."""
    if not config.init_from:
        return config
    return config.replace(task=task_class(config.task).resolve_init(config.task, config.init_from))


def _param_groups(params: list[nn.Parameter], weight_decay: float) -> list[dict]:
    """Weight decay on matrices and conv kernels only; biases, norms and null embeddings are exempt."""
    decay = [p for p in params if p.ndim >= 2 and weight_decay > 0]
    no_decay = [p for p in params if not (p.ndim >= 2 and weight_decay > 0)]
    groups = [{"params": decay, "weight_decay": weight_decay}] if decay else []
    return groups + [{"params": no_decay, "weight_decay": 0.0}]


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a run with this ``precision`` trains under bf16 autocast on ``device``: "bf16"
    always, "fp32" never, "auto" on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX), where
    a training step of the default UNet takes about half the fp32 time; elsewhere bf16 is
    emulated and slower."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16"


class Trainer:
    """Build everything for a run (resuming ``config.run_dir`` when it holds a checkpoint)."""

    def __init__(self, config: TrainConfig, task: Task | None = None,
                 env: distributed.DistEnv | None = None):
        self.env = env or distributed.setup(config.device)
        self.run_dir = Path(config.run_dir)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.resume_from = latest_checkpoint(self.ckpt_root)
        if self.resume_from is not None and config.init_from:
            # A fine-tuning run resumes its own model; init_from only seeds the first start.
            _, state = load_checkpoint(self.resume_from, parts=())
            config = config.replace(task=TrainConfig.from_dict(state["config"]).task)
        self.config = config = resolve_config(config) if self.resume_from is None else config
        resume_state = self._check_resumable(self.resume_from) if self.resume_from else None

        # The data first: a wrong path fails before any model is built.
        d = config.data
        entries = load_entries(d)
        train_entries = [e for e in entries if e.split == d.train_split]
        if not train_entries:
            raise ValueError(f"no training clips (split {d.train_split!r}) in {d.manifest or d.folder or d.features}")
        world = self.env.world_size
        if config.batch_size % (config.grad_accum * world):
            raise ValueError(f"batch_size {config.batch_size} must be divisible by grad_accum ({config.grad_accum}) "
                             f"x processes ({world})")
        self.micro_batch = config.batch_size // (config.grad_accum * world)
        device = self.env.device
        self.use_bf16 = uses_bf16(config.precision, device)

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.task = task or build_task(config.task)
        for module in self.task.modules.values():
            module.to(device).train()
        if resume_state is None and config.init_from:
            self.task.load_init(config.init_from)
        o = config.optim
        # One optimizer per training phase (one for diffusion; generator + discriminator for a GAN).
        self.phase_params = self.task.optimizer_params()
        self.optimizers = {name: torch.optim.AdamW(_param_groups(params, o.weight_decay), lr=o.lr,
                                                   betas=o.betas, eps=o.eps)
                           for name, params in self.phase_params.items()}
        self.ema = EMA(self.task.ema_modules, o.ema_decay, o.ema_power)
        self.step = 0
        self.samples_seen = 0
        self.schedule = LRSchedule(o.lr, o.warmup_steps, config.steps, o.decay, o.min_lr_ratio)
        self.lr_scale = 1.0
        self.nan_steps = 0
        self.consecutive_nan = 0
        if self.resume_from is not None:
            self._load(self.resume_from)
        if config.compile:
            self.task.compile()
        self.wrapped = self.task.ddp_modules()
        if self.env.distributed:
            # The null text embedding is expanded over the batch, so its gradient arrives with
            # other strides than DDP's bucket; harmless, and said once per parameter per process.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = {name: DistributedDataParallel(m, device_ids=ids) for name, m in self.wrapped.items()}

        spec = self.task.feature_spec(d)
        if d.text_cache:
            _check_text_cache(d.text_cache, self.task)
        self.train_data = ClipDataset(train_entries, spec, config.seed, self.task.text_config, train=True,
                                      cache_dir=d.cache_dir, memory_clips=d.memory_cache_clips,
                                      text_cache=d.text_cache, mask_padding=d.mask_padding)
        valid_entries = [e for e in entries if e.split == d.valid_split][: d.max_valid_clips]
        self.valid_data = (ClipDataset(valid_entries, spec, config.seed, self.task.text_config, train=False,
                                       cache_dir=d.cache_dir, memory_clips=d.memory_cache_clips,
                                       text_cache=d.text_cache, mask_padding=d.mask_padding)
                           if valid_entries else None)
        self.log = RunLogger(self.run_dir, enabled=self.env.is_main, progress=config.progress)

    # ------------------------------------------------------------------ checkpoints
    def _check_resumable(self, path: Path) -> dict:
        _, state = load_checkpoint(path, parts=())
        diffs = config_diff(state["task"], self.config.task.to_dict(), "task")
        if diffs:
            raise CheckpointError(
                f"{self.run_dir} holds a run of a different model ({path.name}): " + "; ".join(diffs[:6])
                + ("; ..." if len(diffs) > 6 else "")
                + ". Use a new run_dir, or the run's own settings (its config.json) to resume it.")
        return state

    def _load(self, path: Path) -> None:
        tensors, state = load_checkpoint(path)
        for name, module in self.task.modules.items():
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in tensors["model"].items() if k.startswith(prefix)}
            try:
                module.load_state_dict(sub, strict=True)
            except RuntimeError as err:
                raise CheckpointError(f"{path}: the weights of {name!r} do not fit the model: "
                                      f"{str(err).splitlines()[0]}") from None
        self.ema.load_state_dict(tensors["ema"])
        if sorted(state["optimizers"]) != sorted(self.optimizers):
            raise CheckpointError(f"{path}: optimizers {sorted(state['optimizers'])} do not match the task's "
                                  f"{sorted(self.optimizers)}")
        for name, optimizer in self.optimizers.items():
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in tensors["optimizer"].items() if k.startswith(prefix)}
            try:
                optimizer.load_state_dict(unflatten_optimizer_state(sub, state["optimizers"][name]))
            except (ValueError, KeyError) as err:
                raise CheckpointError(f"{path}: optimizer state does not fit the model: {err}") from None
        self.step = int(state["step"])
        if self.config.optim.horizon == "time" and state.get("lr_schedule"):  # absent before 2026-12-04
            # a resumed time-budgeted run continues its decay from where it stopped and fits the
            # rest to the new budget (a "steps" horizon depends on the step alone)
            self.schedule.load_state_dict(state["lr_schedule"])
        self.samples_seen = int(state["samples_seen"])
        self.lr_scale = float(state["lr_scale"])
        self.nan_steps = int(state["nan_steps"])
        self.consecutive_nan = int(state["consecutive_nan"])
        restore_rng(tensors["trainer"], state["rng"])

    def save(self) -> Path | None:
        """Checkpoint the current state (rank 0 writes; every rank waits for it)."""
        path = None
        if self.env.is_main:
            rng_tensors, rng_meta = capture_rng()
            opt_tensors, opt_meta = {}, {}
            for name, optimizer in self.optimizers.items():
                tensors, opt_meta[name] = flatten_optimizer_state(optimizer.state_dict())
                opt_tensors.update({f"{name}.{k}": v for k, v in tensors.items()})
            model = {f"{name}.{k}": v for name, m in self.task.modules.items() for k, v in m.state_dict().items()}
            state = dict(samples_seen=self.samples_seen, lr_scale=self.lr_scale, nan_steps=self.nan_steps,
                         lr_schedule=self.schedule.state_dict(),
                         consecutive_nan=self.consecutive_nan, optimizers=opt_meta, rng=rng_meta,
                         task=self.config.task.to_dict(), config=self.config.to_dict(),
                         world_size=self.env.world_size, saved_at=time.time())
            path = save_checkpoint(self.ckpt_root, self.step,
                                   {"model": model, "ema": self.ema.state_dict(), "optimizer": opt_tensors,
                                    "trainer": rng_tensors}, state, keep=self.config.keep_checkpoints)
            self.log.event("checkpoint", step=self.step, path=str(path))
        distributed.barrier(self.env)
        return path

    # ------------------------------------------------------------------ validation and samples
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss of the live and the EMA weights (rank 0; fixed crops, noise and sigmas)."""
        if self.valid_data is None or not self.env.is_main:
            return {}
        out = {}
        self.task.set_training(False)
        try:
            for name, ctx in (("valid/loss", contextlib.nullcontext()), ("valid/loss_ema", self.ema.swapped_in())):
                with ctx, self._autocast():
                    total, count = 0.0, 0
                    n = len(self.valid_data)
                    for first in range(0, n, self.micro_batch):
                        items = [self.valid_data[i] for i in range(first, min(n, first + self.micro_batch))]
                        batch = self.task.prepare(collate(items), self.config.seed, self.env.device)
                        losses = self.task.validation_loss(batch, self.config.seed)
                        total += float(losses.sum())
                        count += len(items)
                    out[name] = total / count
        finally:
            self.task.set_training(True)
        return out

    def write_samples(self) -> None:
        if not self.env.is_main:
            return
        try:
            with self.ema.swapped_in():
                samples = self.task.samples(seed=self.config.seed)
        finally:
            self.task.set_training(True)
        self.log.audio(self.step, samples)

    # ------------------------------------------------------------------ the loop
    def _autocast(self):
        return torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _loader(self) -> DataLoader:
        c = self.config
        sampler = PositionSampler(self.samples_seen, self.micro_batch, c.grad_accum, self.env)
        workers = c.data.num_workers
        return DataLoader(self.train_data, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=self.env.device.type == "cuda", persistent_workers=workers > 0)

    def _train_step(self, batches, lr: float) -> tuple[bool, dict[str, float]]:
        """One optimizer step of every phase over this step's micro-batches.

        Returns (ok, metrics). A phase whose loss or gradient is NaN / inf on any rank is not
        applied, nor are the phases after it (ok = False).
        """
        c = self.config
        torch.manual_seed(derive_seed(c.seed, "step", self.samples_seen, self.env.rank))  # dropout etc.
        micro_batches = [self.task.prepare(next(batches), c.seed, self.env.device) for _ in range(c.grad_accum)]
        metrics: dict[str, float] = {}
        for phase, params in self.phase_params.items():
            optimizer = self.optimizers[phase]
            for optimizer_ in self.optimizers.values():
                optimizer_.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=self.env.device)
            logs: dict[str, torch.Tensor] = {}
            for micro, batch in enumerate(micro_batches):
                last = micro == len(micro_batches) - 1
                with self._no_sync(not last):
                    with self._autocast():
                        out = self.task.phase_loss(phase, self.wrapped, batch)
                        loss = (out.pop("loss") if isinstance(out, dict) else out).float().mean() / c.grad_accum
                    loss.backward()
                loss_sum += loss.detach()
                for key, value in (out.items() if isinstance(out, dict) else ()):
                    logs[key] = logs.get(key, 0.0) + value.detach().float() / c.grad_accum
            max_norm = c.optim.grad_clip if c.optim.grad_clip > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            (bad,) = distributed.any_flags(self.env, [not bool(torch.isfinite(loss_sum) and torch.isfinite(grad_norm))])
            prefix = "train/" if len(self.phase_params) == 1 else f"train/{phase}/"
            metrics.update({f"{prefix}loss": float(loss_sum), f"{prefix}grad_norm": float(grad_norm),
                            **{f"{prefix}{k}": float(v) for k, v in logs.items()}})
            if bad:
                for optimizer_ in self.optimizers.values():
                    optimizer_.zero_grad(set_to_none=True)
                return False, metrics
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
        for optimizer_ in self.optimizers.values():
            optimizer_.zero_grad(set_to_none=True)
        return True, metrics

    def _no_sync(self, skip: bool):
        """Inside grad accumulation, DDP all-reduces only on the last micro-batch."""
        stack = contextlib.ExitStack()
        if skip and self.env.distributed:
            for module in self.wrapped.values():
                stack.enter_context(module.no_sync())
        return stack

    def run(self) -> TrainResult:
        c = self.config
        end = min(c.steps, c.stop_at_step) if c.stop_at_step else c.steps
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.json", c.to_json())
        self.log.event("resume" if self.resume_from else "start", step=self.step,
                       checkpoint=str(self.resume_from) if self.resume_from else None,
                       world_size=self.env.world_size, micro_batch=self.micro_batch, device=str(self.env.device),
                       precision="bf16" if self.use_bf16 else "fp32")
        stop = _StopFlag()
        valid_loss = None
        if self.step == 0 and self.step < end:
            valid_loss = self._validate_and_log(valid_loss)
        start_time = last_ckpt_time = time.monotonic()
        last_saved = self.step if self.resume_from else None
        reason = "done" if self.step >= c.steps else "stop_at_step"  # set again when the loop ends
        batches = iter(self._loader()) if self.step < end else None
        bar = self.log.progress(total=c.steps, initial=self.step)
        window_samples, window_time = 0, 0.0
        budget = (BudgetHorizon(c.max_minutes * 60, c.steps, self.step)
                  if c.optim.horizon == "time" and c.max_minutes > 0 else None)
        logged_horizon = 0
        save_on_exit = True  # clean stops and Ctrl-C keep their work; a divergence or a bug does not
        try:
            with stop.installed():
                while self.step < end:
                    t0 = time.perf_counter()
                    lr = self.schedule(self.step) * self.lr_scale
                    self.task.begin_step(self.step)
                    ok, metrics = self._train_step(batches, lr)
                    now = time.monotonic()
                    time_up, ckpt_due, signalled = distributed.any_flags(self.env, [
                        c.max_minutes > 0 and now - start_time >= c.max_minutes * 60,
                        c.checkpoint_minutes > 0 and now - last_ckpt_time >= c.checkpoint_minutes * 60,
                        stop.is_set()])
                    self.samples_seen += c.batch_size
                    if not ok:
                        self._skip_nan_step(metrics)
                        continue
                    self.step += 1
                    measured = budget.update(self.step, now - start_time) if budget else None
                    if measured:
                        horizon, rate = measured
                        if self.env.distributed:  # every rank must follow the same LR
                            horizon = int(distributed.mean_over_ranks(self.env, torch.tensor([float(horizon)]))[0])
                        self.schedule.set_horizon(self.step, horizon)
                        if not logged_horizon or abs(horizon - logged_horizon) > 0.02 * logged_horizon:
                            self.log.event("lr_horizon", step=self.step, steps_per_s=round(rate, 3), horizon=horizon)
                            logged_horizon = horizon
                    self.ema.update(self.step)
                    self.consecutive_nan = 0
                    window_samples += c.batch_size
                    window_time += time.perf_counter() - t0
                    bar.update(1)
                    if self.step % c.log_every == 0:
                        rate = window_samples / max(window_time, 1e-9)
                        if self.env.distributed:  # the logged losses are averaged over ranks
                            keys = sorted(metrics)
                            means = distributed.mean_over_ranks(self.env, torch.tensor([metrics[k] for k in keys]))
                            metrics = dict(zip(keys, means.tolist()))
                        self.log.scalars(self.step, {**metrics, "train/lr": lr, "train/samples_per_s": rate,
                                                     "train/nan_steps": self.nan_steps,
                                                     "train/samples_seen": self.samples_seen})
                        loss_key = "train/loss" if "train/loss" in metrics else sorted(metrics)[0]
                        bar.set_postfix(loss=f"{metrics[loss_key]:.4f}", samples_s=f"{rate:.1f}")
                        window_samples, window_time = 0, 0.0
                    if self.step % c.valid_every == 0:
                        valid_loss = self._validate_and_log(valid_loss)
                    if self.step % c.sample_every == 0:
                        self.write_samples()
                        distributed.barrier(self.env)
                    if self.step % c.checkpoint_every == 0 or ckpt_due:
                        self.save()
                        last_saved, last_ckpt_time = self.step, time.monotonic()
                    if time_up or signalled:
                        reason = "time_budget" if time_up else "signal"
                        break
                else:
                    reason = "done" if self.step >= c.steps else "stop_at_step"
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        except BaseException as err:
            reason, save_on_exit = f"error: {type(err).__name__}", False
            raise
        finally:
            bar.close()
            if save_on_exit and self.step != last_saved and self.step > 0:
                self.save()
            self.log.event("stop", step=self.step, reason=reason)
        if reason == "done" and self.step % c.valid_every != 0:
            valid_loss = self._validate_and_log(valid_loss)
        self.log.close()
        return TrainResult(self.step, self.samples_seen, reason, latest_checkpoint(self.ckpt_root), valid_loss)

    def _validate_and_log(self, previous: float | None) -> float | None:
        metrics = self.validate()
        distributed.barrier(self.env)
        if metrics:
            self.log.scalars(self.step, metrics)
            return metrics["valid/loss_ema"]
        return previous

    def _skip_nan_step(self, metrics: dict[str, float]) -> None:
        """Documented recovery: drop the step's gradients, halve the LR, stop after too many in a row."""
        self.nan_steps += 1
        self.consecutive_nan += 1
        self.lr_scale *= 0.5
        self.log.event("nan_step", step=self.step, lr_scale=self.lr_scale, consecutive=self.consecutive_nan,
                       **{k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()})
        if self.consecutive_nan >= self.config.max_nan_steps:
            last = latest_checkpoint(self.ckpt_root)
            raise TrainingDivergedError(
                f"the loss or gradients were NaN/inf for {self.consecutive_nan} steps in a row at step "
                f"{self.step} (the LR was halved each time); the last checkpoint is "
                f"{last or 'none'}. Lower optim.lr, raise optim.warmup_steps or check the data.")


class _StopFlag:
    """Set by SIGTERM (schedulers, `kill`): the loop checkpoints and stops after the current step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, lambda *_: self._event.set())
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a training run; in a torchrun job, call it in every process."""
    env = distributed.setup(config.device)
    try:
        return Trainer(config, env=env).run()
    finally:
        distributed.teardown()


def export_run(run_dir: str | Path, out_dir: str | Path, dtype: torch.dtype | None = None,
               checkpoint: str | Path | None = None, use_ema: bool = True) -> Path:
    """Write the release folder of a run: its EMA weights (or the raw ones) in the task's pipeline
    format, loadable with e.g. ``TextToAudioPipeline.from_pretrained(out_dir)``."""
    run_dir = Path(run_dir)
    path = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        if not run_dir.exists():
            raise FileNotFoundError(f"run directory not found: {run_dir}")
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet (looked in {run_dir / 'checkpoints'})")
    part = "ema" if use_ema else "model"
    tensors, state = load_checkpoint(path, parts=(part,))
    config = TrainConfig.from_dict(state["config"])
    task = build_task(config.task)
    weights = tensors[part]
    targets = task.ema_modules if use_ema else task.modules
    for name, module in targets.items():
        prefix = f"{name}."
        own = module.state_dict()
        sub = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        # The EMA holds floating-point tensors only; anything else keeps the module's own value.
        missing = sorted(k for k in set(own) - set(sub) if own[k].is_floating_point() or not use_ema)
        if missing:
            raise CheckpointError(f"{path}: the {part} weights lack {missing[:5]} of {name!r}")
        module.load_state_dict({k: sub.get(k, v).to(v.dtype) for k, v in own.items()}, strict=True)
    for module in task.modules.values():
        module.eval()
    out = task.export(out_dir, dtype=dtype)
    record = {"run_dir": str(run_dir.resolve()), "checkpoint": path.name, "step": state["step"],
              "samples_seen": state["samples_seen"], "weights": part}
    length = _export_sound_length(config, task, Path(out))
    if length is not None:
        record["sound_length"] = length
    atomic_write_text(Path(out) / "training.json", json.dumps(record, indent=1) + "\n")
    return Path(out)


def _export_sound_length(config: TrainConfig, task: Task, out: Path) -> dict | None:
    """A text-to-audio UNet with a timing input gets its sound length head (``sound_s="auto"``)
    fitted on the run's own clips and captions, predictions of a crop or more filling the clip.
    Returns what was done (for training.json), or None for models without a timing input."""
    from ..conditioning.length import SoundLengthConfig, fit_sound_length
    from ..conditioning.text import TextConditioner
    from ..hub import save_component
    from ..pipelines.text_to_audio import SOUND_LENGTH_FOLDER

    net, text = getattr(task, "net", None), getattr(config.task, "text", None)
    if text is None or not getattr(getattr(net, "config", None), "timing_channels", 0) or \
            not (out / "pipeline.json").is_file():
        return None
    try:
        entries = load_entries(config.data)
        if config.data.text_cache:
            table = load_text_cache(config.data.text_cache, text)
            encode = lambda captions: torch.stack([table[c][1] for c in captions])  # noqa: E731
        else:
            encoder = TextConditioner(text).encoder
            encode = lambda captions: encoder.encode(captions)[2]  # noqa: E731
        head, report = fit_sound_length(entries, encode, SoundLengthConfig(dim=text.dim, fill_s=config.data.crop_s),
                                        train_split=config.data.train_split, valid_split=config.data.valid_split)
    except (OSError, ValueError, KeyError) as err:  # e.g. the data is not on this machine
        warnings.warn(f"export: no sound length head fitted ({type(err).__name__}: {err}); fit one with "
                      f"`audiodiff fit-length {out} --manifest|--folder|--features ...`", stacklevel=2)
        return {"skipped": f"{type(err).__name__}: {err}"}
    save_component(head, out / SOUND_LENGTH_FOLDER)
    return {"fill_s": config.data.crop_s, **dataclasses.asdict(report)}


def _check_text_cache(path: str, task) -> None:
    """A pooled-only text cache cannot feed a UNet that cross-attends to text tokens."""
    from safetensors import safe_open

    unet = getattr(task.config, "unet", None)
    if unet is None or getattr(unet, "text_dim", 0) == 0 or not Path(path).is_file():
        return
    with safe_open(path, framework="pt") as f:
        has_tokens = "tokens" in f.keys()
    if not has_tokens:
        raise ConfigError(f"data.text_cache {path} holds pooled embeddings only, but task.unet.text_dim="
                          f"{unet.text_dim} needs per-token embeddings: rebuild it with tokens=True, "
                          "or set task.unet.text_dim=0 (pooled-only text conditioning)")
