"""Fetch Debian packages that ship audio, and find the audio files inside them.

A package is downloaded with ``apt-get download`` (no root needed, nothing is installed) and
unpacked with ``dpkg-deb -x`` into ``<cache>/debian/<name>/``. A finished extraction carries a
marker file with the package version and licence; a folder without it (an interrupted run) is
removed and redone. Extraction happens in a sibling temporary folder that is renamed into place,
so a reader never sees a half-unpacked package.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audiodiff.data.cache import atomic_write_bytes, cache_root
from audiodiff.data.reserved import is_reserved_package

AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "ogg", "oga", "mp3")
MARKER_NAME = ".audiodiff-complete.json"

# Debian policy 5.6.1: lower case letters, digits, '+', '-', '.'; at least two characters,
# starting with an alphanumeric. Checking this also keeps a name from being read as an option.
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class DebianPackageError(RuntimeError):
    """A Debian package could not be fetched or unpacked."""


@dataclass(frozen=True)
class DebianPackage:
    """An unpacked package: where it is, which version, under which licence."""

    name: str
    version: str
    licence: str
    root: Path
    reserved: bool


def _require_tool(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DebianPackageError(f"{tool!r} was not found on PATH; {hint}")
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise DebianPackageError(f"{what} failed (exit {proc.returncode}): {detail}")
    return proc


def fetch_debian_package(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download and unpack the Debian package ``name``; return the folder it was unpacked into.

    Idempotent: a completed extraction is returned at once. Raises :class:`DebianPackageError`
    if ``apt-get``/``dpkg-deb`` are missing or apt does not know the package.
    """
    return debian_package(name, cache_dir).root


def debian_package(name: str, cache_dir: str | os.PathLike[str] | None = None) -> DebianPackage:
    """Like :func:`fetch_debian_package`, returning the version and licence as well."""
    if not _PACKAGE_RE.match(name):
        raise DebianPackageError(f"{name!r} is not a valid Debian package name")
    base = cache_root(cache_dir) / "debian"
    dest = base / name
    done = _read_marker(dest)
    if done is not None:
        return done

    apt_get = _require_tool("apt-get", "fetching Debian packages needs a Debian/Ubuntu system")
    dpkg_deb = _require_tool("dpkg-deb", "install the 'dpkg' package")
    base.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # no marker: an interrupted extraction, redo it from scratch
        shutil.rmtree(dest)
    work = Path(tempfile.mkdtemp(dir=base, prefix=f".{name}."))
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root, apt downloads as the unprivileged '_apt' user: let it write here.
            os.chmod(work, 0o777)
        _run([apt_get, "download", "-q", name], work, f"apt-get download {name}")
        debs = sorted(work.glob("*.deb"))
        if len(debs) != 1:
            raise DebianPackageError(f"apt-get download {name} produced {len(debs)} .deb files")
        version = _run([dpkg_deb, "-f", str(debs[0]), "Version"], work, "dpkg-deb -f").stdout
        tree = work / "tree"
        _run([dpkg_deb, "-x", str(debs[0]), str(tree)], work, f"dpkg-deb -x {debs[0].name}")
        licence = read_package_licence(tree, name)
        marker = {"package": name, "version": version.strip(), "licence": licence,
                  "deb": debs[0].name}
        atomic_write_bytes(tree / MARKER_NAME, json.dumps(marker, indent=2).encode())
        try:
            os.replace(tree, dest)
        except OSError:
            # Another process finished first (dest is now a non-empty folder): use theirs.
            if _read_marker(dest) is None:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = _read_marker(dest)
    if result is None:
        raise DebianPackageError(f"extraction of {name} into {dest} did not complete")
    return result


def _read_marker(dest: Path) -> DebianPackage | None:
    marker = dest / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
        return DebianPackage(name=info["package"], version=info["version"],
                             licence=info["licence"], root=dest,
                             reserved=is_reserved_package(info["package"]))
    except (ValueError, KeyError):
        return None


