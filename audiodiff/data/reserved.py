"""Sources reserved for evaluation (see DATA.md): never train on these.

Held-out numbers on these sources are what tell us a model generalises, so one list is shared by
every data source and corpus builder. Evaluation code may still read them, but must say so
explicitly (``allow_reserved=True``) and label the results as held-out.
"""

from __future__ import annotations

RESERVED_DEBIAN_PACKAGES: frozenset[str] = frozenset(
    {"tuxpaint-stamps-default", "scorched3d-data", "flare-game", "singularity-music"}
)
RESERVED_MUSIC21_COLLECTIONS: frozenset[str] = frozenset({"oneills1850"})


class ReservedSourceError(ValueError):
    """A source reserved for evaluation was requested for something other than evaluation."""


def is_reserved_package(name: str) -> bool:
    """Whether the Debian package ``name`` is held out for evaluation."""
    return name in RESERVED_DEBIAN_PACKAGES


def check_not_reserved_collection(collection: str, allow_reserved: bool = False) -> None:
    """Raise :class:`ReservedSourceError` for a reserved music21 collection unless allowed."""
    if collection in RESERVED_MUSIC21_COLLECTIONS and not allow_reserved:
        raise ReservedSourceError(
            f"music21 collection {collection!r} is reserved for evaluation and must never be used "
            "for training; pass allow_reserved=True only in evaluation code and label the "
            "results as held-out"
        )
