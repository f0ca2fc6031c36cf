"""Where fetched packages, rendered music and prepared clips are cached.

Audio never goes into the repository tree: everything the data sources make lives under one cache
root, ``$AUDIODIFF_CACHE`` or ``~/.cache/audiodiff``. Each source uses its own sub-folder
(``debian/``, ``music/``, ``speech/``, ...), so one folder can be deleted without touching the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import atomic_write_bytes as _atomic_write_bytes

CACHE_ENV = "AUDIODIFF_CACHE"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``cache_dir`` if given, else ``$AUDIODIFF_CACHE``, else ``~/.cache/audiodiff``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "audiodiff"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file (no fsync: a
    cache can be rebuilt).

    Parallel workers may build the same cached file; the last ``os.replace`` wins and every
    version is identical, so no lock is needed.
    """
    _atomic_write_bytes(path, data, fsync=False)
