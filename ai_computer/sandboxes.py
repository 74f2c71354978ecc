"""Finding sandboxes again by their label, whatever happened to the process that made them.

Blocking (docker-py) functions: call them from worker threads in async code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import docker.errors

from .engine import docker_client, remove_quietly
from .provisioner import SANDBOX_LABEL, default_runtime_root


def remove_sandbox(sandbox_id: str, runtime_root: str | None = None) -> None:
    """Remove every container and volume labelled with ``sandbox_id``, and its runtime directory."""
    shutil.rmtree(Path(runtime_root or default_runtime_root()) / sandbox_id, ignore_errors=True)
    client = docker_client()
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    for container in client.api.containers(all=True, filters=selector, quiet=True):
        remove_quietly(lambda cid=container["Id"]: client.api.remove_container(cid, force=True))
    for volume in client.api.volumes(filters=selector).get("Volumes") or []:
        remove_quietly(lambda name=volume["Name"]: client.api.remove_volume(name, force=True))


def container_logs(container_id: str | None, tail: int = 40) -> str:
    """The last lines of a container's log (empty if it is gone), for start-failure messages."""
    if container_id is None:
        return ""
    try:
        raw = docker_client().api.logs(container_id, tail=tail)
    except docker.errors.DockerException:
        return ""
    return raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)
