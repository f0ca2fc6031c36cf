"""Evaluation: a packaged sound embedding (aiSFX), Frechet distance, label accuracy over a caption
taxonomy, and ``audiodiff evaluate``. Import the submodules; this package imports nothing heavy."""
