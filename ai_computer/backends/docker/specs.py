"""The containers and volumes of a sandbox, as pure functions from its limits to the keyword
arguments of docker-py's ``containers.create`` and ``volumes.create``.

Nothing here talks to the engine, so the hardening of every container (kernel, relay, holder)
is asserted by unit tests without Docker (``tests/backends/docker/test_specs.py``), and the one
place that creates containers (the backend's ``start``) cannot forget any of it.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping
from typing import Any

from docker.types import LogConfig, Mount, Ulimit

from ...limits import GVISOR_MAX_PIDS, MIB
from ..base import SandboxSpec
from ..image import HOME, NOTEBOOK_FOLDER, PACKAGES_DIR, WORKSPACE
from ..labels import (
    CPU_LIMIT_LABEL,
    DISK_LIMIT_LABEL,
    MEMORY_LIMIT_LABEL,
    ROLE_LABEL,
    RUNTIME_LABEL,
    SANDBOX_LABEL,
)

CONTAINER_RUNTIME_DIR = "/run/ai-computer"
"""Where the kernel binds its sockets: the sockets volume (tmpfs)."""
CONTAINER_CONNECTION_DIR = "/run/ai-computer-connection"
"""Where the kernel reads its connection file: the host's runtime directory, read-only."""
SOCKETS_VOLUME_SIZE = "1m"  # socket files take no room; the tmpfs only needs to exist
# Where the relay container sees the kernel's sockets (their volume, read-only) and its own.
RELAY_KERNEL_DIR = "/run/kernel"
RELAY_OWN_DIR = "/run/relay"
RELAY_HELD_DIR = "/run/held"
"""Where the relay container mounts the workspace and packages volumes, read-only, without ever
reading them: mounted, they outlive the kernel's container (see ``holder_container``)."""
RELAY_USER = "65532:65532"
"""The relay's uid:gid: neither the sandbox's (1000 or 1001) nor, normally, the host user's."""


# Before the kernel binds: the sockets volume outlives kernels (the relay, then the holder, keeps
# it mounted), so whatever an earlier kernel's code left there (a directory at a socket's name,
# the volume shut to others) is cleared, and the relay (another uid) may enter it again. Sockets
# must be connectable by the relay: hence umask 0.
KERNEL_START = (
    f"chmod -R u+rwX {CONTAINER_RUNTIME_DIR} 2>/dev/null; "
    f"rm -rf {CONTAINER_RUNTIME_DIR}/* {CONTAINER_RUNTIME_DIR}/.[!.]* 2>/dev/null; "
    f'chmod 0755 {CONTAINER_RUNTIME_DIR} && umask 0000 && exec "$@"'
)


HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
"""The kernel's /etc/hosts (``localhost`` resolves, for servers user code runs on loopback):
written by the backend next to the connection file, mounted read-only."""


def sandbox_dir(spec: SandboxSpec) -> str:
    """The sandbox's private host directory (0700): its runtime and relay directories."""
    return posixpath.join(spec.runtime_root, spec.sandbox_id)


def runtime_dir(spec: SandboxSpec) -> str:
    """The host directory holding the kernel's connection file (read-only in its container)."""
    return posixpath.join(sandbox_dir(spec), "kernel")


def relay_dir(spec: SandboxSpec) -> str:
    """The host directory where the relay binds the sockets the host connects to."""
    return posixpath.join(sandbox_dir(spec), "relay")


def workspace_volume(spec: SandboxSpec) -> str:
    """The Docker volume holding /workspace."""
    return f"ai-computer-{spec.sandbox_id}"


def packages_volume(spec: SandboxSpec) -> str:
    """The Docker volume holding the packages installed in the sandbox."""
    return f"ai-computer-{spec.sandbox_id}-packages"


def sockets_volume(spec: SandboxSpec) -> str:
    """The Docker volume (a small tmpfs) where the kernel binds its sockets."""
    return f"ai-computer-{spec.sandbox_id}-sockets"


def holder_name(spec: SandboxSpec) -> str:
    """The container that keeps the sandbox's tmpfs volumes mounted."""
    return f"ai-computer-{spec.sandbox_id}-holder"


def hardened(
    spec: SandboxSpec,
    role: str,
    *,
    user: str,
    memory: int,
    nano_cpus: int,
    pids_limit: int,
    mounts: list[Mount],
    log_max_size: str,
    labels: Mapping[str, str] | None = None,
    runtime: str = "runc",
    **more: Any,
) -> dict[str, Any]:
    """What every container of a sandbox gets (kernel, relay, holder): no network, no
    capabilities, no new privileges, a read-only root, memory without swap, CPU and process
    limits, an init, a bounded log, and the labels that find it again. ``more`` adds to
    these; it cannot replace any of them."""
    base = {
        "image": spec.image,
        "user": user,
        "labels": {
            SANDBOX_LABEL: spec.sandbox_id,
            ROLE_LABEL: role,
            **(labels or {}),
            **spec.owner_labels,
        },
        "network_mode": "none",
        # The runtime still makes an empty network namespace (only loopback), but the engine
        # skips the libnetwork sandbox it makes even for "none" (~110 ms of every start on
        # this machine), and with it the /etc/hosts it writes: the kernel gets ours (HOSTS).
        "network_disabled": True,
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": nano_cpus,
        "pids_limit": pids_limit,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "mounts": mounts,
        "init": True,
        "log_config": LogConfig(
            type="json-file", config={"max-size": log_max_size, "max-file": "1"}
        ),
        "detach": True,
        # Named, not left to the engine's default-runtime (which may be runsc: the relay and
        # holder need runc, and a runc sandbox must be one).
        "runtime": runtime,
    }
    overlap = sorted(set(base) & set(more))
    if overlap:
        raise ValueError(f"{role} container: {', '.join(overlap)} would replace the hardening")
    return {**base, **more}


