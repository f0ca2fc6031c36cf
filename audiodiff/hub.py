"""Release format: one folder per component, ``config.json`` + ``model.safetensors``.

``save_component`` / ``load_component`` handle any registered module whose constructor takes its
config. Weights are safetensors only: nothing a user hands us is ever unpickled. Loading is strict:
a missing or unexpected tensor is an error naming the keys. ``resolve_pretrained`` accepts a local
folder or a hub id (fetched with huggingface_hub, which honours ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import FILE_MODE, Config, ConfigError, temp_file_beside

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# The model bundled with audiodiff (TextToAudioPipeline.from_pretrained() with no argument).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default"

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(config_cls: type[Config]):
    """Class decorator: modules built from ``config_cls`` can be loaded by ``load_component``."""
    def wrap(module_cls: type[nn.Module]) -> type[nn.Module]:
        _MODELS[config_cls.__name__] = module_cls
        module_cls.config_class = config_cls
        return module_cls
    return wrap


def cache_dir() -> Path:
    """Where converted weights are kept: ``$AUDIODIFF_CACHE`` or ``~/.cache/audiodiff``."""
    root = os.environ.get("AUDIODIFF_CACHE") or Path.home() / ".cache" / "audiodiff"
    return Path(root)


def save_component(module: nn.Module, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write ``module.config`` and its weights (optionally cast to ``dtype``) into ``folder``."""
    folder = Path(folder)
    config = getattr(module, "config", None)
    if not isinstance(config, Config):
        raise TypeError(f"{type(module).__name__} has no Config in .config; it cannot be saved")
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    write_weights(state, folder / WEIGHTS_NAME, type(config).__name__)
    config.save(folder / CONFIG_NAME)
    return folder


def write_weights(state: dict[str, torch.Tensor], path: Path, type_name: str) -> None:
    """Write ``state`` to the safetensors file ``path`` atomically (the old file or the new one,
    never half)."""
    tmp = temp_file_beside(path)
    try:
        save_file(state, str(tmp), metadata={"format": "pt", "type": type_name})
        os.chmod(tmp, FILE_MODE)  # safetensors writes a new file of its own (0600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``; a clear error when it is missing or not one."""
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {path.parent}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a valid safetensors file: {err}") from None


def _register_components() -> None:
    """Import the modules that register audiodiff's components, so that ``load_component`` works
    without the caller importing them first (they import this module: hence here, not above)."""
    from . import conditioning, models  # noqa: F401  text, sound length; UNets, vocoders


def load_config(folder: str | os.PathLike) -> Config:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}: not an audiodiff component folder")
    _register_components()
    return Config.load(path)


def load_component(
    folder: str | os.PathLike,
    expected: type[nn.Module] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build the module named by ``folder/config.json`` and load its safetensors weights strictly.

    Weights stored in half precision are loaded into the module's dtype (float32 unless ``dtype``).
    """
    folder = Path(folder)
    config = load_config(folder)
    name = type(config).__name__
    if name not in _MODELS:
        raise ConfigError(f"{folder}: no model class is registered for config type {name}")
    cls = _MODELS[name]
    if expected is not None and not issubclass(cls, expected):
        raise ConfigError(f"{folder} holds a {cls.__name__}, expected a {expected.__name__}")
    module = cls(config)
    weights = folder / WEIGHTS_NAME
    state = read_weights(weights)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match {cls.__name__}: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            raise ValueError(f"{weights}: {key} has shape {tuple(tensor.shape)}, "
                             f"the model expects {tuple(own[key].shape)}")
        if tensor.is_floating_point():
            state[key] = tensor.to(own[key].dtype)
    module.load_state_dict(state, strict=True)
    module.eval()
    return module.to(device=device, dtype=dtype)


def resolve_pretrained(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or a hub id ``owner/name`` downloaded (or taken from the hub cache).

    With ``HF_HUB_OFFLINE=1`` only already-cached hub ids resolve; the error says so.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists():
        raise NotADirectoryError(f"{text} is a file; expected a model folder or a hub id")
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder not found: {text} (and it is not a hub id 'owner/name')")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with sentence-transformers
        raise FileNotFoundError(f"{text} is not a local folder and huggingface_hub is not installed") from None
    try:
        return Path(snapshot_download(repo_id=text))
    except Exception as err:  # network, offline mode, unknown repo: one readable message
        raise FileNotFoundError(
            f"{text} is not a local folder and could not be fetched from the hub "
            f"({type(err).__name__}: {err}). Pass a local folder saved with save_pretrained()."
        ) from None
