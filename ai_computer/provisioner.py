"""DockerSandboxProvisioner: a jupyter_client kernel provisioner that runs each kernel in a
resource-limited, hardened Docker container.

The kernel talks ZMQ over ``ipc://`` sockets, so the container needs no network at all. Its
sockets live on a small tmpfs volume of its own (see ``container_specs``), shared read-only with
the relay: nothing the sandbox can write is on the host's disk. The connection file comes from a
host directory mounted read-only, and the kernel starts with ``python -P`` so that nothing planted
in /workspace (an ``ipykernel_launcher.py``, say) runs in its place.

The host never connects to the kernel's sockets: a relay container (``inside/relay.py``, its own
memory limit, a uid of its own) forwards every message between them and sockets of its own, in a
directory the sandbox cannot see, and refuses messages no real kernel sends. libzmq assembles a
whole many-part message before anyone sees it, so a message too big to hold kills the relay
(reported as such), never the host's process.

The workspace (``/workspace``) and the packages directory are size-limited tmpfs volumes: writes
past ``disk_limit`` fail with ENOSPC, and the host's disk is never written. A small "holder"
container keeps them mounted between kernel containers, so they outlive kernel restarts (each
launch is a new container); they are removed with the sandbox. Their pages count against the
sandbox's memory limit (see SECURITY.md).

Only the traits below can be configured: any other kernelspec config key (``privileged``,
``cap_add``, ``devices``, ``volumes``, ...) is refused, so isolation cannot be weakened by
configuration. Code that really needs a weaker sandbox must subclass and override
``container_config``.

Every object created here carries the label ``ai-computer.sandbox=<kernel id>`` so that it can
always be found again (``ai-computer gc``), whatever happened to the process that made it.

docker-py is synchronous: every call runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from jupyter_client.session import new_id_bytes
from traitlets import Dict, Float, Int, TraitError, Unicode, Union, default, validate

from . import limits, prestart
from .container_specs import (
    CONTAINER_CONNECTION_DIR,
    CONTAINER_RUNTIME_DIR,
    SandboxSpec,
    holder_container,
    kernel_container,
    relay_container,
    volumes,
)
from .engine import docker_client, remove_quietly
from .errors import ImageNotFoundError, SandboxError, SandboxStartError
from .inside import kernel_line, source
from .inside.relay import PORTS as _RELAY_PORTS
from .inside.relay import REFUSED
from .sandboxes import (
    default_runtime_root,
    owner_labels,
    remove_sandbox,
)

# -P: /workspace (the working directory) is not on sys.path while the kernel starts.
DEFAULT_KERNEL_ARGV = ["python", "-P", "-m", "ipykernel_launcher", "-f", "{connection_file}"]

# Ports of an ipc:// transport are file-name suffixes: fixed ones are fine in a private directory.
_IPC_PORTS = {f"{name}_port": port for name, port in _RELAY_PORTS.items()}
# Room left in a message for what the relay counts besides header and content (routing ids,
# signature, metadata): the kernel's bound on one message (inside/bounded_messages.py).
_MESSAGE_MARGIN = 64 * 1024


def kernel_arguments(message_limit: int) -> list[str]:
    """ipykernel options for a sandbox kernel: no history database, and the start-up patches
    of ``inside/`` (the working directory on sys.path, bounded streams and messages)."""
    return [
        "--HistoryManager.enabled=False",
        kernel_line("working_directory.py"),
        kernel_line("stream_limits.py"),
        kernel_line("bounded_messages.py", LIMIT=message_limit - _MESSAGE_MARGIN),
    ]


# The relay binds its sockets within this time of its container starting, or it is a failure.
_BIND_TIMEOUT = 60.0
# What traitlets' Configurable takes besides traits, when the provisioner is built directly.
_CONFIGURABLE_KEYWORDS = {"parent", "config", "log"}

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerExit:
    """How a sandbox container ended: read from Docker before the container is removed."""

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
    """A one-line account of why a kernel's container ended."""
    if ended.oom_killed:
        return f"killed: memory limit {limits.format_size(memory_limit)} exceeded"
    if ended.exit_code is None:
        return f"kernel died ({ended.error or 'unknown cause'})"
    if ended.signal_name:
        return f"kernel died (exit code {ended.exit_code}, {ended.signal_name})"
    return f"kernel died (exit code {ended.exit_code})"


