"""The sandboxes the local Docker engine holds: removing one, listing all, collecting those
whose owner is gone (labels: ``backends/labels.py``).

Blocking (docker-py) functions: call them from worker threads in async code.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import docker.errors

from ..base import SandboxInfo
from ..labels import ROLE_LABEL, SANDBOX_LABEL, default_runtime_root
from .engine import docker_client, remove_quietly

log = logging.getLogger(__name__)

# A runtime directory with no container or volume is left alone this long: its sandbox may be
# starting (the directory is made just before the container).
_RUNTIME_DIR_GRACE = 120.0


def remove_sandbox(sandbox_id: str, runtime_root: str | None = None) -> list[str]:
    """Remove every container and volume labelled with ``sandbox_id``, and its runtime
    directory; return what is still there afterwards (nothing, normally)."""
    runtime_dir = Path(runtime_root or default_runtime_root()) / sandbox_id
    shutil.rmtree(runtime_dir, ignore_errors=True)
    client = docker_client()
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    for container in client.api.containers(all=True, filters=selector, quiet=True):
        remove_quietly(partial(client.api.remove_container, container["Id"], force=True))
    for volume in client.api.volumes(filters=selector).get("Volumes") or []:
        remove_quietly(partial(client.api.remove_volume, volume["Name"], force=True))
    left = [f"directory {runtime_dir}"] if os.path.lexists(runtime_dir) else []
    left += [
        f"container {c['Id'][:12]}"
        for c in client.api.containers(all=True, filters=selector, quiet=True)
    ]
    left += [
        f"volume {v['Name']}" for v in client.api.volumes(filters=selector).get("Volumes") or []
    ]
    return left


def container_logs(container_id: str | None, tail: int = 40) -> str:
    """The last lines of a container's log (empty if it is gone), for start-failure messages."""
    if container_id is None:
        return ""
    try:
        raw = docker_client().api.logs(container_id, tail=tail)
    except docker.errors.DockerException:
        return ""
    return raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:  # volumes: "2024-01-01T10:00:00Z" (Docker may add a zone offset)
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def list_sandboxes() -> list[SandboxInfo]:
    """Every sandbox the Docker engine holds (all owners), oldest first."""
    client = docker_client()
    selector = {"label": SANDBOX_LABEL}
    found: dict[str, SandboxInfo] = {}

    def entry(labels: dict[str, str], created: Any) -> SandboxInfo:
        sandbox_id = labels[SANDBOX_LABEL]
        info = found.setdefault(sandbox_id, SandboxInfo(sandbox_id))
        stamp = _timestamp(created)
        if stamp is not None and (info.created is None or stamp < info.created):
            info.created = stamp
        return info

    for container in client.api.containers(all=True, filters=selector):
        labels = container.get("Labels") or {}
        info = entry(labels, container.get("Created"))
        info.containers.append(container["Id"])
        if labels.get(ROLE_LABEL, "kernel") == "kernel":
            info.labels = labels
            info.status = str(container.get("State") or container.get("Status") or "")
    for volume in client.api.volumes(filters=selector).get("Volumes") or []:
        labels = volume.get("Labels") or {}
        info = entry(labels, volume.get("CreatedAt"))
        info.volumes.append(volume["Name"])
        if not info.labels:
            info.labels = labels
    return sorted(found.values(), key=lambda info: info.created or 0.0)


def collect_garbage(runtime_root: str | None = None, *, dry_run: bool = False) -> list[str]:
    """Remove the sandboxes whose owner process is gone, and orphaned runtime directories.

    Only sandboxes whose owner is known to be dead are touched: a sandbox owned by a live
    process, or by one this host cannot see, is left alone. Returns the ids removed entirely;
    one that could not be (a runtime directory this user cannot delete, say) is not among
    them, and a warning names what is left.
    """
    root = Path(runtime_root or default_runtime_root())
    sandboxes = list_sandboxes()
    removed = []
    for info in sandboxes:
        if info.labels and info.owner_alive is False:
            left = [] if dry_run else remove_sandbox(info.sandbox_id, str(root))
            if left:
                log.warning("could not remove all of sandbox %s: %s", info.sandbox_id, left)
            else:
                removed.append(info.sandbox_id)
    known = {info.sandbox_id for info in sandboxes}
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        entries = []
    for path in entries:
        if path.name in known or path.is_symlink() or not path.is_dir():
            continue
        try:
            idle = time.time() - path.lstat().st_mtime
        except OSError:
            continue
        if idle > _RUNTIME_DIR_GRACE:
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
            if os.path.lexists(path) and not dry_run:
                log.warning("could not remove the runtime directory %s", path)
            else:
                removed.append(path.name)
    return removed
