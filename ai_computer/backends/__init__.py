"""Where sandboxes run: the seam (``base.py``) and one package per engine (``docker/``).

``backend()`` gives this process's backend by name; its package is imported on first use, so
code that never starts a sandbox (``ai-computer --help``) loads no engine client.
"""

from __future__ import annotations

import threading

from .base import Backend

BACKENDS = ("docker",)
"""The backends this version has."""

_backends: dict[str, Backend] = {}
_lock = threading.Lock()


def backend(name: str = "docker") -> Backend:
    """This process's backend ``name`` (one instance per process)."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not known (allowed: {', '.join(BACKENDS)})")
    with _lock:
        found = _backends.get(name)
        if found is None:
            from .docker.backend import DockerBackend

            found = _backends[name] = DockerBackend()
        return found
