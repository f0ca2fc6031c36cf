"""A minimal Standard MIDI File (format 1) writer: notes, one program per track, one tempo.

Written here rather than through music21's exporter so that every part gets exactly the program
we ask for (music21 derives programs from its instrument objects and scores without them come
out as piano) and the bytes are a pure function of the notes, which keeps renders deterministic.
Spec: "Standard MIDI-File Format Spec. 1.1", MIDI Manufacturers Association.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

PERCUSSION_CHANNEL = 9  # GM: channel 10 (0-based 9) is drums whatever its program


class NoteEvent(NamedTuple):
    """One note; ``onset`` and ``duration`` in quarter notes, ``pitch`` a MIDI number."""

    onset: float
    duration: float
    pitch: int
    velocity: int = 80


@dataclass(frozen=True)
class Track:
    name: str
    program: int  # General MIDI program, 0-based (0 = acoustic grand piano, 19 = church organ)
    notes: tuple[NoteEvent, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.program <= 127:
            raise ValueError(f"track {self.name!r}: program must be 0-127, got {self.program}")
        for n in self.notes:
            if not 0 <= n.pitch <= 127:
                raise ValueError(f"track {self.name!r}: pitch must be 0-127, got {n.pitch}")
            if n.onset < 0 or n.duration <= 0:
                raise ValueError(f"track {self.name!r}: bad note timing {n}")


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">I", len(body)) + body


def _track_chunk(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """``events``: (tick, order, message); order sorts note-offs before note-ons on one tick."""
    body = bytearray()
    now = 0
    for tick, _, message in sorted(events):
        body += _vlq(tick - now) + message
        now = tick
    body += _vlq(max(end_tick - now, 0)) + b"\xff\x2f\x00"  # end of track
    return _chunk(b"MTrk", bytes(body))


def _meta_text(kind: int, text: str) -> bytes:
    data = text.encode("ascii", "replace")
    return bytes([0xFF, kind]) + _vlq(len(data)) + data


def write_midi(tracks: Sequence[Track], tempo_bpm: float, ticks_per_quarter: int = 480,
               tail_quarters: float = 1.0) -> bytes:
    """The bytes of a format-1 MIDI file: a tempo track, then one track per :class:`Track`, each
    on its own channel (skipping the GM percussion channel) with its program set at tick 0.

    ``tail_quarters`` of silence follow the last note so a synthesiser's release is not cut.
    """
    if not tracks:
        raise ValueError("need at least one track")
    if len(tracks) > 15:
        raise ValueError(f"at most 15 melodic tracks fit in 16 MIDI channels, got {len(tracks)}")
    if not 0 < tempo_bpm <= 1000:
        raise ValueError(f"tempo_bpm must be positive, got {tempo_bpm}")

    def tick(q: float) -> int:
        return int(round(q * ticks_per_quarter))

    last = max((n.onset + n.duration for t in tracks for n in t.notes), default=0.0)
    end_tick = tick(last + tail_quarters)
    us_per_quarter = int(round(60_000_000 / tempo_bpm))
    tempo_track = [(0, 0, b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big"))]
    chunks = [_track_chunk(tempo_track, end_tick)]
    channels = [c for c in range(16) if c != PERCUSSION_CHANNEL]
    for track, ch in zip(tracks, channels):
        events = [(0, 0, _meta_text(0x03, track.name)),
                  (0, 1, bytes([0xC0 | ch, track.program]))]
        for n in track.notes:
            vel = min(max(int(n.velocity), 1), 127)
            start, stop = tick(n.onset), max(tick(n.onset + n.duration), tick(n.onset) + 1)
            events.append((start, 3, bytes([0x90 | ch, n.pitch, vel])))
            events.append((stop, 2, bytes([0x80 | ch, n.pitch, 0])))
        chunks.append(_track_chunk(events, end_tick))
    header = _chunk(b"MThd", struct.pack(">HHH", 1, len(chunks), ticks_per_quarter))
    return header + b"".join(chunks)
