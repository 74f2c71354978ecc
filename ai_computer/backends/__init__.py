"""Where sandboxes run: the seam (``base.py``) and one package per engine (``docker/``,
``swarm/``).

``backend()`` gives this process's backend by name; its package is imported on first use, so
code that never starts a sandbox (``ai-computer --help``) loads no engine client. Without a
name it is the process's default: ``AI_COMPUTER_BACKEND`` (``docker`` unless set), read at the
call, so that ``ai-computer serve --backend swarm`` and the processes it starts (its watchdog)
agree.
"""

from __future__ import annotations

import os
import threading

from .base import Backend

BACKENDS = ("docker", "swarm")
"""The backends this version has."""
BACKEND_VARIABLE = "AI_COMPUTER_BACKEND"

_backends: dict[str, Backend] = {}
_lock = threading.Lock()


def default_backend_name() -> str:
    """The backend of this process when none is named (``AI_COMPUTER_BACKEND``, else docker)."""
    return os.environ.get(BACKEND_VARIABLE) or "docker"


def backend(name: str | None = None) -> Backend:
    """This process's backend ``name`` (one instance per process; default: see above)."""
    name = name or default_backend_name()
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not known (allowed: {', '.join(BACKENDS)})")
    with _lock:
        found = _backends.get(name)
        if found is None:
            if name == "swarm":
                from .swarm.backend import SwarmBackend

                found = _backends[name] = SwarmBackend()
            else:
                from .docker.backend import DockerBackend

                found = _backends[name] = DockerBackend()
        return found
