"""The services of a sandbox on a swarm, as pure functions from its spec to the arguments of
docker-py's ``APIClient.create_service`` (``task_template``, ``name``, ``labels``...).

A sandbox is three services on one node: the kernel's (no network), its relay's (the node's
network, CurveZMQ on the node's address) and a holder's (keeps the tmpfs volumes mounted
between kernels). Each runs one task that is never restarted (``condition: none``): a kernel
runs once, never twice; a restart is a new service. What Swarm cannot say per service holds
through the nodes' daemons, checked at start (``checks.py``): no network for a task without
networks (``--bridge=none``), ``no-new-privileges``; the swap limit is set on the kernel's
container through its node's engine once it runs (``backend.py``).

Nothing here talks to an engine (``tests/backends/swarm/test_specs.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    TaskTemplate,
)

from ...limits import MIB
from ..base import SandboxSpec
from ..docker import specs as local
from ..image import HOME, PACKAGES_DIR, WORKSPACE
from ..labels import (
    CPU_LIMIT_LABEL,
    DISK_LIMIT_LABEL,
    MEMORY_LIMIT_LABEL,
    ROLE_LABEL,
    RUNTIME_LABEL,
    SANDBOX_LABEL,
)

SECRETS_DIR = "/run/secrets"
CONNECTION_SECRET_FILE = "ai-computer-connection.json"
RELAY_KEYS_FILE = "ai-computer-relay-keys.json"
RELAY_PORT_LABEL = "ai-computer.relay-port"
"""The first of the five TCP ports a relay binds on its node's address."""
START_LABEL = "ai-computer.start"
"""Which kernel start of the sandbox a kernel or relay service (and its secret) belongs to."""
STOP_GRACE_NS = 1_000_000_000  # a sandbox's containers are killed, not asked: 1 s
RELAY_PIDS_LIMIT = 16
HOLDER_MEMORY = 32 * MIB


def service_name(spec: SandboxSpec, role: str, start: str = "") -> str:
    """``aic-<sandbox id>-<role>[-<start>]``: at most 63 characters, as DNS names."""
    return f"aic-{spec.sandbox_id}-{role}" + (f"-{start}" if start else "")


def labels(spec: SandboxSpec, role: str, more: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels of every service, container, volume and secret of the sandbox."""
    return {SANDBOX_LABEL: spec.sandbox_id, ROLE_LABEL: role, **(more or {}), **spec.owner_labels}


def _volume(
    spec: SandboxSpec, target: str, name: str, size: str, *, read_only: bool = False
) -> Mount:
    """A node-local named volume on a size-limited tmpfs, owned by the sandbox's user (made on
    the node when the first container that mounts it starts)."""
    uid, _, gid = spec.user.partition(":")
    options = f"size={size},uid={uid},gid={gid},mode=0755,nosuid,nodev"
    return Mount(
        target,
        name,
        type="volume",
        read_only=read_only,
        labels={SANDBOX_LABEL: spec.sandbox_id, **spec.owner_labels},
        driver_config=DriverConfig("local", {"type": "tmpfs", "device": "tmpfs", "o": options}),
    )


def sandbox_volumes(spec: SandboxSpec) -> list[Mount]:
    """/workspace, the packages and the kernel's sockets: held by the holder, shared by the
    kernel (and the sockets, read-only, by the relay)."""
    return [
        _volume(spec, WORKSPACE, local.workspace_volume(spec), str(spec.disk_limit)),
        _volume(spec, PACKAGES_DIR, local.packages_volume(spec), str(spec.disk_limit)),
        _volume(
            spec,
            local.CONTAINER_RUNTIME_DIR,
            local.sockets_volume(spec),
            local.SOCKETS_VOLUME_SIZE,
        ),
    ]


def _tmpfs(target: str, size: int) -> Mount:
    # Swarm's tmpfs takes a size and a mode, no owner: sticky and open, as /tmp is.
    return Mount(target, None, type="tmpfs", tmpfs_size=size, tmpfs_mode=0o1777)


def _task(
    container: ContainerSpec,
    *,
    memory: int,
    cpus: float,
    pids: int,
    node: str | None,
    avoid: list[str],
    log_max_size: str,
    networks: list[str] | None = None,
) -> TaskTemplate:
    """What every task of a sandbox gets: its limits (memory, CPU, pids), never a restart, a
    bounded log, the node it is pinned to (or the nodes it must avoid), no core dumps."""
    resources = Resources(cpu_limit=int(cpus * 1e9), mem_limit=memory)
    resources["Limits"]["Pids"] = pids
    container["Ulimits"] = [{"Name": "core", "Soft": 0, "Hard": 0}]
    constraints = [f"node.id=={node}"] if node else [f"node.id!={lost}" for lost in avoid]
    return TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=constraints),
        log_driver={"Name": "json-file", "Options": {"max-size": log_max_size, "max-file": "1"}},
        networks=networks,
    )


def _hardened(image: str, role: str, spec: SandboxSpec, **more: Any) -> ContainerSpec:
    """Every container of a sandbox: read-only root, no capabilities, an init; killed at once
    when its service goes."""
    container = ContainerSpec(
        image,
        labels=labels(spec, role),
        read_only=True,
        cap_drop=["ALL"],
        init=True,
        stop_grace_period=STOP_GRACE_NS,
        **more,
    )
    return container


def holder_service(spec: SandboxSpec, image: str, avoid: list[str]) -> dict[str, Any]:
    """The holder: it sleeps on the sandbox's volumes, so that they stay mounted (and their
    files kept) between kernels. Its placement is the sandbox's node."""
    container = _hardened(
        image,
        "holder",
        spec,
        command=["sleep", "infinity"],
        user=spec.user,
        mounts=sandbox_volumes(spec),
    )
    return {
        "task_template": _task(
            container,
            memory=HOLDER_MEMORY,
            cpus=0.1,
            pids=8,
            node=None,
            avoid=avoid,
            log_max_size="64k",
        ),
        "name": service_name(spec, "holder"),
        "labels": labels(spec, "holder"),
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }


