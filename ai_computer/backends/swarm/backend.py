"""A Docker Swarm as a :class:`~ai_computer.backends.base.Backend`: each sandbox on a node
Swarm chooses, behind the same provisioner, SDK and service as the local engine.

A sandbox is three services pinned to one node (``specs.py``): a holder (placed first, by
Swarm, avoiding nodes found lost; it keeps the tmpfs volumes, so ``/workspace`` outlives
kernel restarts), and per kernel start a kernel service and a relay service, each one task
that never restarts (a sandbox never runs twice). Every object carries the sandbox's labels
and its owner's (``labels.py``), so a restarted service finds and removes its orphans.

The path to a kernel on another node: the host's Jupyter client connects to ipc sockets in
the sandbox's private directory, as with the local engine; a bridge thread (``bridge.py``)
forwards them over CurveZMQ, keys made per start, to the relay on the sandbox's node, which
binds on the node's address and lets in only the bridge's key; the kernel itself has no
network and only ipc sockets on its volume. Exec, signals, exits and memory go to the node's
own engine (``engines.py``).

An instance id is ``<service id>:<node id>:<container id>``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import zmq

from ...errors import ImageNotFoundError, RuntimeUnavailableError, SandboxError, SandboxStartError
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
from ..docker import specs as local
from ..docker.backend import IPC_PORTS, emptied_directory, private_directory, relay_bound
from ..docker.exec import run_in_container
from ..docker.usage import read_container_usage
from ..image import wheel_architecture
from ..labels import ROLE_LABEL, SANDBOX_LABEL, default_runtime_root
from . import specs
from .bridge import Bridge
from .engines import NODE_LOST, Engines
from .settings import SwarmSettings

log = logging.getLogger(__name__)

_START_TIMEOUT = 60.0
_PORT_REST = 60.0  # seconds a relay's ports rest after its removal
_WAIT_POLL = 10  # seconds a `docker wait` on a node's engine is held before the node is checked
_ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
_IMAGE_ERRORS = ("No such image", "pull access denied", "manifest unknown", "not found")


@dataclass(frozen=True)
class Instance:
    """A kernel or relay task's container, and where it runs."""

    service: str
    node: str
    container: str

    def __str__(self) -> str:
        return f"{self.service}:{self.node}:{self.container}"

    @classmethod
    def parse(cls, text: str) -> Instance:
        service, node, container = text.split(":")
        return cls(service, node, container)


@dataclass
class _Prepared:
    info: dict[str, Any]
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes


@dataclass
class _Relay:
    sandbox_id: str
    bridge: Bridge
    port: int


