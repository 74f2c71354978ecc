"""Finding sandboxes again by their label, whatever happened to the process that made them.

Every container and volume of a sandbox carries ``ai-computer.sandbox=<id>`` and the identity of
the process that owns it (``ai-computer.owner-pid`` and ``ai-computer.owner``). ``ai-computer
gc`` (and the first sandbox start of each process) removes sandboxes whose owner is gone.

Blocking (docker-py) functions: call them from worker threads in async code.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import docker.errors

from .engine import docker_client, remove_quietly

log = logging.getLogger(__name__)

SANDBOX_LABEL = "ai-computer.sandbox"
"""Label carried by every container and volume of a sandbox; its value is the sandbox id."""
OWNER_PID_LABEL = "ai-computer.owner-pid"
"""The pid of the process that owns the sandbox."""
OWNER_LABEL = "ai-computer.owner"
"""``host/boot id/pid namespace/pid/start time`` of the owner: tells a dead owner from a new
process that reuses its pid."""
ROLE_LABEL = "ai-computer.role"
"""``kernel`` (the container running the kernel), ``relay`` (forwards its messages) or ``holder``
(keeps the workspace mounted)."""
MEMORY_LIMIT_LABEL = "ai-computer.memory-limit"
CPU_LIMIT_LABEL = "ai-computer.cpu-limit"
DISK_LIMIT_LABEL = "ai-computer.disk-limit"
"""The kernel container's limits (bytes, cores, bytes), for ``ai-computer ps``."""

# A runtime directory with no container or volume is left alone this long: its sandbox may be
# starting (the directory is made just before the container).
_RUNTIME_DIR_GRACE = 120.0


@dataclass(frozen=True)
class Owner:
    """The process that created a sandbox, precisely enough to tell whether it still runs."""

    host: str
    boot_id: str
    pid_namespace: str
    pid: int
    start_time: str

    def label(self) -> str:
        """The value of the ``ai-computer.owner`` label."""
        return "/".join(
            [self.host, self.boot_id, self.pid_namespace, str(self.pid), self.start_time]
        )

    @classmethod
    def from_label(cls, value: str) -> Owner | None:
        """Parse an ``ai-computer.owner`` label; None when it is not one."""
        parts = value.split("/")
        if len(parts) != 5 or not parts[3].isdigit():
            return None
        host, boot_id, namespace, pid, start = parts
        return cls(host, boot_id, namespace, int(pid), start)


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """A process's start time (clock ticks since boot), or "" when no such process exists."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def current_owner() -> Owner:
    """This process, as written into the labels of the sandboxes it creates."""
    return _owner(os.getpid())


@cache
def _owner(pid: int) -> Owner:
    """The owner for ``pid`` (constant while the process lives; a forked child has its own)."""
    return Owner(
        socket.gethostname(),
        _read("/proc/sys/kernel/random/boot_id"),
        _pid_namespace(),
        pid,
        _start_time(pid),
    )


def owner_labels() -> dict[str, str]:
    """The owner labels of every container and volume this process creates."""
    owner = current_owner()
    return {OWNER_PID_LABEL: str(owner.pid), OWNER_LABEL: owner.label()}


def owner_alive(labels: dict[str, str]) -> bool | None:
    """Whether the owner named by ``labels`` still runs; None when this host cannot tell
    (the owner lives on another host or in another pid namespace)."""
    here = current_owner()
    owner = Owner.from_label(labels.get(OWNER_LABEL, ""))
    if owner is None:  # made by an older version: only the pid is known
        pid = labels.get(OWNER_PID_LABEL, "")
        return bool(_start_time(int(pid))) if pid.isdigit() else None
    if owner.host != here.host:
        return None
    if owner.boot_id != here.boot_id:
        return False  # the host has rebooted since: every process of that boot is gone
    if owner.pid_namespace != here.pid_namespace:
        return None
    return _start_time(owner.pid) == owner.start_time  # a reused pid has another start time


def default_runtime_root() -> str:
    """Where per-sandbox runtime directories live (kept short: socket paths allow ~107 bytes)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "ai-computer")
    return f"/tmp/ai-computer-{os.getuid()}"


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


@dataclass
class SandboxInfo:
    """One sandbox as Docker knows it (``ai-computer ps``)."""

    sandbox_id: str
    status: str = "no container"
    created: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def owner_pid(self) -> int | None:
        """The pid of the owning process, if recorded."""
        pid = self.labels.get(OWNER_PID_LABEL, "")
        return int(pid) if pid.isdigit() else None

    @property
    def owner_alive(self) -> bool | None:
        """Whether the owning process still runs (None: cannot tell from this host)."""
        return owner_alive(self.labels) if self.labels else None

    @property
    def age(self) -> float | None:
        """Seconds since the sandbox's oldest object was created."""
        return None if self.created is None else max(time.time() - self.created, 0.0)


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


@cache
def collect_garbage_in_background() -> None:
    """Start one ``collect_garbage`` in a worker thread (once per process; errors are logged)."""

    def collect() -> None:
        try:
            removed = collect_garbage()
        except Exception as exc:  # never disturb the caller: this is housekeeping
            log.info("removing orphaned sandboxes failed: %s", exc)
            return
        if removed:
            log.info("removed %d orphaned sandbox(es): %s", len(removed), ", ".join(removed))

    threading.Thread(target=collect, name="ai-computer-gc", daemon=True).start()
