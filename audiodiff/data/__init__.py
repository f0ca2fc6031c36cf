"""Data sources: Debian packages of recorded sounds, espeak-ng speech, music21 scores rendered
with fluidsynth. Each returns files in the audiodiff cache (never the repository) together with
a caption and a licence; corpus builders with manifests are built on top of these functions.

Sources reserved for evaluation are listed in :mod:`audiodiff.data.reserved`.

Corpus builders (``audiodiff prepare``, see :mod:`audiodiff.data.cli`) live in their own modules
and are imported from there, so ``import audiodiff.data`` stays light: :mod:`~audiodiff.data.sfx`
(Debian sound effects), :mod:`~audiodiff.data.music_corpus` (rendered music with melody labels),
:mod:`~audiodiff.data.local_corpora` (procedural synth, a user's folder),
:mod:`~audiodiff.data.feature_cache` (mel shards, compact export) and
:mod:`~audiodiff.data.quality` (spot checks).
"""

from .cache import CACHE_ENV, cache_root
from .debian import (
    AUDIO_EXTENSIONS,
    DebianPackage,
    DebianPackageError,
    debian_package,
    fetch_debian_package,
    file_licence,
    find_audio_files,
    read_package_licence,
)
from .midi import NoteEvent, Track, write_midi
from .music import (
    ENSEMBLES,
    SOLO_INSTRUMENTS,
    Ensemble,
    MusicPiece,
    MusicRenderError,
    RenderedMusic,
    list_pieces,
    piece_notes,
    render_midi,
    render_piece,
    sample_music,
)
from .reserved import (
    RESERVED_DEBIAN_PACKAGES,
    RESERVED_MUSIC21_COLLECTIONS,
    ReservedSourceError,
    is_reserved_package,
)
from .speech import (
    ENGLISH_SENTENCES,
    ENGLISH_VOICES,
    SpeechSynthesisError,
    sample_speech_specs,
    synthesize_speech,
)

__all__ = [
    "AUDIO_EXTENSIONS", "CACHE_ENV", "DebianPackage", "DebianPackageError", "ENGLISH_SENTENCES",
    "ENGLISH_VOICES", "ENSEMBLES", "Ensemble", "MusicPiece", "MusicRenderError", "NoteEvent",
    "RESERVED_DEBIAN_PACKAGES", "RESERVED_MUSIC21_COLLECTIONS", "RenderedMusic",
    "ReservedSourceError", "SOLO_INSTRUMENTS", "SpeechSynthesisError", "Track", "cache_root",
    "debian_package", "fetch_debian_package", "file_licence", "find_audio_files",
    "is_reserved_package", "list_pieces", "piece_notes", "read_package_licence", "render_midi",
    "render_piece", "sample_music", "sample_speech_specs", "synthesize_speech", "write_midi",
]
