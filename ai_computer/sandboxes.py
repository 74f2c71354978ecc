"""Finding sandboxes again by their label, whatever happened to the process that made them.

Blocking (docker-py) functions: call them from worker threads in async code.
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import docker.errors

from .engine import docker_client, remove_quietly

SANDBOX_LABEL = "ai-computer.sandbox"
"""Label carried by every container and volume of a sandbox; its value is the sandbox id."""


def default_runtime_root() -> str:
    """Where per-sandbox runtime directories live (kept short: socket paths allow ~107 bytes)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "ai-computer")
    return f"/tmp/ai-computer-{os.getuid()}"


def remove_sandbox(sandbox_id: str, runtime_root: str | None = None) -> None:
    """Remove every container and volume labelled with ``sandbox_id``, and its runtime directory."""
    shutil.rmtree(Path(runtime_root or default_runtime_root()) / sandbox_id, ignore_errors=True)
    client = docker_client()
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    for container in client.api.containers(all=True, filters=selector, quiet=True):
        remove_quietly(partial(client.api.remove_container, container["Id"], force=True))
    for volume in client.api.volumes(filters=selector).get("Volumes") or []:
        remove_quietly(partial(client.api.remove_volume, volume["Name"], force=True))


def container_logs(container_id: str | None, tail: int = 40) -> str:
    """The last lines of a container's log (empty if it is gone), for start-failure messages."""
    if container_id is None:
        return ""
    try:
        raw = docker_client().api.logs(container_id, tail=tail)
    except docker.errors.DockerException:
        return ""
    return raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)
