"""Conditioners: each turns user input into fields of one :class:`Conditioning`."""

from .base import Conditioning
from .text import HashTextEncoder, MiniLMEncoder, TextConditioner, TextConditionerConfig

__all__ = ["Conditioning", "HashTextEncoder", "MiniLMEncoder", "TextConditioner", "TextConditionerConfig"]