def kernel_service(
    spec: SandboxSpec, image: str, argv: list[str], *, node: str, start: str, secret: dict[str, str]
) -> dict[str, Any]:
    """The kernel: the sandbox's limits, environment and volumes, its connection file from a
    Swarm secret (readable by its user only), no network (no networks on a node whose daemon
    has no bridge: ``checks.py``)."""
    uid, _, gid = spec.user.partition(":")
    environment = local.kernel_environment(spec)
    container = _hardened(
        image,
        "kernel",
        spec,
        command=["sh", "-c", local.KERNEL_START, "sh", *argv],
        user=spec.user,
        workdir=WORKSPACE,
        env=[f"{name}={value}" for name, value in environment.items()],
        mounts=[
            *sandbox_volumes(spec),
            _tmpfs("/tmp", spec.tmp_size),
            _tmpfs(HOME, spec.tmp_size),
        ],
        secrets=[
            SecretReference(
                secret["id"], secret["name"], CONNECTION_SECRET_FILE, uid=uid, gid=gid, mode=0o400
            )
        ],
    )
    container["Labels"].update(
        {
            MEMORY_LIMIT_LABEL: str(spec.memory_limit),
            CPU_LIMIT_LABEL: f"{spec.cpu_limit:g}",
            DISK_LIMIT_LABEL: str(spec.disk_limit),
            RUNTIME_LABEL: spec.runtime,
            START_LABEL: start,
        }
    )
    return {
        "task_template": _task(
            container,
            memory=spec.memory_limit,
            cpus=spec.cpu_limit,
            pids=spec.pids_limit,
            node=node,
            avoid=[],
            log_max_size=spec.log_max_size,
        ),
        "name": service_name(spec, "kernel", start),
        "labels": container["Labels"],
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }


def relay_service(
    spec: SandboxSpec,
    image: str,
    relay_source: str,
    *,
    node: str,
    address: str,
    first_port: int,
    start: str,
    secret: dict[str, str],
) -> dict[str, Any]:
    """The relay: on the node's network (the service reaches it at ``address``, ports
    ``first_port`` to ``first_port + 4``), CurveZMQ only, with the kernel's sockets read-only
    and nothing else of the sandbox."""
    uid, _, gid = local.RELAY_USER.partition(":")
    argv = [
        local.RELAY_KERNEL_DIR,
        f"tcp://{address}:{first_port}",
        str(spec.message_limit),
        f"{SECRETS_DIR}/{RELAY_KEYS_FILE}",
    ]
    container = _hardened(
        image,
        "relay",
        spec,
        command=["python3", "-I", "-c", relay_source, *argv],
        user=local.RELAY_USER,
        mounts=[
            _volume(
                spec,
                local.RELAY_KERNEL_DIR,
                local.sockets_volume(spec),
                local.SOCKETS_VOLUME_SIZE,
                read_only=True,
            )
        ],
        secrets=[
            SecretReference(
                secret["id"], secret["name"], RELAY_KEYS_FILE, uid=uid, gid=gid, mode=0o400
            )
        ],
    )
    container["Labels"].update({RELAY_PORT_LABEL: str(first_port), START_LABEL: start})
    return {
        "task_template": _task(
            container,
            memory=spec.relay_memory_limit,
            cpus=1.0,
            pids=RELAY_PIDS_LIMIT,
            node=node,
            avoid=[],
            log_max_size="64k",
            networks=["host"],
        ),
        "name": service_name(spec, "relay", start),
        "labels": container["Labels"],
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }


def kernel_connection(info: Mapping[str, Any]) -> bytes:
    """The kernel's connection file (its secret): ipc sockets on the sockets volume."""
    inside = {**info, "ip": f"{local.CONTAINER_RUNTIME_DIR}/kernel"}
    key = inside.get("key")
    if isinstance(key, bytes):
        inside["key"] = key.decode()
    return json.dumps(inside).encode()


def relay_keys(server_secret: bytes, client_public: bytes) -> bytes:
    """The relay's secret: its Curve secret key and the one client key it lets in (Z85)."""
    return json.dumps({"secret": server_secret.decode(), "client": client_public.decode()}).encode()
