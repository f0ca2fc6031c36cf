"""Inference pipelines: text-to-audio over mels (default) and over waveforms."""

from .base import AudioOutput
from .text_to_audio import TextToAudioConfig, TextToAudioPipeline
from .waveform import WaveformConfig, WaveformPipeline

__all__ = ["AudioOutput", "TextToAudioConfig", "TextToAudioPipeline", "WaveformConfig", "WaveformPipeline"]
