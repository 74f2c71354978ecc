"""Jupyter Server and nbclient integration: the resource meter's server extension and
``ai-computer run-notebook``."""
