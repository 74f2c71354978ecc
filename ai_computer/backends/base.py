"""The seam between ai-computer and the engine that runs its sandboxes.

A **sandbox** is one kernel and its companions, found again by its id whatever happened to the
process that made it. What "a container", "a volume" or "a label" is belongs to the engine:
everything engine-specific goes through :class:`Backend`, which the kernel provisioner and the
SDK's session use, and nothing else. The local Docker engine (``backends/docker``) is the first
implementation; ``docs/backends.md`` maps each method onto Docker Swarm services and Kubernetes
pods.

The terms the seam uses:

- a **spec** (:class:`SandboxSpec`): the sandbox's identity and limits, the same on any engine;
- an **instance**: one running program of a sandbox (the kernel, or its relay), named by an
  opaque id the backend chooses (a container id here, a task or pod name elsewhere); each kernel
  (re)start is a new instance, the sandbox and its ``/workspace`` stay;
- a **program run inside** (:meth:`Backend.run`): a command in the kernel's instance, as the
  sandbox user, in its limits, with stdin and stdout streamed (file operations, shell, packages).

Every method blocks (the engines' clients are synchronous): async code calls them from worker
threads, never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import limits
from .image import WORKSPACE
from .labels import OWNER_PID_LABEL, owner_alive


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox is made from: its identity and limits (the same for every engine)."""

    sandbox_id: str
    image: str
    user: str
    """uid:gid of the kernel and the programs run inside."""
    memory_limit: int
    cpu_limit: float
    pids_limit: int
    disk_limit: int
    tmp_size: int
    log_max_size: str
    message_limit: int
    relay_memory_limit: int
    runtime_root: str
    """The host directory under which the sandbox keeps its private host-side files."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """The kernel's own variables, laid over the ones every sandbox gets."""
    owner_labels: Mapping[str, str] = field(default_factory=dict)
    runtime: str = "runc"
    """Where the kernel runs: ``runc`` or ``gvisor`` (a user-space kernel between its code and
    the host's; the companions that forward its messages stay on runc)."""
    notebook_folder: str | None = None
    """A host folder the kernel sees read-only at ``/workspace/notebook`` (the notebook's
    folder, when its kernelspec asks for it), or None: nothing of the host."""


@dataclass(frozen=True)
class Launched:
    """The instances one kernel start made."""

    kernel: str
    """The kernel's instance: what is watched, signalled and runs programs."""
    relay: str
    """The relay between the kernel and the host (its exit makes the kernel unreachable)."""
    workspace_reset: bool
    """True when the start found the sandbox's storage unmounted (so emptied), e.g. after an
    engine restart (the Docker backend finds that out earlier, in :meth:`Backend.hold`)."""


@dataclass(frozen=True)
class ContainerExit:
    """How an instance ended: read from the engine before the instance is removed."""

    container_id: str
    exit_code: int | None
    oom_killed: bool
    error: str | None = None
    reason: str | None = None
    """What a relay that refused a message said about it (``relay.REFUSED``)."""

    @property
    def signal_name(self) -> str | None:
        """The signal that killed the kernel, when the exit code says so (128 + n)."""
        if self.exit_code is not None and self.exit_code > 128:
            try:
                return signal.Signals(self.exit_code - 128).name
            except ValueError:
                return None
        return None


def describe_exit(ended: ContainerExit, memory_limit: int) -> str:
    """A one-line account of why a kernel's instance ended."""
    if ended.oom_killed:
        return f"killed: memory limit {limits.format_size(memory_limit)} exceeded"
    if ended.exit_code is None:
        return f"kernel died ({ended.error or 'unknown cause'})"
    if ended.signal_name:
        return f"kernel died (exit code {ended.exit_code}, {ended.signal_name})"
    return f"kernel died (exit code {ended.exit_code})"


@dataclass
class ExecResult:
    """How a program run inside ended: its exit code, the stderr kept, and the stdout kept (if
    collected)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_dropped: int = 0
    timed_out: bool = False

    def failure(self) -> str:
        """The error of the sandbox tool's JSON report, or one built from stderr."""
        text = self.stderr.decode("utf-8", "replace").strip()
        try:
            report = json.loads(text)
        except ValueError:
            report = None
        if isinstance(report, dict) and isinstance(report.get("error"), str):
            return str(report["error"])
        return text or f"exit status {self.exit_code}"


class StopTransfer(Exception):
    """Raised by an ``on_stdout`` callback to end a program at once: its stream is closed, not
    drained (a download past its size limit)."""


class ExecHandle:
    """Lets another thread end a running program: ``abort()`` shuts its socket down, which wakes
    a reader or writer blocked on it. What a cancelled call uses, so that no worker thread stays
    behind blocked on a sandbox that stopped answering."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.aborted = False

    def attach(self, raw: socket.socket) -> None:
        """The program's stream, once it exists (shut at once if already aborted)."""
        with self._lock:
            self._socket = raw
            if self.aborted:
                shut(raw)

    def abort(self) -> None:
        """End the program's stream now (from any thread)."""
        with self._lock:
            self.aborted = True
            if self._socket is not None:
                shut(self._socket)


def shut(raw: socket.socket) -> None:
    """Shut a socket down both ways, whatever state it is in."""
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)


