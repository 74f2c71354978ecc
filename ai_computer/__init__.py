"""ai-computer: a self-hosted sandbox for untrusted Python code."""

__version__ = "0.1.0"
