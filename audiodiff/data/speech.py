"""Captioned speech synthesised with espeak-ng (Debian ``espeak-ng``, GPL-3+ program; its output
is not a derivative work of the program and carries no licence restriction).

espeak-ng writes 22.05 kHz mono 16-bit WAV at a few hundred times real time, with 100+ voices;
a voice name may carry a variant after ``+`` (``en-us+f3``, ``en+whisper``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

# Native espeak-ng voices and variants (no MBROLA voices: they need the separate mbrola program).
ENGLISH_VOICES: tuple[str, ...] = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-us-nyc",
    "en+f2", "en+f3", "en-us+f4", "en-us+f5", "en+m3", "en-us+m5", "en+m7", "en+croak",
    "en+whisper", "en+klatt", "en-us+klatt4", "en+grandma", "en+norbert",
)

# Varied English sentences: statements, questions, numbers, lists, short and long.
ENGLISH_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Please close the window before the rain starts.",
    "Is this the train that goes to the city centre?",
    "She sells sea shells by the sea shore.",
    "Turn left at the second traffic light, then keep going for two miles.",
    "I would like a cup of tea with milk and no sugar, please.",
    "The meeting has been moved to half past three on Thursday.",
    "Warning: the floor is wet and very slippery.",
    "Seven hundred and forty two people attended the concert last night.",
    "Why does the moon look bigger when it is close to the horizon?",
    "Bring apples, bread, cheese and a bottle of water for the picnic.",
    "The old lighthouse keeper climbed the stairs every evening at dusk.",
    "Good morning! Did you sleep well?",
    "Our flight to Edinburgh is delayed by forty five minutes.",
    "A gentle breeze moved the tall grass in the meadow.",
    "Thank you for calling. All of our operators are currently busy.",
    "Mix the flour and the butter, then add two eggs and stir slowly.",
    "The library opens at nine in the morning and closes at eight.",
    "Can you hear the birds singing in the garden?",
    "He parked the red car behind the bakery on Market Street.",
    "Every winter the lake freezes over and children skate on the ice.",
    "Remember to save your work before you shut down the computer.",
    "The temperature tonight will fall to minus four degrees.",
    "Where did I put my keys? I had them a minute ago.",
    "The orchestra tuned their instruments as the audience took their seats.",
    "Dogs barked in the distance while thunder rolled across the valley.",
    "Your package will arrive between ten and noon tomorrow.",
    "Quietly, the cat crept along the fence towards the sleeping pigeon.",
    "Mathematics is the language in which the universe is written.",
    "Stop! Don't touch that wire, it is still live.",
    "On the first day of spring, the market was full of fresh flowers.",
    "The answer is forty two, but what exactly was the question?",
    "Hold the railing and mind the gap between the train and the platform.",
    "We walked along the beach and collected smooth grey pebbles.",
    "Could you repeat that a little more slowly, please?",
    "Batteries not included. Keep away from fire and direct sunlight.",
)

_VOICE_RE = re.compile(r"^[A-Za-z0-9_-]+(\+[A-Za-z0-9_-]+)?$")


class SpeechSynthesisError(RuntimeError):
    """espeak-ng is missing or failed."""


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize_speech(text: str, path: str | os.PathLike[str], voice: str = "en",
                      speed: int | None = None, pitch: int | None = None) -> Path:
    """Speak ``text`` with espeak-ng into the WAV file ``path`` (22.05 kHz mono); return ``path``.

    ``speed`` is in words per minute (espeak-ng's default is 175), ``pitch`` 0-99 (default 50).
    Raises :class:`SpeechSynthesisError` if espeak-ng is missing, the voice is unknown, or the
    text is empty.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechSynthesisError(
            "espeak-ng was not found on PATH; install it (Debian/Ubuntu: apt-get install espeak-ng)")
    if not text.strip():
        raise SpeechSynthesisError("text to synthesise is empty")
    if not _VOICE_RE.match(voice):
        raise SpeechSynthesisError(f"invalid espeak-ng voice name {voice!r}")
    if speed is not None and not 80 <= speed <= 450:
        raise SpeechSynthesisError(f"speed must be 80-450 words per minute, got {speed}")
    if pitch is not None and not 0 <= pitch <= 99:
        raise SpeechSynthesisError(f"pitch must be 0-99, got {pitch}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = [exe, "-v", voice, "-w", str(tmp)]
    if speed is not None:
        cmd += ["-s", str(speed)]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    # Text goes through stdin so that text starting with '-' is never read as an option.
    proc = subprocess.run(cmd + ["--stdin"], input=text, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
        tmp.unlink(missing_ok=True)
        detail = (proc.stderr or proc.stdout).strip() or "no audio written"
        raise SpeechSynthesisError(f"espeak-ng failed for voice {voice!r}: {detail}")
    os.replace(tmp, out)
    return out


def speech_caption(voice: str) -> str:
    """A short caption for a voice, e.g. ``"a woman speaking English with an American accent"``."""
    base, _, variant = voice.partition("+")
    accents = {"en-us": "an American", "en-us-nyc": "a New York", "en-gb-scotland": "a Scottish",
               "en-gb-x-rp": "a British", "en-gb-x-gbclan": "a Lancashire",
               "en-029": "a Caribbean", "en": "a British", "en-gb": "a British"}
    accent = accents.get(base, "an English")
    if variant.startswith("f") or variant in ("grandma",):
        who = "a woman"
    elif variant == "whisper":
        who = "someone whispering"
    elif variant in ("croak", "klatt", "klatt4"):
        who = "a synthetic voice"
    else:
        who = "a man"
    verb = "" if who == "someone whispering" else " speaking"
    return f"{who}{verb} English with {accent} accent"


def sample_speech_specs(n: int, seed: int = 0) -> list[dict[str, object]]:
    """``n`` deterministic (text, voice, speed, pitch, caption) choices for a seed."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        voice = ENGLISH_VOICES[rng.randrange(len(ENGLISH_VOICES))]
        text = ENGLISH_SENTENCES[(i + rng.randrange(len(ENGLISH_SENTENCES))) % len(ENGLISH_SENTENCES)]
        specs.append({"text": text, "voice": voice, "speed": rng.randrange(130, 211, 10),
                      "pitch": rng.randrange(30, 71, 5), "caption": speech_caption(voice)})
    return specs
