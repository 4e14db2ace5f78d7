"""ganpipe: a reproducible GAN pipeline (DVC stages over a small, tested library)."""

__version__ = "0.1.0"