def _private_directory(path: Path, *, check_mode: bool = True) -> None:
    """Create ``path`` as a 0700 directory owned by us, refusing one that someone else planted.

    An existing directory open to others is refused rather than changed: a mistaken
    ``runtime_root`` (``/usr``, say) must never have its permissions altered.
    """
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SandboxStartError(
            f"runtime directory {path} is not a directory owned by uid {os.getuid()}; "
            "remove it or set DockerSandboxProvisioner.runtime_root"
        )
    if check_mode and info.st_mode & 0o022:
        raise SandboxStartError(
            f"runtime directory {path} is writable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}); remove it or set "
            "DockerSandboxProvisioner.runtime_root"
        )


def _start_container(config: dict[str, Any], role: str) -> str:
    """Create and start a container (removed again if it cannot start); return its id."""
    client = docker_client()
    try:
        container = client.containers.create(**config)
    except docker.errors.ImageNotFound as exc:
        message = (
            f"sandbox image {config['image']!r} is not in the Docker engine; build it with "
            "`ai-computer image build` (or `python -m ai_computer image build`)"
        )
        raise ImageNotFoundError(message) from exc
    except docker.errors.DockerException as exc:
        raise SandboxStartError(f"could not create the {role} container: {exc}") from exc
    try:
        container.start()
    except docker.errors.DockerException as exc:
        container.remove(force=True)
        raise SandboxStartError(f"could not start the {role} container: {exc}") from exc
    return str(container.id)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


