"""audiodiff: audio diffusion toolkit (text-to-audio, variations, vocoders, training)."""

__version__ = "0.1.0"