class SwarmBackend(Backend):
    """Sandboxes on the swarm the settings name (``SwarmSettings``)."""

    name = "swarm"
    kernel_connection_file = f"{specs.SECRETS_DIR}/{specs.CONNECTION_SECRET_FILE}"

    def __init__(self, settings: SwarmSettings | None = None) -> None:
        self.settings = settings or SwarmSettings.from_environment()
        self.engines = Engines(self.settings)
        self._lock = threading.Lock()
        self._prepared: dict[str, _Prepared] = {}
        self._relays: dict[str, _Relay] = {}  # relay instance -> its bridge and port
        self._ports: set[int] = set()  # first ports of the relays this process made
        # Ports of relays just removed, by when: their process may still hold them a moment.
        self._released: dict[int, float] = {}
        # Nodes checked (checks.py), by (node id, version of its record): their problems.
        self._checked: dict[tuple[str, int], list[str]] = {}
        self._checking: dict[str, threading.Lock] = {}  # one check per node at a time

    # -- one sandbox -------------------------------------------------------------------------

    def prepare(self, spec: SandboxSpec, key: bytes | str, kernel_name: str) -> dict[str, Any]:
        """Make the sandbox's private directory and this start's Curve keys; the host connects
        to the bridge's ipc sockets there. A bridge of an earlier start stops first: its
        sockets' files are about to be the new bridge's."""
        self._stop_bridges(spec.sandbox_id)
        private_directory(Path(spec.runtime_root))
        private_directory(Path(local.sandbox_dir(spec)))
        emptied_directory(Path(local.relay_dir(spec)), 0o700)
        info: dict[str, Any] = {
            "transport": "ipc",
            "ip": f"{local.relay_dir(spec)}/kernel",
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": kernel_name,
            **IPC_PORTS,
        }
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        with self._lock:
            self._prepared[spec.sandbox_id] = _Prepared(
                info, server_public, server_secret, client_public, client_secret
            )
        return info

    def connection_file(self, spec: SandboxSpec) -> str:
        return f"{local.sandbox_dir(spec)}/connection.json"

    def start(self, spec: SandboxSpec, argv: list[str]) -> Launched:
        """Place the sandbox (a first start) or find its node, then start the kernel and relay
        services there with this start's secrets; once both run, cap the kernel's swap (Swarm
        cannot) and start the bridge. What this start made is removed again on failure."""
        if spec.runtime != "runc":
            raise RuntimeUnavailableError(
                f"runtime {spec.runtime!r} is not available on the swarm backend (each node's "
                "default runtime runs the sandboxes: set it in the nodes' daemon.json)",
                runtime=spec.runtime,
            )
        with self._lock:
            prepared = self._prepared.pop(spec.sandbox_id, None)
        if prepared is None:
            raise SandboxStartError("start() without prepare(): nothing to start")
        image = self.settings.qualified(spec.image)
        # 56 bits: the longest that keeps the names within 63 characters (the secrets are
        # found by sandbox id, start and role together, so a repeat could only be the same
        # sandbox's, and its earlier start's are gone).
        start = secrets.token_hex(7)
        services: list[str] = []
        made_secrets: list[str] = []
        port: int | None = None
        try:
            node = self._sandbox_node(spec, image, services)
            self._ensure_checked(node, image)
            address = self.engines.node(node).address
            port = self._reserve_port()
            connection = self._secret(
                spec, "kernel", start, specs.kernel_connection(prepared.info), made_secrets
            )
            keys = self._secret(
                spec,
                "relay",
                start,
                specs.relay_keys(prepared.server_secret, prepared.client_public),
                made_secrets,
            )
            kernel = self._create(
                specs.kernel_service(spec, image, argv, node=node, start=start, secret=connection),
                services,
            )
            relay = self._create(
                specs.relay_service(
                    spec,
                    image,
                    source("relay.py"),
                    node=node,
                    address=address,
                    first_port=port,
                    start=start,
                    secret=keys,
                ),
                services,
            )
            containers = self._running([kernel, relay], image)
            kernel_instance = Instance(kernel, node, containers[kernel])
            relay_instance = Instance(relay, node, containers[relay])
            self._await_relay(relay_instance, address, port)
            # Swarm gives a task swap of twice its memory; the sandbox gets none.
            self.engines.engine(node).api.update_container(
                kernel_instance.container,
                mem_limit=spec.memory_limit,
                memswap_limit=spec.memory_limit,
            )
            bridge = Bridge(
                local.relay_dir(spec),
                address,
                port,
                server_public=prepared.server_public,
                public=prepared.client_public,
                secret=prepared.client_secret,
                message_limit=spec.message_limit,
                name=spec.sandbox_id[:8],
            )
        except BaseException:
            for service in services:  # made by this start (a first start's holder too)
                self._remove_service(service)
            for secret in made_secrets:
                self._remove_secret(secret)
            if port is not None:
                self._release_port(port)
            raise
        with self._lock:
            self._relays[str(relay_instance)] = _Relay(spec.sandbox_id, bridge, port)
        return Launched(
            kernel=str(kernel_instance), relay=str(relay_instance), workspace_reset=False
        )

    def _sandbox_node(self, spec: SandboxSpec, image: str, services: list[str]) -> str:
        """The node of the sandbox: its holder's, or, on its first start, the node Swarm
        chooses for a new holder (nodes found lost are avoided)."""
        api = self.engines.manager.api
        selector = [f"{SANDBOX_LABEL}={spec.sandbox_id}", f"{ROLE_LABEL}=holder"]
        holders = api.services(filters={"label": selector})
        if holders:
            holder = holders[0]["ID"]
            task = self._task(holder)
            node = str(task.get("NodeID") or "") if task else ""
            if not node or self.engines.is_lost(node):
                raise SandboxStartError(NODE_LOST, reason=NODE_LOST)
            state = task["Status"]["State"] if task else "missing"
            if state != "running":
                raise SandboxStartError(
                    f"the sandbox's holder on its node is {state}: its files are gone"
                )
            return node
        avoid = self.engines.avoided() + self._refused()
        holder = self._create(specs.holder_service(spec, image, avoid), services)
        deadline = time.monotonic() + _START_TIMEOUT
        pause = 0.01
        while time.monotonic() < deadline:
            task = self._task(holder)
            if task and task.get("NodeID"):
                return str(task["NodeID"])
            if task and task["Status"]["State"] in _ENDED:
                raise SandboxStartError(f"the swarm could not place the sandbox: {task['Status']}")
            time.sleep(pause)  # the manager has no event for a task's placement
            pause = min(pause * 1.5, 0.2)
        raise SandboxStartError(
            f"the swarm placed no sandbox within {_START_TIMEOUT:g} s (is any node ready?)"
        )

    def _ensure_checked(self, node_id: str, image: str) -> None:
        """Check node ``node_id`` (``checks.py``) unless this process has at the current
        version of its record; refuse this start with the node's problems (``ClusterNodeError``;
        later placements avoid it: ``_refused``). A node that joined or came back after the
        service started is so checked before its first sandbox runs."""
        from .checks import check_node, node_error

        self.engines.nodes()  # the current version of every node's record
        node = self.engines.node(node_id)
        key = (node_id, node.version)
        with self._lock:
            lock = self._checking.setdefault(node_id, threading.Lock())
        with lock:
            with self._lock:
                problems = self._checked.get(key)
            if problems is None:
                problems = check_node(self.engines, node, image)
                with self._lock:
                    self._checked = {k: v for k, v in self._checked.items() if k[0] != node_id}
                    self._checked[key] = problems
        if problems:
            raise node_error(problems)

    def _refused(self) -> list[str]:
        """Nodes whose last check found problems (until their record's version changes)."""
        current = {node.node_id: node.version for node in self.engines.known_nodes()}
        with self._lock:
            return [
                node
                for (node, version), problems in self._checked.items()
                if problems and current.get(node) == version
            ]

    def _create(self, arguments: dict[str, Any], made: list[str]) -> str:
        try:
            created = self.engines.manager.api.create_service(**arguments)
        except docker.errors.DockerException as exc:
            raise SandboxStartError(
                f"could not create the service {arguments['name']}: {exc}"
            ) from exc
        made.append(str(created["ID"]))
        return str(created["ID"])

    def _secret(
        self, spec: SandboxSpec, role: str, start: str, data: bytes, made: list[str]
    ) -> dict[str, str]:
        name = f"aic-{spec.sandbox_id}-{role}-{start}"
        created = self.engines.manager.api.create_secret(
            name, data, labels=specs.labels(spec, role, {specs.START_LABEL: start})
        )
        made.append(str(created["ID"]))
        return {"id": str(created["ID"]), "name": name}

    def _task(self, service: str) -> dict[str, Any] | None:
        tasks = self.engines.manager.api.tasks(filters={"service": service})
        return max(tasks, key=lambda task: task.get("CreatedAt", ""), default=None)

    def _running(self, services: list[str], image: str) -> dict[str, str]:
        """Wait until each service's task runs; return their container ids. A task that ended
        (rejected: no such image, say) raises with the node's reason."""
        api = self.engines.manager.api
        deadline = time.monotonic() + _START_TIMEOUT
        pause = 0.01
        found: dict[str, str] = {}
        while time.monotonic() < deadline:
            for task in api.tasks(filters={"service": services}):
                status = task.get("Status") or {}
                state = status.get("State")
                container = (status.get("ContainerStatus") or {}).get("ContainerID")
                if state == "running" and container:
                    found[task["ServiceID"]] = container
                elif state in _ENDED:
                    node = self.engines.node(task["NodeID"]).hostname if task.get("NodeID") else "?"
                    error = str(status.get("Err") or status.get("Message") or state)
                    if any(text in error for text in _IMAGE_ERRORS):
                        registry = self.settings.registry or "its registry"
                        message = (
                            f"node {node} has no sandbox image {image!r} and could not pull "
                            f"it from {registry}: {error}"
                        )
                        raise ImageNotFoundError(message, image=image)
                    raise SandboxStartError(f"a sandbox task on node {node} ended: {error}")
            if len(found) == len(services):
                return found
            time.sleep(pause)  # the manager has no event for a task's state
            pause = min(pause * 1.5, 0.1)
        raise SandboxStartError(f"the sandbox's tasks did not run within {_START_TIMEOUT:g} s")

    def _await_relay(self, relay: Instance, address: str, port: int) -> None:
        """Wait until the relay listens on its last port (it binds them in order), so that a
        relay that cannot bind (a port taken by another program of its node) fails this start
        with its reason rather than leaving the client to time out."""
        deadline = time.monotonic() + _START_TIMEOUT
        pause = 0.005
        last = port + len(RELAY_PORTS) - 1
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection((address, last), timeout=1).close()
                return
            state = self.engines.engine(relay.node).api.inspect_container(relay.container)
            if not state["State"]["Running"]:
                log = self.logs(str(relay))
                reason = log.splitlines()[-1] if log else "no log"
                raise SandboxStartError(
                    f"the sandbox's relay on {address} could not listen on ports "
                    f"{port}-{last}: {reason}",
                    container_log=log,
                )
            time.sleep(pause)  # nothing tells when a program on another node has bound
            pause = min(pause * 1.5, 0.1)
        raise SandboxStartError(f"the sandbox's relay did not listen within {_START_TIMEOUT:g} s")

    def _reserve_port(self) -> int:
        """Five free ports on the relays' range (none of a relay service of the swarm, nor of
        this process's), chosen at random so that two services rarely race for them."""
        low, high = self.settings.relay_ports
        taken = {
            int(service["Spec"]["Labels"].get(specs.RELAY_PORT_LABEL, "0"))
            for service in self.engines.manager.api.services(
                filters={"label": [SANDBOX_LABEL, f"{ROLE_LABEL}=relay"]}
            )
        }
        now = time.monotonic()
        with self._lock:
            resting = {p for p, since in self._released.items() if now - since < _PORT_REST}
            self._released = {p: self._released[p] for p in resting}
            free = [
                port
                for port in range(low, high - 4, 5)
                if port not in taken and port not in self._ports and port not in resting
            ]
            if not free:
                raise SandboxStartError(
                    f"no free relay ports left in {low}-{high} (five per sandbox)"
                )
            port = secrets.choice(free)
            self._ports.add(port)
        return port

    def _release_port(self, port: int) -> None:
        with self._lock:
            self._ports.discard(port)
            self._released[port] = time.monotonic()

    def reachable(self, spec: SandboxSpec) -> bool:
        return relay_bound(Path(local.relay_dir(spec)))

    def wait(self, instance: str) -> ContainerExit:
        """The container's exit through its node's engine; a node that died is reported as
        lost (``NODE_LOST``) within about ``_WAIT_POLL`` seconds plus two pings
        (``engines.is_lost``, asked anew each time) of going silent, sooner when it refuses."""
        target = Instance.parse(instance)
        while True:
            try:
                api = self.engines.engine(target.node).api
                result = api.wait(target.container, timeout=_WAIT_POLL)
            except requests.exceptions.Timeout:
                if self.engines.is_lost(target.node):
                    return ContainerExit(instance, None, False, error=NODE_LOST)
                continue
            except docker.errors.NotFound:
                return ContainerExit(instance, None, False, error="its container was removed")
            except Exception:
                if self.engines.is_lost(target.node):
                    return ContainerExit(instance, None, False, error=NODE_LOST)
                time.sleep(0.5)
                continue
            code = result.get("StatusCode")
            oom_killed = False
            with contextlib.suppress(Exception):
                state = api.inspect_container(target.container)["State"]
                code, oom_killed = state.get("ExitCode", code), bool(state.get("OOMKilled"))
            reason = None
            if code == REFUSED and not oom_killed:
                last = self.logs(instance, tail=1)
                reason = last[:200] or None
            return ContainerExit(instance, code, oom_killed, reason=reason)

    def signal(self, instance: str, signum: int) -> None:
        target = Instance.parse(instance)
        try:
            self.engines.engine(target.node).api.kill(target.container, signal=int(signum))
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):
                raise
        except Exception:
            if not self.engines.is_lost(target.node):
                raise

    def remove_instance(self, instance: str) -> None:
        """Remove a kernel's or relay's service (its task's container goes with it, at once)
        and this start's secret; a relay's bridge stops."""
        target = Instance.parse(instance)
        with self._lock:
            relay = self._relays.pop(instance, None)
        if relay is not None:
            relay.bridge.stop()
            self._release_port(relay.port)
        labels: dict[str, str] = {}
        with contextlib.suppress(Exception):
            labels = self.engines.manager.api.inspect_service(target.service)["Spec"]["Labels"]
        self._remove_service(target.service)
        with contextlib.suppress(Exception):  # a lost node's engine fails within its timeout
            self.engines.engine(target.node).api.remove_container(target.container, force=True)
        # This instance's own secret only: the sandbox's, this start's, this role's.
        wanted = [labels.get(name) for name in (SANDBOX_LABEL, specs.START_LABEL, ROLE_LABEL)]
        if all(wanted):
            selector = [
                f"{SANDBOX_LABEL}={wanted[0]}",
                f"{specs.START_LABEL}={wanted[1]}",
                f"{ROLE_LABEL}={wanted[2]}",
            ]
            for secret in self.engines.manager.api.secrets(filters={"label": selector}):
                self._remove_secret(secret["ID"])

    def _remove_service(self, service: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.engines.manager.api.remove_service(service)

    def _remove_secret(self, secret: str) -> None:
        # A secret is in use until its service is gone from the manager's store: a moment.
        for _ in range(20):
            try:
                self.engines.manager.api.remove_secret(secret)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError:
                time.sleep(0.05)

    def _stop_bridges(self, sandbox_id: str) -> None:
        with self._lock:
            mine = [key for key, relay in self._relays.items() if relay.sandbox_id == sandbox_id]
            relays = [self._relays.pop(key) for key in mine]
        for relay in relays:
            relay.bridge.stop()
            self._release_port(relay.port)

    def remove(self, sandbox_id: str, runtime_root: str | None = None) -> list[str]:
        """Remove the sandbox's services, secrets, containers and volumes (on its node) and its
        private directory; return what is left (the node's part, when the node is lost)."""
        self._stop_bridges(sandbox_id)
        with self._lock:
            self._prepared.pop(sandbox_id, None)
        api = self.engines.manager.api
        selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
        services = api.services(filters=selector)
        nodes = (
            {
                str(task["NodeID"])
                for task in api.tasks(filters={"service": [s["ID"] for s in services]})
                if task.get("NodeID")
            }
            if services
            else set()
        )
        if not nodes:  # its services are gone already (a failed start): look on every node
            nodes = {n.node_id for n in self.engines.nodes() if n.state == "ready"}
        for service in services:
            self._remove_service(service["ID"])
        for secret in api.secrets(filters=selector):
            self._remove_secret(secret["ID"])
        left: list[str] = []
        for node in nodes:
            if self.engines.is_lost(node):
                left.append(f"its volumes on node {self.engines.node(node).hostname} (lost)")
                continue
            try:
                self._remove_from_node(node, selector)
            except (SandboxError, docker.errors.DockerException) as exc:
                left.append(f"its containers or volumes on node {node}: {exc}")
        directory = Path(runtime_root or default_runtime_root()) / sandbox_id
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            left.append(f"directory {directory}")
        left += [f"service {s['Spec']['Name']}" for s in api.services(filters=selector)]
        return left

    def _remove_from_node(self, node: str, selector: dict[str, str]) -> None:
        api = self.engines.engine(node).api
        for container in api.containers(all=True, filters=selector, quiet=True):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container["Id"], force=True)
        for _ in range(50):  # the swarm agent may still be removing a task's container
            volumes = api.volumes(filters=selector).get("Volumes") or []
            if not volumes:
                return
            for volume in volumes:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_volume(volume["Name"], force=True)
            time.sleep(0.05)

    def run(self, instance: str, argv: list[str], **options: Any) -> ExecResult:
        target = Instance.parse(instance)
        client = self.engines.engine(target.node)
        return run_in_container(target.container, argv, client=client, **options)

    def logs(self, instance: str | None, tail: int = 40) -> str:
        if instance is None:
            return ""
        target = Instance.parse(instance)
        try:
            raw = self.engines.engine(target.node).api.logs(target.container, tail=tail)
        except Exception:
            return ""
        return raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)

    def architecture(self) -> str:
        found = {node.architecture for node in self.engines.nodes() if node.state == "ready"}
        if len(found) != 1:
            raise SandboxError(
                f"the swarm's ready nodes have the CPU architectures {sorted(found)}: "
                "sandboxes need one"
            )
        return wheel_architecture(found.pop(), "the swarm nodes'")

    def usage(self, instance: str) -> ContainerUsage | None:
        target = Instance.parse(instance)
        try:
            return read_container_usage(target.container, self.engines.engine(target.node))
        except SandboxError:
            return None

    # -- every sandbox -----------------------------------------------------------------------

    def list_sandboxes(self) -> list[SandboxInfo]:
        """Every sandbox on the swarm (services by label), with its kernel's state and node."""
        api = self.engines.manager.api
        services = api.services(filters={"label": SANDBOX_LABEL})
        wanted = {service["ID"] for service in services}
        tasks: dict[str, dict[str, Any]] = {}
        for task in api.tasks(filters={"service": sorted(wanted)}) if wanted else []:
            known = tasks.get(task["ServiceID"])
            if known is None or task.get("CreatedAt", "") > known.get("CreatedAt", ""):
                tasks[task["ServiceID"]] = task
        hostnames = {node.node_id: node.hostname for node in self.engines.nodes()}
        found: dict[str, SandboxInfo] = {}
        for service in services:
            labels = service["Spec"].get("Labels") or {}
            sandbox_id = labels[SANDBOX_LABEL]
            info = found.setdefault(sandbox_id, SandboxInfo(sandbox_id, shared=True))
            info.containers.append(service["ID"])
            created = _timestamp(service.get("CreatedAt"))
            if created is not None and (info.created is None or created < info.created):
                info.created = created
            task = tasks.get(service["ID"])
            role = labels.get(ROLE_LABEL)
            if task is not None and (role == "kernel" or info.node is None):
                info.node = hostnames.get(str(task.get("NodeID")), task.get("NodeID"))
            if role == "kernel" or not info.labels:
                info.labels = labels
                if task is not None:
                    info.status = str(task["Status"]["State"])
        return sorted(found.values(), key=lambda info: info.created or 0.0)

    def collect_garbage(
        self, runtime_root: str | None = None, *, dry_run: bool = False
    ) -> list[str]:
        """Remove the sandboxes whose owner process is gone (a service that restarted on the
        same host, in the same pid namespace, finds its own orphans so); others' and those of
        owners elsewhere (another host, pid namespace or boot: ``owner_alive(shared=True)``)
        are left alone."""
        removed = []
        for info in self.list_sandboxes():
            if info.labels and info.owner_alive is False:
                left = [] if dry_run else self.remove(info.sandbox_id, runtime_root)
                if left:
                    log.warning("could not remove all of sandbox %s: %s", info.sandbox_id, left)
                removed.append(info.sandbox_id)
        return removed

    def check(self, image: str) -> None:
        """Refuse a swarm whose nodes lack what Swarm cannot set per service (``checks.py``);
        the nodes that pass need no check at their first sandbox (``_ensure_checked``)."""
        from .checks import check_nodes

        checked = check_nodes(self.engines, self.settings.qualified(image))
        with self._lock:
            self._checked.update({(node.node_id, node.version): [] for node in checked})


def _timestamp(value: Any) -> float | None:
    from datetime import datetime

    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Docker writes nanoseconds: Python reads at most microseconds
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