def find_audio_files(root: str | os.PathLike[str],
                     exts: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """All audio files under ``root`` with one of ``exts`` (case-insensitive), sorted by path.

    ``.oga`` is included by default because the freedesktop sound themes use it for Ogg Vorbis.
    Broken symbolic links are skipped.
    """
    wanted = {e.lower().lstrip(".") for e in exts}
    found = [p for p in Path(root).rglob("*")
             if p.suffix.lower().lstrip(".") in wanted and p.is_file()]
    return sorted(found)


# -- licence --------------------------------------------------------------------------------

_KNOWN_LICENCES = (  # (pattern in free text, short name), most specific first
    (r"creative commons.{0,40}zero|\bcc0\b|public domain dedication", "CC0-1.0"),
    (r"attribution[- ]share ?alike.{0,30}3\.0|cc[- ]by[- ]sa[- ]3", "CC-BY-SA-3.0"),
    (r"attribution[- ]share ?alike.{0,30}4\.0|cc[- ]by[- ]sa[- ]4", "CC-BY-SA-4.0"),
    (r"attribution.{0,30}3\.0|cc[- ]by[- ]3", "CC-BY-3.0"),
    (r"attribution.{0,30}4\.0|cc[- ]by[- ]4", "CC-BY-4.0"),
    (r"lesser general public license|\blgpl", "LGPL"),
    (r"gnu general public license.{0,60}version 3|gpl-?3", "GPL-3+"),
    (r"gnu general public license.{0,60}version 2|gpl-?2", "GPL-2+"),
    (r"gnu general public license|\bgpl\b", "GPL"),
    (r"public domain", "public-domain"),
)


def read_package_licence(root: str | os.PathLike[str], name: str) -> str:
    """A short licence string for an unpacked package (best-effort, from its copyright file).

    For a machine-readable (DEP-5) copyright file, the distinct ``License:`` short names in order
    of appearance joined by ``", "``; otherwise the first known licence found in the text;
    ``"unknown"`` when there is no copyright file or nothing is recognised.
    """
    path = Path(root) / "usr" / "share" / "doc" / name / "copyright"
    if not path.is_file():
        return "unknown"
    text = path.read_text(errors="replace")
    return parse_copyright_licence(text)


def parse_copyright_licence(text: str) -> str:
    """See :func:`read_package_licence`."""
    names: list[str] = []
    for match in re.finditer(r"^License:[ \t]*(\S[^\n]*)$", text, flags=re.MULTILINE):
        short = match.group(1).strip()
        if short and short not in names:
            names.append(short)
    if names:
        return ", ".join(names)
    lowered = text.lower()
    for pattern, short in _KNOWN_LICENCES:
        if re.search(pattern, lowered, flags=re.DOTALL):
            return short
    return "unknown"


def _dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """Split a DEP-5 copyright file into paragraphs of {field: value} (continuations joined)."""
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip()
                fields[key] = value.strip()
        if fields:
            paragraphs.append(fields)
    return paragraphs


@functools.lru_cache(maxsize=64)
def _copyright(path: str, mtime_ns: int) -> tuple[str, list[dict[str, str]]]:
    """A copyright file's text and DEP-5 paragraphs, read once per file version (corpus
    builders ask for the licence of thousands of files of one package)."""
    text = Path(path).read_text(errors="replace")
    return text, _dep5_paragraphs(text)


def file_licence(root: str | os.PathLike[str], name: str, path: str | os.PathLike[str]) -> str:
    """Best-effort licence of one file of an unpacked package, from its DEP-5 copyright file.

    ``Files:`` patterns name paths in the *source* tree, which differ from installed paths
    (``etc/samples/x.flac`` vs ``usr/share/sonic-pi/samples/x.flac``), so a pattern also matches
    on its last path component. As in DEP-5, the last matching paragraph wins. Falls back to the
    package-level string of :func:`read_package_licence`.
    """
    copyright_path = Path(root) / "usr" / "share" / "doc" / name / "copyright"
    if not copyright_path.is_file():
        return "unknown"
    text, paragraphs = _copyright(str(copyright_path), copyright_path.stat().st_mtime_ns)
    rel = Path(path)
    rel_str = str(rel.relative_to(root)) if rel.is_absolute() else str(rel)
    base = Path(rel_str).name
    licence = None
    for para in paragraphs:
        if "Files" not in para or "License" not in para:
            continue
        for pattern in para["Files"].split():
            tail = pattern.rsplit("/", 1)[-1]
            if fnmatch.fnmatch(rel_str, pattern) or (tail != "*" and fnmatch.fnmatch(base, tail)):
                licence = para["License"].splitlines()[0].strip()
                break
    return licence or parse_copyright_licence(text)
