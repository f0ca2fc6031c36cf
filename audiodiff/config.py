"""Frozen dataclass configurations, stored as strict JSON.

Every component (mel front-end, vocoder, UNet, pipeline) is built from one frozen dataclass
that validates itself in ``__post_init__``. On disk a config is a JSON object with a
``format_version`` and a ``type`` naming its class; unknown keys are an error, never a warning,
so a typo in a config file fails loudly instead of silently using a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

FORMAT_VERSION = 1

T = TypeVar("T", bound="Config")

# Registry of config classes by name, so a JSON file can say which class it holds.
_REGISTRY: dict[str, type[Config]] = {}


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


def register_config(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` loadable by name from JSON."""
    name = cls.__name__
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ConfigError(f"config class name {name!r} is registered twice")
    _REGISTRY[name] = cls
    return cls


def config_class(name: str) -> type[Config]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown config type {name!r}; known types: {known}") from None


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


def _from_jsonable(tp: Any, value: Any, where: str) -> Any:
    """Convert a JSON value back to the annotated field type (tuples, nested configs)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object for {tp.__name__}, got {value!r}")
        return tp.from_dict(value)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            return _from_jsonable(arg, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_jsonable(args[0], v, where) for v in value)
        return tuple(_from_jsonable(a, v, where) for a, v in zip(args, value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of all configs: JSON round trip, strict keys, copy with changes."""

    config_name: ClassVar[str] = "config.json"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__, "format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            out[f.name] = _to_jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        data = dict(data)
        type_name = data.pop("type", cls.__name__)
        version = data.pop("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"{type_name} was saved with format_version {version}, newer than this "
                f"audiodiff understands ({FORMAT_VERSION}); upgrade audiodiff"
            )
        target = cls
        if type_name != cls.__name__:
            target = config_class(type_name)
            if not issubclass(target, cls):
                raise ConfigError(f"expected a {cls.__name__} config, the file holds {type_name}")
        hints = typing.get_type_hints(target)
        fields = {f.name: f for f in dataclasses.fields(target)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown keys for {target.__name__}: {unknown}; accepted keys: {sorted(fields)}"
            )
        kwargs = {k: _from_jsonable(hints[k], v, f"{target.__name__}.{k}") for k, v in data.items()}
        try:
            return target(**kwargs)
        except TypeError as err:
            raise ConfigError(f"cannot build {target.__name__}: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError("config JSON must be an object")
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return cls.from_json(path.read_text())

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# What open(path, "w") gives under the umask at import (read once: os.umask is process-wide, so
# reading it later could race with a thread creating a file).
FILE_MODE = _file_mode()


def temp_file_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file in ``path``'s folder for an atomic write (fill it, then ``os.replace``
    it onto ``path``), with the permissions of a plain ``open(path, "w")``: mkstemp's own 0600
    would leave saved models and audio unreadable to everyone else."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half;
    ``fsync=False`` skips the flush to disk (caches that can be rebuilt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file_beside(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds: used by ``__post_init__`` validators."""
    if not condition:
        raise ConfigError(message)


# Names a pipeline's weights dtype may be given by (``from_pretrained(dtype=...)``, ``--dtype``);
# resolved in audiodiff.pipelines.base.resolve_dtype. Here so the CLI can list them without torch.
DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")
