"""The local Docker engine as a :class:`~ai_computer.backends.base.Backend`.

A sandbox here is two or three containers and three volumes (``specs.py``): the kernel's
container, a relay container between the kernel's sockets and the host's, and, from the first
restart on, a holder that keeps the size-limited tmpfs volumes (``/workspace``, the packages,
the kernel's sockets) mounted between kernel containers (until then the relay holds them with
the kernel). The kernel talks ZMQ over ``ipc://`` sockets, so no container has a network.

On the host, each sandbox has a private directory (0700, ours) under ``runtime_root``:
``kernel/`` holds the kernel's connection file (mounted read-only in its container) and
``relay/`` the relay's sockets, the only ones the host connects to, which the sandbox cannot
see. Nothing the sandbox can write is on the host's disk.

Every object made here carries the label ``ai-computer.sandbox=<id>`` and its owner's labels
(``labels.py``), so that it can always be found again (``ai-computer gc``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import _create_container_args

from ...errors import ImageNotFoundError, RuntimeUnavailableError, SandboxStartError
from ...inside import source
from ...inside.relay import PORTS as RELAY_PORTS
from ...inside.relay import REFUSED
from ..base import (
    Backend,
    ContainerExit,
    ContainerUsage,
    ExecResult,
    Launched,
    SandboxInfo,
    SandboxSpec,
)
from . import sandboxes, specs
from .engine import docker_client, remove_quietly
from .exec import run_in_container
from .image import engine_architecture
from .usage import read_container_usage

log = logging.getLogger(__name__)

# Ports of an ipc:// transport are file-name suffixes: fixed ones are fine in a private directory.
IPC_PORTS = {f"{name}_port": port for name, port in RELAY_PORTS.items()}


def private_directory(path: Path, *, check_mode: bool = True) -> None:
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


def emptied_directory(directory: Path, mode: int) -> None:
    """Make ``directory`` (ours) empty, with ``mode``: stale sockets of an earlier relay would
    look like the new one's (see ``reachable``)."""
    private_directory(directory, check_mode=False)
    for entry in list(directory.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    directory.chmod(mode)


def _create_container(config: dict[str, Any], role: str) -> str:
    """Create a container from ``containers.create`` arguments; return its id.

    Through the low-level API: ``containers.create`` reads the new container back (one more
    engine round trip per container, on the start's critical path) to return an object we
    never use. ``_create_container_args`` is how docker-py itself turns those arguments into
    the API's.
    """
    api = docker_client().api
    try:
        arguments = _create_container_args({**config, "version": api.api_version})
        return str(api.create_container(**arguments)["Id"])
    except docker.errors.ImageNotFound as exc:
        message = (
            f"sandbox image {config['image']!r} is not in the Docker engine; build it with "
            "`ai-computer image build` (or `python -m ai_computer image build`)"
        )
        raise ImageNotFoundError(message, image=config["image"]) from exc
    except docker.errors.DockerException as exc:
        raise SandboxStartError(f"could not create the {role} container: {exc}") from exc


def _start_created(container: str, role: str) -> str:
    """Start a created container (removed again if it cannot start); return its id."""
    try:
        docker_client().api.start(container)
    except docker.errors.DockerException as exc:
        remove_quietly(partial(docker_client().api.remove_container, container, force=True))
        message = f"could not start the {role} container: {exc}"
        raise SandboxStartError(message) from exc
    return container


def _start_container(config: dict[str, Any], role: str) -> str:
    """Create and start a container (removed again if it cannot start); return its id."""
    return _start_created(_create_container(config, role), role)


def _engine_time(stamp: str) -> tuple[str, int]:
    """An engine timestamp (RFC 3339 in UTC, up to nine decimals, trailing zeros dropped) as
    something that sorts in time order: the second, and the nanoseconds."""
    second, _, fraction = stamp.rstrip("Z").partition(".")
    return second, int(fraction.ljust(9, "0")[:9] or 0)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def relay_bound(relay_dir: Path) -> bool:
    """Whether a relay has bound all its host-side sockets in ``relay_dir`` (the host connects
    to those); the Docker and Swarm backends' ``reachable``."""
    return all(_is_socket(relay_dir / f"kernel-{port}") for port in IPC_PORTS.values())


class DockerBackend(Backend):
    """Sandboxes in the Docker engine the environment names (``DOCKER_HOST`` etc.).

    ``kernel_config`` builds the kernel's container: a subclass that really needs another
    container (a weaker one, say) overrides it; nothing in a kernelspec can.
    """

    name = "docker"
    kernel_connection_file = f"{specs.CONTAINER_CONNECTION_DIR}/connection.json"

    kernel_config: Callable[[SandboxSpec, list[str]], dict[str, Any]] = staticmethod(
        specs.kernel_container
    )

    # -- one sandbox -------------------------------------------------------------------------

    def prepare(self, spec: SandboxSpec, key: bytes | str, kernel_name: str) -> dict[str, Any]:
        """Make the sandbox's private directories (emptied) and write the kernel's connection
        file; the host connects to the relay's sockets."""
        root = Path(spec.runtime_root)
        private_directory(root)
        private_directory(Path(specs.sandbox_dir(spec)))
        # Inside our private directories. The kernel's is read-only in its container (0755:
        # the kernel, another uid, reads the connection file); the relay (another uid again)
        # binds its sockets in its own, which only its container mounts.
        emptied_directory(Path(specs.runtime_dir(spec)), 0o755)
        emptied_directory(Path(specs.relay_dir(spec)), 0o777)
        info: dict[str, Any] = {
            "transport": "ipc",
            "ip": f"{specs.relay_dir(spec)}/kernel",
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": kernel_name,
            **IPC_PORTS,
        }
        inside = {
            **info,
            "ip": f"{specs.CONTAINER_RUNTIME_DIR}/kernel",
            "key": key.decode() if isinstance(key, bytes) else key,
        }
        for name, text in (("connection.json", json.dumps(inside)), ("hosts", specs.HOSTS)):
            path = Path(specs.runtime_dir(spec)) / name
            path.write_text(text)
            path.chmod(0o644)
        return info

    def runtimes(self) -> dict[str, Any]:
        """The runtimes the engine has registered (``docker info``), by name."""
        return dict(docker_client().info().get("Runtimes") or {})

    def require_gvisor(self) -> None:
        """Raise ``RuntimeUnavailableError`` naming the fix unless the engine has gVisor
        registered as ``specs.GVISOR_RUNTIME``: runsc with ``--network=none --host-uds=all``
        (in its runtimeArgs, or setup.sh's wrapper that adds them)."""
        found = self.runtimes().get(specs.GVISOR_RUNTIME)
        if isinstance(found, dict):
            path = str(found.get("path", ""))
            arguments = set(found.get("runtimeArgs") or [])
            wanted = {"--network=none", "--host-uds=all"}
            if path == specs.GVISOR_WRAPPER or ("runsc" in path and wanted <= arguments):
                return
        snippet = json.dumps(specs.GVISOR_DAEMON_CONFIG)
        raise RuntimeUnavailableError(
            f"runtime 'gvisor' is not registered with the Docker engine: install gVisor "
            f"(`apt-get install runsc`, or `bash setup.sh setup --gvisor`), add {snippet} to "
            "the engine's daemon.json (/etc/docker/daemon.json), then restart the engine",
            runtime="gvisor",
        )

    def connection_file(self, spec: SandboxSpec) -> str:
        return f"{specs.sandbox_dir(spec)}/connection.json"

    def start(self, spec: SandboxSpec, argv: list[str]) -> Launched:
        """Create the volumes unless they exist, then the kernel's container; start it while the
        relay is created and started (the relay holds the volumes with the kernel; a holder is
        made only when a restart needs one: ``hold``). What one start made is removed again if
        the other failed."""
        if spec.runtime == "gvisor":
            self.require_gvisor()
        kernel_config = self.kernel_config(spec, argv)  # every config first: nothing half-made
        relay_config = specs.relay_container(spec, source("relay.py"))
        with ThreadPoolExecutor(3, thread_name_prefix="ai-computer-start") as pool:
            list(pool.map(self._ensure_volume, specs.volumes(spec)))
            # The kernel's container is created alone (two creates at once each take about
            # twice as long) and started while the relay is made.
            created = _create_container(kernel_config, "sandbox")
            kernel = pool.submit(_start_created, created, "sandbox")
            relay = pool.submit(_start_container, relay_config, "relay")
        failure = next((f.exception() for f in (kernel, relay) if f.exception()), None)
        if failure is not None:
            for made in (kernel, relay):
                if made.exception() is None:
                    try:
                        self.remove_instance(made.result())
                    except docker.errors.DockerException as exc:  # gc finds it by its labels
                        log.warning("could not remove a half-started sandbox's container: %s", exc)
            raise failure
        return Launched(kernel=kernel.result(), relay=relay.result(), workspace_reset=False)

    def hold(self, spec: SandboxSpec, instances: list[str]) -> bool:
        """Make sure the holder runs (made at a sandbox's first restart, before its kernel or
        relay is stopped). True when the volumes had been unmounted: the sandbox's holder had
        stopped (an engine restart), or a new holder started after every one of ``instances``
        (the containers that held them) had ended, or the volumes are gone (removed with the
        sandbox meanwhile: nothing is made then, lest the engine make unlabelled ones)."""
        api = docker_client().api
        try:
            api.inspect_volume(specs.workspace_volume(spec))
        except docker.errors.NotFound:
            return True
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not inspect the sandbox's volume: {exc}") from exc
        created, stopped = self._ensure_holder(spec)
        if created is None:
            return stopped
        try:
            held_from = api.inspect_container(created)["State"]["StartedAt"]
            for instance in instances:
                try:
                    state = api.inspect_container(instance)["State"]
                except docker.errors.NotFound:
                    continue
                if state["Running"] or _engine_time(state["FinishedAt"]) > _engine_time(held_from):
                    return False
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not inspect the sandbox's containers: {exc}") from exc
        return True

    def reachable(self, spec: SandboxSpec) -> bool:
        return relay_bound(Path(specs.relay_dir(spec)))

    def _ensure_volume(self, volume: dict[str, Any]) -> None:
        # Creating a volume that exists (same name, same driver) returns it: one call.
        try:
            docker_client().volumes.create(**volume)
        except docker.errors.DockerException as exc:
            message = f"could not create the sandbox volume {volume['name']}: {exc}"
            raise SandboxStartError(message) from exc

    def _ensure_holder(self, spec: SandboxSpec) -> tuple[str | None, bool]:
        """Make sure the holder runs. Returns the id of the holder this call created (None if
        the sandbox had one), and whether the sandbox had one that was not running: its
        volumes were unmounted, so emptied.

        A new sandbox's holder is simply created (its volumes are new anyway); the name is
        taken when the sandbox has one, which is then started unless it runs."""
        api = docker_client().api
        try:
            try:
                created = _create_container(specs.holder_container(spec), "holder")
            except SandboxStartError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, docker.errors.APIError) and cause.status_code == 409):
                    raise
            else:
                return _start_created(created, "holder"), False
            if api.inspect_container(specs.holder_name(spec))["State"]["Running"]:
                return None, False
            api.start(specs.holder_name(spec))
            return None, True
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not start the sandbox holder: {exc}") from exc

    def wait(self, instance: str) -> ContainerExit:
        try:
            api = docker_client().api
            api.wait(instance, timeout=None)
            state = api.inspect_container(instance)["State"]
            code, oom_killed = state.get("ExitCode"), bool(state.get("OOMKilled"))
            reason = None
            if code == REFUSED and not oom_killed:  # a relay's last words (relay.py)
                last = api.logs(instance, stdout=False, stderr=True, tail=1)
                reason = last.decode("utf-8", "replace").strip()[:200] or None
            return ContainerExit(instance, code, oom_killed, reason=reason)
        except Exception as exc:  # the engine went away, or the container was removed under us
            return ContainerExit(instance, None, False, error=f"lost track of the container: {exc}")

    def signal(self, instance: str, signum: int) -> None:
        try:
            docker_client().api.kill(instance, signal=int(signum))
        except docker.errors.APIError as exc:
            # 404/409: the container is gone or no longer running, which is what was wanted.
            if exc.status_code not in (404, 409):
                raise

    def remove_instance(self, instance: str) -> None:
        remove_quietly(partial(docker_client().api.remove_container, instance, force=True))

    def remove(self, sandbox_id: str, runtime_root: str | None = None) -> list[str]:
        return sandboxes.remove_sandbox(sandbox_id, runtime_root)

    def run(self, instance: str, argv: list[str], **options: Any) -> ExecResult:
        return run_in_container(instance, argv, **options)

    def logs(self, instance: str | None, tail: int = 40) -> str:
        return sandboxes.container_logs(instance, tail)

    def architecture(self) -> str:
        return engine_architecture(docker_client())

    def usage(self, instance: str) -> ContainerUsage | None:
        return read_container_usage(instance)

    # -- every sandbox -----------------------------------------------------------------------

    def list_sandboxes(self) -> list[SandboxInfo]:
        return sandboxes.list_sandboxes()

    def collect_garbage(
        self, runtime_root: str | None = None, *, dry_run: bool = False
    ) -> list[str]:
        return sandboxes.collect_garbage(runtime_root, dry_run=dry_run)
