"""Training-state checkpoints: safetensors + JSON, written atomically, verified on load.

A checkpoint is a folder ``RUN_DIR/checkpoints/step_00001000/``::

    model.safetensors      the trained modules' weights, keys "unet.…", "text.…"
    ema.safetensors        their EMA (float32), same keys
    optimizer.safetensors  the optimizer's state tensors, flattened ("state.12.exp_avg", …)
    trainer.safetensors    RNG states as uint8 tensors (torch CPU, CUDA)
    state.json             step, data position, LR scale, NaN counters, the optimizer's param
                           groups and scalar state, Python / NumPy RNG states, the configs, and
                           the size and SHA-256 of every file above

Nothing is pickled, so loading a checkpoint never runs code. The folder is written under a
temporary name and renamed into place, then ``checkpoints/latest`` is replaced atomically: a
process killed at any moment leaves the previous checkpoint intact and ``latest`` pointing at a
complete one. On load every file is checked against its recorded size and hash, so a truncated
or corrupted checkpoint is reported as such rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import atomic_write_text

FORMAT_VERSION = 1
STATE_NAME = "state.json"
LATEST_NAME = "latest"
TENSOR_FILES = ("model", "ema", "optimizer", "trainer")
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupted or does not fit the model being trained."""


# -- optimizer state <-> tensors + JSON ----------------------------------------------------------

def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer_state`, ready for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for group in meta["param_groups"]:
        groups.append({k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in group.items()})
    return {"state": state, "param_groups": groups}


# -- RNG states --------------------------------------------------------------------------------

def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    """Every global RNG state: torch (tensors) and Python / NumPy (JSON)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in meta:
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# -- writing and reading -----------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(root: str | os.PathLike, step: int, tensors: dict[str, dict[str, torch.Tensor]],
                    state: dict, keep: int = 3) -> Path:
    """Write one checkpoint atomically under ``root`` and point ``root/latest`` at it.

    tensors: {"model": {...}, "ema": {...}, "optimizer": {...}, "trainer": {...}}.
    state: JSON-able training state (the file hashes are added here).
    keep: how many of the newest checkpoints to keep; older ones are deleted afterwards.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {}
        for name in TENSOR_FILES:
            path = tmp / f"{name}.safetensors"
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.get(name, {}).items()}, str(path),
                      metadata={"format": "pt", "audiodiff": "training-checkpoint"})
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        state = dict(state, format_version=FORMAT_VERSION, step=step, files=files)
        atomic_write_text(tmp / STATE_NAME, json.dumps(state, indent=1, sort_keys=True) + "\n")
        _fsync_dir(tmp)
        if final.exists():  # the same step saved twice (e.g. periodic + at exit): replace it
            old = root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST_NAME, final.name + "\n")
    prune_checkpoints(root, keep)
    return final


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under ``root`` (with a state.json), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / STATE_NAME).is_file()]
    return [p for _, p in sorted(found)]


def prune_checkpoints(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-step_*"):  # leftovers of a process killed mid-write
        if not path.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``root/latest`` names (else the newest complete one), or None."""
    root = Path(root)
    pointer = root / LATEST_NAME
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / STATE_NAME).is_file():
            return path
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_state(path: str | os.PathLike) -> dict:
    """state.json of a checkpoint folder (no tensor files are read)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state_path = path / STATE_NAME
    if not state_path.is_file():
        raise CheckpointError(f"{path} has no {STATE_NAME}: not a complete training checkpoint")
    try:
        state = json.loads(state_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{state_path} is corrupt (not valid JSON: {err})") from None
    if not isinstance(state, dict) or "files" not in state or "step" not in state:
        raise CheckpointError(f"{state_path} is not a training checkpoint state")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer audiodiff (format {state['format_version']})")
    return state


def load_checkpoint(path: str | os.PathLike, parts: tuple[str, ...] = TENSOR_FILES,
                    verify: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Read a checkpoint folder: ({part: tensors}, state). Sizes and hashes are verified first."""
    path = Path(path)
    state = read_state(path)
    tensors = {}
    for name in parts:
        file = path / f"{name}.safetensors"
        expected = state["files"].get(file.name)
        if not file.is_file() or expected is None:
            raise CheckpointError(f"checkpoint {path} is incomplete: {file.name} is missing")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: {file.name} has {size} bytes, "
                                  f"{expected['bytes']} were written (truncated?)")
        if verify and _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: {file.name} does not match its "
                                  "recorded SHA-256")
        try:
            tensors[name] = load_file(str(file))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"checkpoint {path} is corrupt: {file.name}: {err}") from None
    return tensors, state
