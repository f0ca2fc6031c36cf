"""What a run reports: a tqdm bar, ``metrics.jsonl``, TensorBoard (when installed), audio samples.

Only rank 0 reports; on other ranks every method is a no-op. ``RUN_DIR/metrics.jsonl`` always gets
one JSON object per line (scalars with their step, and events such as checkpoints, resumes, NaN
steps and stops), so a run can be inspected or plotted without TensorBoard.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..audio import save_audio


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...


class RunLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, progress: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.show_progress = progress and enabled
        self._fh = None
        self._tb = None
        self._tb_tried = False

    def _write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._fh is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def _writer(self):
        """A TensorBoard SummaryWriter, or None when tensorboard is not installed."""
        if not self._tb_tried and self.enabled:
            self._tb_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = None
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._tb

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._write({"step": step, "time": time.time(), **values})
        writer = self._writer()
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(key, value, step)

    def event(self, name: str, **fields: Any) -> None:
        self._write({"event": name, "time": time.time(), **fields})

    def audio(self, step: int, samples: list[tuple[str, torch.Tensor, int]]) -> None:
        """Write samples to RUN_DIR/samples/step_N/ (and TensorBoard)."""
        if not self.enabled or not samples:
            return
        folder = self.run_dir / "samples" / f"step_{step:08d}"
        writer = self._writer()
        for i, (name, wav, sample_rate) in enumerate(samples):
            save_audio(folder / f"{i:02d}_{name}.wav", wav.float().cpu(), sample_rate)
            if writer is not None:
                writer.add_audio(f"samples/{i:02d}_{name}", wav.float().mean(0).clamp(-1, 1), step,
                                 sample_rate=sample_rate)
        self.event("samples", step=step, folder=str(folder))

    def progress(self, total: int, initial: int):
        if not self.show_progress:
            return _NoBar()
        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="training")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
