"""How a sandbox is found again, on any engine: labels naming it and the process that owns it.

Every object of a sandbox (containers and volumes here; services or pods elsewhere) carries
``ai-computer.sandbox=<id>`` and the identity of the process that owns it
(``ai-computer.owner-pid`` and ``ai-computer.owner``). ``ai-computer gc`` (and the first sandbox
start of each process) removes sandboxes whose owner is gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache

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
RUNTIME_LABEL = "ai-computer.runtime"
"""The kernel container's limits (bytes, cores, bytes), for ``ai-computer ps``."""


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


def owner_alive(labels: dict[str, str], *, shared: bool = False) -> bool | None:
    """Whether the owner named by ``labels`` still runs; None when this host cannot tell
    (the owner lives on another host or in another pid namespace). ``shared``: the labels
    come from an engine several machines use (a swarm), where a hostname is no proof of
    the same machine (two containers or hosts may share one), so another boot, or a label
    with only a pid, is "cannot tell" too."""
    here = current_owner()
    owner = Owner.from_label(labels.get(OWNER_LABEL, ""))
    if owner is None:  # made by an older version: only the pid is known
        pid = labels.get(OWNER_PID_LABEL, "")
        if shared or not pid.isdigit():
            return None
        return bool(_start_time(int(pid)))
    if owner.host != here.host:
        return None
    if owner.boot_id != here.boot_id:
        # On the local engine the host has rebooted since: every process of that boot is gone.
        return None if shared else False
    if owner.pid_namespace != here.pid_namespace:
        return None
    return _start_time(owner.pid) == owner.start_time  # a reused pid has another start time


def default_runtime_root() -> str:
    """Where per-sandbox runtime directories live (kept short: socket paths allow ~107 bytes)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "ai-computer")
    return f"/tmp/ai-computer-{os.getuid()}"