GVISOR_RUNTIME = "ai-computer-gvisor"
"""The engine's name for gVisor as the kernel runs under it: runsc with ``--network=none``
(this runsc release refuses Docker's own ``none`` network otherwise) and ``--host-uds=all``
(the kernel's unix sockets on the volume the relay shares). See ``GVISOR_DAEMON_CONFIG``."""
GVISOR_DAEMON_CONFIG = {
    "runtimes": {
        GVISOR_RUNTIME: {
            "path": "/usr/bin/runsc",
            "runtimeArgs": ["--network=none", "--host-uds=all"],
        }
    }
}
"""What the engine's ``daemon.json`` needs for ``runtime="gvisor"``."""
GVISOR_WRAPPER = "/usr/local/lib/ai-computer/runsc-sandbox"
"""setup.sh's wrapper: runsc with those arguments, registered with ``--add-runtime`` on the
engine it starts (so no daemon.json of the user's is replaced)."""


def gvisor_pids_limit(user_processes: int) -> int:
    """The engine's pids limit for a gVisor kernel that may run ``user_processes``.

    gVisor's own host threads count against the container's pids cgroup (about 53 when idle,
    about 18 per process of a fork bomb inside, 22 to 25 per process busy with file I/O), and
    running out there kills the whole sandbox; so the cgroup gets room for all of them, and the
    processes themselves are bounded inside by RLIMIT_NPROC, which gVisor enforces with a plain
    EAGAIN, as runc's pids limit does.
    """
    if user_processes > GVISOR_MAX_PIDS:  # its host threads must stay below Go's 10,000
        raise ValueError(
            f"pids_limit {user_processes} is too high under gVisor (at most {GVISOR_MAX_PIDS})"
        )
    return 128 + 32 * user_processes


def kernel_environment(spec: SandboxSpec) -> dict[str, str]:
    """The kernel's environment: nothing of the host's, its limits, and its own variables."""
    threads = str(max(1, math.ceil(spec.cpu_limit)))
    return {
        "HOME": HOME,
        "PYTHONDONTWRITEBYTECODE": "1",
        # Numeric libraries size their thread pools from the host's CPU count otherwise;
        # PYTHON_CPU_COUNT is what os.cpu_count() returns (see the image's Dockerfile), and
        # nproc follows OMP_NUM_THREADS.
        "PYTHON_CPU_COUNT": threads,
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "AI_COMPUTER_SANDBOX_ID": spec.sandbox_id,
        "AI_COMPUTER_MEMORY_LIMIT": str(spec.memory_limit),
        "AI_COMPUTER_CPU_LIMIT": f"{spec.cpu_limit:g}",
        **spec.environment,
    }


def notebook_mounts(spec: SandboxSpec) -> list[Mount]:
    """The notebook's folder, read-only at ``NOTEBOOK_FOLDER``, when the spec names one.

    Not recursive: a mount below the folder on the host (a tmpfs, another disk) is not passed
    on, since a read-only bind leaves the mounts below it writable on this engine. Symlinks in
    the folder resolve inside the container's own file system, never the host's.
    """
    if spec.notebook_folder is None:
        return []
    if not posixpath.isabs(spec.notebook_folder):
        raise ValueError(f"notebook folder {spec.notebook_folder!r} must be an absolute path")
    mount = Mount(NOTEBOOK_FOLDER, spec.notebook_folder, type="bind", read_only=True)
    mount["BindOptions"] = {"Propagation": "rprivate", "NonRecursive": True}
    return [mount]