@dataclass
class SandboxInfo:
    """One sandbox as its engine knows it (``ai-computer ps``)."""

    sandbox_id: str
    status: str = "no container"
    created: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    node: str | None = None
    """The node that runs it, on a cluster (None: the local engine)."""
    shared: bool = False
    """On an engine several hosts use (a cluster): an owner with this host's name but another
    boot may be another machine's process, so it is "cannot tell", not gone (``labels.py``)."""

    @property
    def owner_pid(self) -> int | None:
        """The pid of the owning process, if recorded."""
        pid = self.labels.get(OWNER_PID_LABEL, "")
        return int(pid) if pid.isdigit() else None

    @property
    def owner_alive(self) -> bool | None:
        """Whether the owning process still runs (None: cannot tell from this host)."""
        return owner_alive(self.labels, shared=self.shared) if self.labels else None

    @property
    def age(self) -> float | None:
        """Seconds since the sandbox's oldest object was created."""
        return None if self.created is None else max(time.time() - self.created, 0.0)


@dataclass(frozen=True)
class ContainerUsage:
    """One reading of a kernel instance's resource use (the resource meter)."""

    running: bool
    memory_used: int
    """Bytes, without the file cache the kernel can reclaim (as ``docker stats`` counts)."""
    memory_limit: int
    """Bytes; 0 when the instance has no limit."""
    cpu_used: float
    """Cores in use, averaged over the engine's last sampling interval (about one second)."""
    started_at: datetime | None
    """When the instance (the current kernel) started."""


class Backend(ABC):
    """Where sandboxes run. One instance serves a process; every method blocks."""

    name: str = ""
    """The backend's name (``docker``)."""
    kernel_connection_file: str = ""
    """Where the kernel reads its connection file inside its instance (for its command)."""

    # -- one sandbox -------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, spec: SandboxSpec, key: bytes | str, kernel_name: str) -> dict[str, Any]:
        """Make the host side ready for a kernel start (a first start or a restart) and return
        the connection info the host's client connects with (Jupyter's fields). The kernel's
        own side is handed to the kernel here too. Called before every :meth:`start`."""

    @abstractmethod
    def connection_file(self, spec: SandboxSpec) -> str:
        """Where the host side's connection file (the key included) belongs: somewhere private
        to this user, removed with the sandbox."""

    @abstractmethod
    def start(self, spec: SandboxSpec, argv: list[str]) -> Launched:
        """Start the kernel (``argv``) and its companions with the spec's limits and labels,
        creating the sandbox's storage on its first start. On failure nothing of this start is
        left running and :class:`~ai_computer.errors.SandboxStartError` (or
        ``ImageNotFoundError``) says why."""

    def hold(self, spec: SandboxSpec, instances: list[str]) -> bool:
        """Called before a restart stops the sandbox's ``instances`` (its kernel and relay, one
        or both perhaps ended already): make sure its storage outlives them. True when the
        storage was found unmounted, so emptied (the provisioner reports it with the next
        launch's ``workspace_reset``). A backend whose storage is always held (the swarm's
        holder service) keeps this."""
        return False

    @abstractmethod
    def reachable(self, spec: SandboxSpec) -> bool:
        """Whether the host can now connect to the sandbox's endpoints (the relay has bound
        them). Does not wait."""

    @abstractmethod
    def wait(self, instance: str) -> ContainerExit:
        """Block until the instance ends; say how (exit code, signal, memory kill, or the
        relay's refusal). An instance that is lost reports ``exit_code=None`` and an error."""

    @abstractmethod
    def signal(self, instance: str, signum: int) -> None:
        """Send ``signum`` to the instance's main program; an instance already gone is fine."""

    @abstractmethod
    def remove_instance(self, instance: str) -> None:
        """Remove one ended (or running: it is killed) instance; the sandbox stays."""

    @abstractmethod
    def remove(self, sandbox_id: str, runtime_root: str | None = None) -> list[str]:
        """Remove everything of the sandbox (instances, storage, host files); return what is
        still there afterwards (nothing, normally)."""

    @abstractmethod
    def run(
        self,
        instance: str,
        argv: list[str],
        *,
        user: str,
        stdin: Iterable[bytes] | None = None,
        on_stdout: Callable[[bytes], object] | None = None,
        stdout_limit: int = 16 * limits.MIB,
        stderr_limit: int = 64 * 1024,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        workdir: str = WORKSPACE,
        handle: ExecHandle | None = None,
    ) -> ExecResult:
        """Run ``argv`` inside the instance as ``user``, from ``workdir``; feed it
        ``stdin``; pass its stdout to ``on_stdout`` (which may raise :class:`StopTransfer`) or
        keep up to ``stdout_limit`` bytes of it. ``timeout`` bounds the whole run and
        ``idle_timeout`` each wait for output: past either the stream is closed and the result
        says ``timed_out``. ``handle.abort()`` from another thread ends it at once."""

    @abstractmethod
    def logs(self, instance: str | None, tail: int = 40) -> str:
        """The last lines of an instance's output (empty if it is gone): for start failures."""

    @abstractmethod
    def architecture(self) -> str:
        """The CPU architecture sandboxes run on, as wheel tags name it (x86_64, aarch64)."""

    @abstractmethod
    def usage(self, instance: str) -> ContainerUsage | None:
        """What the kernel's instance uses now; None when it is gone. May take about a second
        (engines sample CPU use over an interval)."""

    # -- every sandbox -----------------------------------------------------------------------

    @abstractmethod
    def list_sandboxes(self) -> list[SandboxInfo]:
        """Every sandbox the engine holds (all owners), oldest first."""

    @abstractmethod
    def collect_garbage(
        self, runtime_root: str | None = None, *, dry_run: bool = False
    ) -> list[str]:
        """Remove the sandboxes whose owner process is gone; return the ids removed entirely.
        A sandbox owned by a live process, or by one this host cannot see, is left alone."""
