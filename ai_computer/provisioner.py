"""DockerSandboxProvisioner: a jupyter_client kernel provisioner that runs each kernel in a
resource-limited, hardened Docker container.

The kernel talks ZMQ over ``ipc://`` sockets in a per-kernel runtime directory that is
bind-mounted into the container, so the container needs no network at all. The workspace
(``/workspace``) is a Docker volume: it outlives kernel restarts (each launch is a new
container) and is removed with the sandbox.

Every object created here carries the label ``ai-computer.sandbox=<kernel id>`` so that it can
always be found again (``ai-computer gc``), whatever happened to the process that made it.

docker-py is synchronous: every call runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from docker.types import LogConfig, Mount, Ulimit
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from jupyter_client.session import new_id_bytes
from traitlets import Dict, Float, Int, TraitError, Unicode, Union, default, validate

from . import limits
from .engine import docker_client, remove_quietly
from .errors import ImageNotFoundError, SandboxError, SandboxStartError
from .sandboxes import SANDBOX_LABEL, default_runtime_root, remove_sandbox

CONTAINER_RUNTIME_DIR = "/run/ai-computer"
CONTAINER_WORKSPACE = "/workspace"
CONTAINER_HOME = "/home/sandbox"
# Packages installed per session; on sys.path through a .pth file in the image.
CONTAINER_PACKAGES = "/opt/packages"
DEFAULT_KERNEL_ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]

# Ports of an ipc:// transport are file-name suffixes: fixed ones are fine in a private directory.
_IPC_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
# The kernel gets a small, explicit environment; nothing from the host's leaks in.
_KERNEL_ARGS = ["--HistoryManager.enabled=False"]

T = TypeVar("T")


async def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking (docker-py) call in a worker thread."""
    return await asyncio.to_thread(function, *args)


@dataclass(frozen=True)
class ContainerExit:
    """How a sandbox container ended: read from Docker before the container is removed."""

    container_id: str
    exit_code: int | None
    oom_killed: bool
    error: str | None = None

    @property
    def signal_name(self) -> str | None:
        """The signal that killed the kernel, when the exit code says so (128 + n)."""
        if self.exit_code is not None and self.exit_code > 128:
            try:
                return signal.Signals(self.exit_code - 128).name
            except ValueError:
                return None
        return None


