"""What a sandbox's container uses: memory and CPU, read from the Docker engine's statistics.

Blocking (docker-py), and slow on purpose: the engine samples CPU use over about one second
before it answers. Call :func:`read_container_usage` from a worker thread in async code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import docker.errors

from ..base import ContainerUsage
from .engine import docker_client

# Docker's zero time: what StartedAt says of a container that never started.
_NEVER = datetime(1, 1, 1, tzinfo=UTC)


def memory_in_use(memory_stats: dict[str, Any]) -> int:
    """Memory used, the way the docker CLI counts it: usage minus inactive file cache."""
    usage = int(memory_stats.get("usage") or 0)
    stats = memory_stats.get("stats") or {}
    # cgroup v1 names the hierarchical figure total_inactive_file; cgroup v2 inactive_file.
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    return max(0, usage - int(inactive or 0))


def cpu_in_use(cpu_stats: dict[str, Any], precpu_stats: dict[str, Any]) -> float:
    """Cores used between the engine's two samples (0.0 when there is only one)."""
    used = cpu_stats.get("cpu_usage", {}).get("total_usage", 0) - precpu_stats.get(
        "cpu_usage", {}
    ).get("total_usage", 0)
    system = cpu_stats.get("system_cpu_usage", 0) - precpu_stats.get("system_cpu_usage", 0)
    online = cpu_stats.get("online_cpus") or len(
        cpu_stats.get("cpu_usage", {}).get("percpu_usage") or []
    )
    if used <= 0 or system <= 0 or not online:
        return 0.0
    return float(used) / float(system) * float(online)


def _started_at(state: dict[str, Any]) -> datetime | None:
    try:
        started = datetime.fromisoformat(str(state.get("StartedAt")))
    except ValueError:
        return None
    return None if started == _NEVER else started


def read_container_usage(
    container_id: str, client: docker.DockerClient | None = None
) -> ContainerUsage | None:
    """Read a container's use of memory and CPU; None when the container no longer exists.
    ``client`` is the engine holding the container (default: the environment's).

    Raises :class:`~ai_computer.errors.DockerUnavailableError` when no engine answers.
    """
    client = client or docker_client()
    try:
        container = client.containers.get(container_id)
        state = container.attrs.get("State", {})
        if not state.get("Running"):
            return ContainerUsage(False, 0, 0, 0.0, _started_at(state))
        stats: dict[str, Any] = container.stats(stream=False)
    except docker.errors.NotFound:
        return None
    return ContainerUsage(
        running=True,
        memory_used=memory_in_use(stats.get("memory_stats") or {}),
        memory_limit=int((stats.get("memory_stats") or {}).get("limit") or 0),
        cpu_used=cpu_in_use(stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}),
        started_at=_started_at(state),
    )