class DockerSandboxProvisioner(KernelProvisionerBase):
    """Runs a kernel in a hardened, resource-limited Docker container with no network.

    Configure it through a kernelspec's ``metadata.kernel_provisioner.config``: each key is a
    trait below (``memory_limit``, ``cpu_limit``, ``image``, ...).
    """

    image = Unicode(
        help="Docker image of the sandbox (default: the one `ai-computer image build` makes)."
    ).tag(config=True)
    memory_limit = Union(
        [Int(), Unicode()],
        default_value=limits.DEFAULT_MEMORY_LIMIT,
        help="Memory limit ('512M', '1G' or bytes; 128M to 2G). Swap is off.",
    ).tag(config=True)
    cpu_limit = Float(limits.DEFAULT_CPU_LIMIT, help="CPU limit in cores (0.1 to 4).").tag(
        config=True
    )
    pids_limit = Int(
        256, help="Most processes and threads the sandbox may have (stops fork bombs)."
    ).tag(config=True)
    tmp_size = Unicode(
        "64M", help="Size of the writable /tmp and home tmpfs (each; counted against memory)."
    ).tag(config=True)
    disk_limit = Union(
        [Int(), Unicode()],
        default_value=limits.DEFAULT_DISK_LIMIT,
        help="Size of /workspace and of /opt/packages (each; 16M to 2G). They are tmpfs volumes: "
        "writes past the size fail with ENOSPC, and their files count against memory_limit.",
    ).tag(config=True)
    environment = Dict(
        value_trait=Unicode(),
        help="Environment variables for the kernel. Nothing from the host's environment is passed.",
    ).tag(config=True)
    runtime_root = Unicode(
        help="Host directory holding one runtime directory (connection file, sockets) per sandbox."
    ).tag(config=True)
    sandbox_user = Unicode(
        help="uid:gid the kernel runs as: never root, never the uid of this process "
        "(default 1000:1000, or 1001:1001 when this process runs as uid 1000)."
    ).tag(config=True)
    log_max_size = Unicode("1m", help="Largest size of the container's log.").tag(config=True)
    message_limit = Union(
        [Int(), Unicode()],
        default_value=64 * limits.MIB,
        help="Largest message (all its parts) the relay passes from the kernel (1M to 256M); a "
        "larger one ends the relay and the kernel must be restarted.",
    ).tag(config=True)
    relay_memory_limit = Union(
        [Int(), Unicode()],
        default_value=256 * limits.MIB,
        help="Memory limit of the relay between the kernel and this process (64M to 2G). It "
        "must hold a few messages of message_limit; a message too big to hold kills it.",
    ).tag(config=True)
    stop_timeout = Float(5.0, help="Seconds the kernel is given to exit before it is killed.").tag(
        config=True
    )
    prestart = Int(
        0,
        help="Spare sandboxes of this configuration kept started in this process (0 to 8), so "
        "that a kernel launch takes one at once (see prestart.py). Each costs its memory while "
        "idle. For Jupyter servers; leave it 0 for one-off runs.",
    ).tag(config=True)

    @default("image")
    def _default_image(self) -> str:
        from .image import default_image_tag

        return default_image_tag()

    @default("runtime_root")
    def _default_runtime_root(self) -> str:
        return default_runtime_root()

    @default("sandbox_user")
    def _default_sandbox_user(self) -> str:
        # The runtime directory is closed to the sandbox by ownership: the sandbox's uid must
        # differ from ours, or code inside could open it again.
        return "1001:1001" if os.getuid() == 1000 else "1000:1000"

    @validate("memory_limit")
    def _validate_memory_limit(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_memory_limit, proposal["value"])

    @validate("cpu_limit")
    def _validate_cpu_limit(self, proposal: dict[str, Any]) -> float:
        return self._checked(limits.parse_cpu_limit, proposal["value"])

    @validate("pids_limit")
    def _validate_pids_limit(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 32 <= value <= 4096:
            raise TraitError(f"pids_limit {value} is out of range (allowed: 32 to 4096)")
        return value

    @validate("disk_limit")
    def _validate_disk_limit(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_disk_limit, proposal["value"])

    @validate("message_limit")
    def _validate_message_limit(self, proposal: dict[str, Any]) -> int:
        return self._sized("message_limit", proposal["value"], limits.MIB, 256 * limits.MIB)

    @validate("relay_memory_limit")
    def _validate_relay_memory_limit(self, proposal: dict[str, Any]) -> int:
        return self._sized("relay_memory_limit", proposal["value"], 64 * limits.MIB, limits.GIB * 2)

    def _sized(self, name: str, value: Any, smallest: int, largest: int) -> int:
        size = self._checked(partial(limits.parse_size, name=name), value)
        if not smallest <= size <= largest:
            allowed = f"{limits.format_size(smallest)} to {limits.format_size(largest)}"
            raise TraitError(f"{name} {value!r} is out of range (allowed: {allowed})")
        return size

    @validate("prestart")
    def _validate_prestart(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_prestart, proposal["value"])

    @validate("tmp_size")
    def _validate_tmp_size(self, proposal: dict[str, Any]) -> str:
        size = self._checked(partial(limits.parse_size, name="tmp_size"), proposal["value"])
        if size > limits.MAX_MEMORY_LIMIT:
            raise TraitError(f"tmp_size {proposal['value']!r} exceeds the maximum of 2G")
        return str(proposal["value"])

    @validate("log_max_size")
    def _validate_log_max_size(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        size = self._checked(partial(limits.parse_size, name="log_max_size"), value)
        if size > 64 * limits.MIB:
            raise TraitError(f"log_max_size {value!r} exceeds the maximum of 64M")
        return value

    @validate("runtime_root")
    def _validate_runtime_root(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value):
            raise TraitError(f"runtime_root {value!r} must be an absolute path")
        return value

    @validate("sandbox_user")
    def _validate_sandbox_user(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        uid, _, gid = value.partition(":")
        if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
            raise TraitError(f"sandbox_user {value!r} must be 'uid:gid' with non-zero numbers")
        if int(uid) == os.getuid():
            raise TraitError(
                f"sandbox_user {value!r} has the uid of this process ({os.getuid()}): the "
                "sandbox's processes and files must never share the host user's uid; choose "
                "another uid"
            )
        return value

    @staticmethod
    def _checked(parse: Callable[[Any], T], value: Any) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise TraitError(str(exc)) from exc

    # -- state -------------------------------------------------------------------------------

    def __init__(self, **kwargs: Any) -> None:
        """Built by jupyter_client's provisioner factory with the kernelspec's
        ``metadata.kernel_provisioner.config`` as keywords (or directly, with traits): any key
        of that config that is not one of the traits below is refused. What the factory passes
        besides (``kernel_id``, ``kernel_spec``, ``parent``...) is left to the base class, so a
        keyword a new jupyter_client adds does not refuse every launch."""
        spec = kwargs.get("kernel_spec")
        metadata = getattr(spec, "metadata", None) or {}
        configured = (metadata.get("kernel_provisioner") or {}).get("config")
        if isinstance(configured, dict):
            given = set(configured)
        else:
            given = set(kwargs) - set(self.class_trait_names()) - _CONFIGURABLE_KEYWORDS
        unknown = sorted(given - set(self.class_trait_names(config=True)))
        if unknown:
            allowed = ", ".join(sorted(self.class_trait_names(config=True)))
            raise TraitError(
                f"unknown sandbox configuration {', '.join(map(repr, unknown))} (kernelspec "
                "metadata.kernel_provisioner.config): options that weaken isolation (privileged, "
                f"capabilities, host namespaces, devices, host mounts) are not supported; allowed: "
                f"{allowed}"
            )
        super().__init__(**kwargs)
        self.workspace_reset = False
        """True when the last launch found the workspace unmounted (so emptied), e.g. because
        the Docker engine restarted."""
        self._container_id: str | None = None
        self._launched = False
        self._exit_future: asyncio.Future[ContainerExit] | None = None
        self._relay_id: str | None = None
        self._relay_exit_future: asyncio.Future[ContainerExit] | None = None
        self.last_exit: ContainerExit | None = None
        """How the most recent container ended (kept across restarts, for reporting)."""
        self._sandbox_id: str | None = None  # a spare's, once this kernel took it
        self._took_spare = False

    @property
    def sandbox_id(self) -> str:
        """The sandbox's id, stable across kernel restarts: the kernel id, or the id of the
        spare sandbox the kernel took (``prestart``)."""
        return self._sandbox_id or str(self.kernel_id)

    @property
    def sandbox_dir(self) -> Path:
        """This sandbox's private directory on the host (mode 0700): runtime and relay dirs."""
        return Path(self.runtime_root) / self.sandbox_id

    @property
    def runtime_dir(self) -> Path:
        """The kernel's connection file on the host: mounted read-only in the kernel's
        container (the kernel's sockets are on the sockets volume)."""
        return self.sandbox_dir / "kernel"

    @property
    def relay_dir(self) -> Path:
        """The relay's sockets, the only ones the host connects to: unseen by the sandbox."""
        return self.sandbox_dir / "relay"

    @property
    def container_id(self) -> str | None:
        """Id of the current kernel container, if one was launched and not yet cleaned up."""
        return self._container_id

    @property
    def relay_id(self) -> str | None:
        """Id of the current relay container, if one was launched and not yet cleaned up."""
        return self._relay_id

    @property
    def has_process(self) -> bool:
        return self._launched

    # -- launch ------------------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Prepare the runtime directory, the connection files and the container command.

        The host's environment and working directory (``env``, ``cwd`` from the caller) are
        deliberately dropped: the kernel runs in /workspace with only the variables we set.
        """
        kwargs = await super().pre_launch(**kwargs)
        kwargs.pop("env", None)
        kwargs.pop("cwd", None)
        if self.prestart and not self.connection_info:  # a first launch: a spare will do
            spare = await prestart.take(self)
            if spare is not None:
                self._take_over(spare)
                kwargs["cmd"] = []  # nothing to launch: launch_kernel() returns the spare's
                return kwargs
        await asyncio.to_thread(self._prepare_runtime_dir)
        argv = list(self.kernel_spec.argv) if self.kernel_spec and self.kernel_spec.argv else []
        argv = argv or list(DEFAULT_KERNEL_ARGV)
        connection_file = f"{CONTAINER_CONNECTION_DIR}/connection.json"
        kernel_cmd = [arg.replace("{connection_file}", connection_file) for arg in argv]
        if os.path.basename(kernel_cmd[0]).startswith("python") and "-P" not in kernel_cmd:
            kernel_cmd.insert(1, "-P")  # a kernelspec written before -P was in the default
        extra = kwargs.pop("extra_arguments", None) or []
        kwargs["cmd"] = [*kernel_cmd, *kernel_arguments(int(self.message_limit)), *extra]
        return kwargs

    def _prepare_runtime_dir(self) -> None:
        root = Path(self.runtime_root)
        _private_directory(root)
        _private_directory(self.sandbox_dir)
        # Inside our private directories. The kernel's is read-only in its container (0755:
        # the kernel, another uid, reads the connection file); the relay (another uid again)
        # binds its sockets in its own, which only its container mounts.
        for directory, mode in ((self.runtime_dir, 0o755), (self.relay_dir, 0o777)):
            _private_directory(directory, check_mode=False)
            # Stale sockets of an earlier relay would look like the new one's (see _await_bind).
            for entry in list(directory.iterdir()):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            directory.chmod(mode)
        if not self.connection_info:
            key = getattr(getattr(self.parent, "session", None), "key", None) or new_id_bytes()
            info: dict[str, Any] = {
                "transport": "ipc",
                "ip": str(self.relay_dir / "kernel"),
                "key": key,
                "signature_scheme": "hmac-sha256",
                "kernel_name": self.kernel_spec.name if self.kernel_spec else "",
                **_IPC_PORTS,
            }
            self.connection_info = info  # type: ignore[assignment]  # KernelConnectionInfo is loose
        inside = dict(self.connection_info)
        inside["ip"] = f"{CONTAINER_RUNTIME_DIR}/kernel"
        key = inside["key"]
        inside["key"] = key.decode() if isinstance(key, bytes) else key
        path = self.runtime_dir / "connection.json"
        path.write_text(json.dumps(inside))
        path.chmod(0o644)

    def _take_over(self, spare: DockerSandboxProvisioner) -> None:
        """Become the provisioner of a launched spare sandbox (its kernel is this kernel now)."""
        self._sandbox_id, self._took_spare = spare.sandbox_id, True
        self.connection_info = spare.connection_info
        self._container_id, self._relay_id = spare.container_id, spare.relay_id
        self._exit_future, self._relay_exit_future = spare._exit_future, spare._relay_exit_future
        self.workspace_reset = spare.workspace_reset
        self._launched = True

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Create and start the kernel's container; return the host-side connection info once
        the kernel has bound its sockets (or has exited: the caller's handshake reports that)."""
        if self._took_spare:
            self._took_spare = False
        else:
            await self._launch(cmd)
        if self.prestart:  # after this kernel's own start, which spares would slow down
            prestart.replenish(self)
        if self.parent is not None:
            # jupyter_client writes the host side's connection file (the key included) where
            # it is told: in the sandbox's private directory, removed with the sandbox, rather
            # than the Jupyter runtime directory, where a killed process would leave it.
            self.parent.connection_file = str(self.sandbox_dir / "connection.json")
        return self.connection_info

    async def _launch(self, cmd: list[str]) -> None:
        await asyncio.to_thread(self._ensure_volumes)
        # The holder and the relay start alongside the kernel's container: little time is
        # added to a start.
        started, holder, relay = await asyncio.gather(
            asyncio.to_thread(_start_container, self.container_config(cmd), "sandbox"),
            asyncio.to_thread(self._ensure_holder),
            asyncio.to_thread(_start_container, self.relay_config(), "relay"),
            return_exceptions=True,
        )
        failure = next((r for r in (started, holder, relay) if isinstance(r, BaseException)), None)
        if failure is not None:
            for made in (started, relay):
                if isinstance(made, str):
                    await asyncio.to_thread(self._remove, made, False)
            raise failure
        assert isinstance(started, str) and isinstance(relay, str) and isinstance(holder, bool)
        self._container_id, self._relay_id, self.workspace_reset = started, relay, holder
        self._launched = True
        self._exit_future = self._watch(started)
        self._relay_exit_future = self._watch(relay)
        await self._await_bind()

    def _watch(self, container_id: str) -> asyncio.Future[ContainerExit]:
        """A future that resolves when the container exits (watched in a dedicated thread)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ContainerExit] = loop.create_future()
        threading.Thread(
            target=self._watch_exit,
            args=(container_id, loop, future),
            name=f"ai-computer-wait-{container_id[:12]}",
            daemon=True,
        ).start()
        return future

    def _socket_paths(self) -> list[Path]:
        return [self.relay_dir / f"kernel-{port}" for port in _IPC_PORTS.values()]

    async def _await_bind(self) -> None:
        """Wait until the relay's sockets exist (the host connects to those). Requests sent
        before the kernel has bound its own wait in the relay; the client's handshake tells
        when the kernel answers.

        There is no event for "a socket file appeared" short of inotify, hence the short polls.
        """
        assert self._exit_future is not None and self._relay_exit_future is not None
        deadline = time.monotonic() + _BIND_TIMEOUT
        paths = self._socket_paths()
        while not all(_is_socket(path) for path in paths):
            if self._exit_future.done() or self._relay_exit_future.done():
                return
            if time.monotonic() > deadline:
                await self.kill()
                raise SandboxStartError(
                    f"the sandbox relay did not create its sockets within {_BIND_TIMEOUT:g} s"
                )
            await asyncio.sleep(0.005)

    @property
    def spec(self) -> SandboxSpec:
        """This sandbox's containers' inputs: its identity, limits and host directories."""
        return SandboxSpec(
            sandbox_id=self.sandbox_id,
            image=self.image,
            user=self.sandbox_user,
            memory_limit=int(self.memory_limit),
            cpu_limit=self.cpu_limit,
            pids_limit=self.pids_limit,
            disk_limit=int(self.disk_limit),
            tmp_size=limits.parse_size(self.tmp_size, name="tmp_size"),
            log_max_size=self.log_max_size,
            message_limit=int(self.message_limit),
            relay_memory_limit=int(self.relay_memory_limit),
            runtime_dir=str(self.runtime_dir),
            relay_dir=str(self.relay_dir),
            environment={
                **(dict(self.kernel_spec.env) if self.kernel_spec else {}),
                **self.environment,
            },
            owner_labels=owner_labels(),
        )

    def container_config(self, cmd: list[str]) -> dict[str, Any]:
        """The kernel's container (``container_specs.kernel_container``): the one place a
        subclass may change what a kernel's container is."""
        return kernel_container(self.spec, cmd)

    def relay_config(self) -> dict[str, Any]:
        """The relay's container (``container_specs.relay_container``)."""
        return relay_container(self.spec, source("relay.py"))

    def holder_config(self) -> dict[str, Any]:
        """The holder's container (``container_specs.holder_container``)."""
        return holder_container(self.spec)

    def _ensure_volumes(self) -> None:
        """Create the workspace, packages and sockets volumes (size-limited tmpfs) unless they
        exist."""
        client = docker_client()
        for volume in volumes(self.spec):
            try:
                client.volumes.get(volume["name"])
            except docker.errors.NotFound:
                try:
                    client.volumes.create(**volume)
                except docker.errors.DockerException as exc:
                    message = f"could not create the sandbox volume {volume['name']}: {exc}"
                    raise SandboxStartError(message) from exc

    def _ensure_holder(self) -> bool:
        """Make sure the holder runs; True when it was not running (the volumes were empty)."""
        client = docker_client()
        try:
            holder = client.containers.get(self.spec.holder_name)
        except docker.errors.NotFound:
            holder = None
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not inspect the sandbox holder: {exc}") from exc
        try:
            if holder is None:
                _start_container(self.holder_config(), "holder")
                return False  # a new sandbox: its volumes are new anyway
            if holder.status != "running":
                holder.start()
                return True
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not start the sandbox holder: {exc}") from exc
        return False

    def _watch_exit(
        self,
        container_id: str,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[ContainerExit],
    ) -> None:
        """Block (in a dedicated thread) until the container exits; record how it ended."""
        try:
            api = docker_client().api
            api.wait(container_id, timeout=None)
            state = api.inspect_container(container_id)["State"]
            code, oom_killed = state.get("ExitCode"), bool(state.get("OOMKilled"))
            reason = None
            if code == REFUSED and not oom_killed:  # a relay's last words (relay.py)
                last = api.logs(container_id, stdout=False, stderr=True, tail=1)
                reason = last.decode("utf-8", "replace").strip()[:200] or None
            ended = ContainerExit(container_id, code, oom_killed, reason=reason)
        except Exception as exc:  # the engine went away, or the container was removed under us
            ended = ContainerExit(
                container_id, None, False, error=f"lost track of the container: {exc}"
            )

        def resolve() -> None:
            if not future.done():
                future.set_result(ended)

        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    async def exited(self) -> ContainerExit:
        """Wait until the current container exits (without blocking the loop); say how it ended."""
        if self._exit_future is None:
            raise SandboxError("no sandbox container has been launched")
        ended = await asyncio.shield(self._exit_future)
        self.last_exit = ended
        return ended

    async def relay_exited(self) -> ContainerExit:
        """Wait until the current relay exits; say how it ended."""
        if self._relay_exit_future is None:
            raise SandboxError("no sandbox relay has been launched")
        return await asyncio.shield(self._relay_exit_future)

    # -- the Popen-like contract -------------------------------------------------------------

    async def poll(self) -> int | None:
        """None while the kernel's container and its relay run, else an exit code (-1 if it
        was lost): without its relay a kernel cannot be reached, so Jupyter restarts both."""
        if self._exit_future is not None and self._exit_future.done():
            ended = self._exit_future.result()
            self.last_exit = ended
        elif self._relay_exit_future is not None and self._relay_exit_future.done():
            ended = self._relay_exit_future.result()
        else:
            return None
        return ended.exit_code if ended.exit_code is not None else -1

    async def wait(self) -> int | None:
        """Wait for the container to exit; the process is then no longer ours."""
        if self._exit_future is None:
            return None
        ended = await self.exited()
        self._launched = False
        return ended.exit_code

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel (the container's init forwards it to the kernel process)."""
        if self._container_id is None or self._exit_future is None or self._exit_future.done():
            return
        await asyncio.to_thread(self._signal_container, self._container_id, signum)

    @staticmethod
    def _signal_container(container_id: str, signum: int) -> None:
        try:
            docker_client().api.kill(container_id, signal=int(signum))
        except docker.errors.APIError as exc:
            # 404/409: the container is gone or no longer running, which is what was wanted.
            if exc.status_code not in (404, 409):
                raise

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return min(recommended, self.stop_timeout)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container; unless restarting, also the workspace volume and runtime dir."""
        container_id, self._container_id = self._container_id, None
        relay_id, self._relay_id = self._relay_id, None
        if container_id is not None and self._exit_future is not None:
            if not self._exit_future.done():
                await asyncio.to_thread(self._signal_container, container_id, signal.SIGKILL)
            await self.exited()
        self._launched = False
        if relay_id is not None and restart:  # a new launch starts a new relay (libzmq state
            await asyncio.to_thread(self._remove, relay_id, False)  # and all); else see below
        await asyncio.to_thread(self._remove, container_id, not restart)
        if not restart:
            self.connection_info = {}

    def _remove(self, container_id: str | None, everything: bool) -> None:
        if everything:  # the container, the workspace volume and the runtime directory
            remove_sandbox(self.sandbox_id, self.runtime_root)
        elif container_id is not None:
            remove_quietly(partial(docker_client().api.remove_container, container_id, force=True))

    def resolve_path(self, path: str) -> str | None:
        # Host paths mean nothing inside the sandbox; do not reveal the container's layout.
        return None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info["container_id"] = self._container_id
        info["relay_id"] = self._relay_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self._container_id = provisioner_info.get("container_id")
        self._relay_id = provisioner_info.get("relay_id")