def _private_directory(path: Path) -> None:
    """Create ``path`` as a 0700 directory owned by us, refusing one that someone else planted."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if path.is_symlink() or info.st_uid != os.getuid():
        raise SandboxStartError(
            f"runtime directory {path} is not a directory owned by uid {os.getuid()}; "
            "remove it or set DockerSandboxProvisioner.runtime_root"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)


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
        default_value="512M",
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
    environment = Dict(
        value_trait=Unicode(),
        help="Environment variables for the kernel. Nothing from the host's environment is passed.",
    ).tag(config=True)
    runtime_root = Unicode(
        help="Host directory holding one runtime directory (connection file, sockets) per sandbox."
    ).tag(config=True)
    sandbox_user = Unicode("1000:1000", help="uid:gid the kernel runs as (never root).").tag(
        config=True
    )
    log_max_size = Unicode("1m", help="Largest size of the container's log.").tag(config=True)
    stop_timeout = Float(5.0, help="Seconds the kernel is given to exit before it is killed.").tag(
        config=True
    )

    @default("image")
    def _default_image(self) -> str:
        from .image import default_image_tag

        return default_image_tag()

    @default("runtime_root")
    def _default_runtime_root(self) -> str:
        return default_runtime_root()

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

    @validate("sandbox_user")
    def _validate_sandbox_user(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        uid, _, gid = value.partition(":")
        if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
            raise TraitError(f"sandbox_user {value!r} must be 'uid:gid' with non-zero numbers")
        return value

    @staticmethod
    def _checked(parse: Callable[[Any], T], value: Any) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise TraitError(str(exc)) from exc

    # -- state -------------------------------------------------------------------------------

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._container_id: str | None = None
        self._launched = False
        self._exit_future: asyncio.Future[ContainerExit] | None = None
        self.last_exit: ContainerExit | None = None
        """How the most recent container ended (kept across restarts, for reporting)."""

    @property
    def sandbox_id(self) -> str:
        """The sandbox's id: the kernel id, stable across kernel restarts."""
        return str(self.kernel_id)

    @property
    def runtime_dir(self) -> Path:
        """This sandbox's runtime directory on the host."""
        return Path(self.runtime_root) / self.sandbox_id

    @property
    def volume_name(self) -> str:
        """Name of the Docker volume holding this sandbox's /workspace."""
        return f"ai-computer-{self.sandbox_id}"

    @property
    def packages_volume_name(self) -> str:
        """Name of the Docker volume holding the packages installed in this sandbox."""
        return f"ai-computer-{self.sandbox_id}-packages"

    @property
    def container_id(self) -> str | None:
        """Id of the current kernel container, if one was launched and not yet cleaned up."""
        return self._container_id

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
        await run_blocking(self._prepare_runtime_dir)
        argv = list(self.kernel_spec.argv) if self.kernel_spec and self.kernel_spec.argv else []
        argv = argv or list(DEFAULT_KERNEL_ARGV)
        connection_file = f"{CONTAINER_RUNTIME_DIR}/connection.json"
        kernel_cmd = [arg.replace("{connection_file}", connection_file) for arg in argv]
        extra = kwargs.pop("extra_arguments", None) or []
        kwargs["cmd"] = [*kernel_cmd, *_KERNEL_ARGS, *extra]
        return kwargs

    def _prepare_runtime_dir(self) -> None:
        root = Path(self.runtime_root)
        _private_directory(root)
        self.runtime_dir.mkdir(exist_ok=True)
        # The kernel (a non-root uid in the container) creates its sockets here; the 0700 parent
        # keeps other host users out.
        self.runtime_dir.chmod(0o777)
        if not self.connection_info:
            key = getattr(getattr(self.parent, "session", None), "key", None) or new_id_bytes()
            info: dict[str, Any] = {
                "transport": "ipc",
                "ip": str(self.runtime_dir / "kernel"),
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

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Create and start the kernel's container; return the host-side connection info."""
        self._container_id = await run_blocking(self._create_and_start, cmd)
        self._launched = True
        loop = asyncio.get_running_loop()
        self._exit_future = loop.create_future()
        threading.Thread(
            target=self._watch_exit,
            args=(self._container_id, loop, self._exit_future),
            name=f"ai-computer-wait-{self._container_id[:12]}",
            daemon=True,
        ).start()
        return self.connection_info

    def container_config(self, cmd: list[str]) -> dict[str, Any]:
        """The keyword arguments of ``containers.create``: limits and hardening in one place."""
        memory = int(self.memory_limit)
        threads = str(max(1, math.ceil(self.cpu_limit)))
        environment = {
            "HOME": CONTAINER_HOME,
            "PYTHONDONTWRITEBYTECODE": "1",
            # Numeric libraries size their thread pools from the host's CPU count otherwise.
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "AI_COMPUTER_SANDBOX_ID": self.sandbox_id,
            "AI_COMPUTER_MEMORY_LIMIT": str(memory),
            "AI_COMPUTER_CPU_LIMIT": f"{self.cpu_limit:g}",
            **(dict(self.kernel_spec.env) if self.kernel_spec else {}),
            **self.environment,
        }
        tmpfs_options = f"rw,nosuid,nodev,size={limits.parse_size(self.tmp_size, name='tmp_size')}"
        # Sockets must be connectable by the host user, whoever it is: hence umask 0 for the kernel.
        command = ["sh", "-c", 'umask 0000 && exec "$@"', "sh", *cmd]
        return {
            "image": self.image,
            "command": command,
            "user": self.sandbox_user,
            "working_dir": CONTAINER_WORKSPACE,
            "environment": environment,
            "labels": {
                SANDBOX_LABEL: self.sandbox_id,
                "ai-computer.memory-limit": str(memory),
                "ai-computer.cpu-limit": f"{self.cpu_limit:g}",
                "ai-computer.owner-pid": str(os.getpid()),
            },
            "network_mode": "none",
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(self.cpu_limit * 1e9),
            "pids_limit": self.pids_limit,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": tmpfs_options, CONTAINER_HOME: tmpfs_options},
            "mounts": [
                Mount(CONTAINER_RUNTIME_DIR, str(self.runtime_dir), type="bind"),
                Mount(CONTAINER_WORKSPACE, self.volume_name, type="volume"),
                Mount(CONTAINER_PACKAGES, self.packages_volume_name, type="volume"),
            ],
            "init": True,
            "ipc_mode": "private",
            "ulimits": [Ulimit(name="core", soft=0, hard=0)],
            "log_config": LogConfig(
                type="json-file", config={"max-size": self.log_max_size, "max-file": "1"}
            ),
            "detach": True,
        }

    def _create_and_start(self, cmd: list[str]) -> str:
        client = docker_client()
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            message = (
                f"sandbox image {self.image!r} is not in the Docker engine; build it with "
                "`ai-computer image build` (or `python -m ai_computer image build`)"
            )
            raise ImageNotFoundError(message) from exc
        try:
            self._ensure_volumes(client)
            container = client.containers.create(**self.container_config(cmd))
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not create the sandbox container: {exc}") from exc
        try:
            container.start()
        except docker.errors.DockerException as exc:
            container.remove(force=True)
            raise SandboxStartError(f"could not start the sandbox container: {exc}") from exc
        return str(container.id)

    def _ensure_volumes(self, client: docker.DockerClient) -> None:
        for name in (self.volume_name, self.packages_volume_name):
            try:
                client.volumes.get(name)
            except docker.errors.NotFound:
                client.volumes.create(name, labels={SANDBOX_LABEL: self.sandbox_id})

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
            ended = ContainerExit(container_id, state.get("ExitCode"), bool(state.get("OOMKilled")))
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

    # -- the Popen-like contract -------------------------------------------------------------

    async def poll(self) -> int | None:
        """None while the container runs, else its exit code (-1 if it was lost)."""
        if self._exit_future is None or not self._exit_future.done():
            return None
        ended = self._exit_future.result()
        self.last_exit = ended
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
        if self._container_id is None or await self.poll() is not None:
            return
        await run_blocking(self._signal_container, self._container_id, signum)

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
        if container_id is not None and self._exit_future is not None:
            if not self._exit_future.done():
                await run_blocking(self._signal_container, container_id, signal.SIGKILL)
            await self.exited()
        self._launched = False
        await run_blocking(self._remove, container_id, not restart)
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
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self._container_id = provisioner_info.get("container_id")