def kernel_container(spec: SandboxSpec, cmd: list[str]) -> dict[str, Any]:
    """The kernel's container: the sandbox's limits, its environment, its volumes; of the host
    only the directory of its connection file, read-only."""
    uid, _, gid = spec.user.partition(":")
    tmpfs_options = f"rw,nosuid,nodev,size={spec.tmp_size}"
    home_options = f"{tmpfs_options},uid={uid},gid={gid},mode=0700"
    ulimits = [Ulimit(name="core", soft=0, hard=0)]
    pids_limit = spec.pids_limit
    runtime = "runc"
    if spec.runtime == "gvisor":
        pids_limit = gvisor_pids_limit(spec.pids_limit)
        ulimits.append(Ulimit(name="nproc", soft=spec.pids_limit, hard=spec.pids_limit))
        runtime = GVISOR_RUNTIME
    elif spec.runtime != "runc":
        raise ValueError(f"runtime {spec.runtime!r} is not one of: runc, gvisor")
    return hardened(
        spec,
        "kernel",
        user=spec.user,
        memory=spec.memory_limit,
        nano_cpus=int(spec.cpu_limit * 1e9),
        pids_limit=pids_limit,
        mounts=[
            Mount(CONTAINER_CONNECTION_DIR, runtime_dir(spec), type="bind", read_only=True),
            Mount("/etc/hosts", f"{runtime_dir(spec)}/hosts", type="bind", read_only=True),
            Mount(CONTAINER_RUNTIME_DIR, sockets_volume(spec), type="volume"),
            Mount(WORKSPACE, workspace_volume(spec), type="volume"),
            Mount(PACKAGES_DIR, packages_volume(spec), type="volume"),
            *notebook_mounts(spec),
        ],
        log_max_size=spec.log_max_size,
        labels={
            MEMORY_LIMIT_LABEL: str(spec.memory_limit),
            CPU_LIMIT_LABEL: f"{spec.cpu_limit:g}",
            DISK_LIMIT_LABEL: str(spec.disk_limit),
            RUNTIME_LABEL: spec.runtime,
        },
        command=["sh", "-c", KERNEL_START, "sh", *cmd],
        working_dir=WORKSPACE,
        environment=kernel_environment(spec),
        tmpfs={"/tmp": tmpfs_options, HOME: home_options},
        ipc_mode="private",
        ulimits=ulimits,
        runtime=runtime,
    )


def relay_container(spec: SandboxSpec, relay_source: str) -> dict[str, Any]:
    """The relay's container (``inside/relay.py``): it forwards the kernel's messages to the
    host, refusing those no real kernel sends. The sandbox's volumes are mounted in it
    read-only (the kernel's sockets, which it uses; the workspace and packages only to keep them
    mounted while a restart replaces the kernel), and the sandbox cannot reach it."""
    argv = [RELAY_KERNEL_DIR, RELAY_OWN_DIR, str(spec.message_limit)]
    return hardened(
        spec,
        "relay",
        user=RELAY_USER,
        memory=spec.relay_memory_limit,
        nano_cpus=int(1e9),
        pids_limit=16,
        mounts=[
            Mount(RELAY_KERNEL_DIR, sockets_volume(spec), type="volume", read_only=True),
            Mount(RELAY_OWN_DIR, relay_dir(spec), type="bind"),
            Mount(
                f"{RELAY_HELD_DIR}/workspace", workspace_volume(spec), type="volume", read_only=True
            ),
            Mount(
                f"{RELAY_HELD_DIR}/packages", packages_volume(spec), type="volume", read_only=True
            ),
        ],
        log_max_size="64k",
        command=["python3", "-I", "-c", relay_source, *argv],
        ipc_mode="private",
        ulimits=[Ulimit(name="core", soft=0, hard=0)],
    )


def holder_container(spec: SandboxSpec) -> dict[str, Any]:
    """The holder: it only sleeps, so that Docker keeps the tmpfs volumes mounted while no
    kernel container runs. The engine unmounts a volume (emptying a tmpfs) when the last
    container using it stops: while a sandbox has its first kernel, its relay holds the volumes
    with it; the holder is made at the first restart, before kernel or relay is stopped
    (``DockerBackend.hold``), and stays. Holding the sockets volume too spares every restart
    mounting it afresh (about 100 ms); a new kernel binds its sockets over the old files."""
    return hardened(
        spec,
        "holder",
        user=spec.user,
        memory=32 * MIB,
        nano_cpus=int(0.1e9),
        pids_limit=8,
        mounts=[
            Mount(WORKSPACE, workspace_volume(spec), type="volume"),
            Mount(PACKAGES_DIR, packages_volume(spec), type="volume"),
            Mount(CONTAINER_RUNTIME_DIR, sockets_volume(spec), type="volume"),
        ],
        log_max_size="64k",
        command=["sleep", "infinity"],
        name=holder_name(spec),
    )


def volumes(spec: SandboxSpec) -> list[dict[str, Any]]:
    """The keyword arguments of ``volumes.create`` for the workspace, packages and sockets
    volumes: size-limited tmpfs, owned by the sandbox's user."""
    uid, _, gid = spec.user.partition(":")
    owner = f"uid={uid},gid={gid},mode=0755,nosuid,nodev"
    labels = {SANDBOX_LABEL: spec.sandbox_id, **spec.owner_labels}
    return [
        {
            "name": name,
            "driver": "local",
            "driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": f"size={size},{owner}"},
            "labels": labels,
        }
        for name, size in (
            (workspace_volume(spec), str(spec.disk_limit)),
            (packages_volume(spec), str(spec.disk_limit)),
            (sockets_volume(spec), SOCKETS_VOLUME_SIZE),
        )
    ]
