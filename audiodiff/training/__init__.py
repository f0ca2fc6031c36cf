"""Training: one task-agnostic trainer (EMA, exact resume, torchrun DDP), tasks, data, export.

Entry points: ``audiodiff train --config FILE [--set key=value ...]``, ``audiodiff train-vocoder``
and ``audiodiff export RUN_DIR -o MODEL_DIR``, or in Python::

    from audiodiff.training import load_train_config, train, export_run
    result = train(load_train_config("configs/tiny_cpu.json", ["run_dir=runs/tiny"]))
    export_run("runs/tiny", "models/tiny")

Names are imported lazily so that ``audiodiff --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": ".config", "DataConfig": ".config", "OptimConfig": ".config",
    "DiffusionTaskConfig": ".config", "WaveformTaskConfig": ".config", "VocoderTaskConfig": ".config",
    "load_train_config": ".config", "train_config_from_dict": ".config",
    "Trainer": ".trainer", "TrainResult": ".trainer", "TrainingDivergedError": ".trainer",
    "train": ".trainer", "export_run": ".trainer",
    "EMA": ".ema", "CheckpointError": ".checkpoint",
    "DiffusionTask": ".tasks", "WaveformTask": ".tasks", "build_task": ".tasks", "VocoderTask": ".vocoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
