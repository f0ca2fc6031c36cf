"""Conditioners: each turns user input into fields of one :class:`Conditioning`."""

from .base import Conditioning
from .length import SoundLengthConfig, SoundLengthHead, fit_sound_length
from .text import HashTextEncoder, MiniLMEncoder, TextConditioner, TextConditionerConfig

__all__ = ["Conditioning", "HashTextEncoder", "MiniLMEncoder", "SoundLengthConfig", "SoundLengthHead",
           "TextConditioner", "TextConditionerConfig", "fit_sound_length"]
