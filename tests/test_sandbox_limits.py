"""Limits as seen from inside a real sandbox. Hardening and hostile code: tests/security/."""

from __future__ import annotations

import ast

import docker

from ai_computer import SandboxClient
from ai_computer.limits import MIB

READ_CGROUP = """
def cgroup(path):
    try:
        return open('/sys/fs/cgroup/' + path).read().strip()
    except OSError:
        return None
"""


async def cgroup_values(client: SandboxClient, *paths: str) -> list[str | None]:
    response = await client.execute_code(READ_CGROUP + f"[cgroup(p) for p in {list(paths)!r}]")
    assert response.success, response.error
    return ast.literal_eval(response.data["result"])  # a list literal of strings produced above


async def test_chosen_limits_are_enforced_by_the_cgroup(docker_engine: docker.DockerClient) -> None:
    async with SandboxClient(memory_limit="384M", cpu_limit=1.5) as client:
        memory, memsw, quota, period, pids = await cgroup_values(
            client,
            "memory/memory.limit_in_bytes",
            "memory/memory.memsw.limit_in_bytes",
            "cpu/cpu.cfs_quota_us",
            "cpu/cpu.cfs_period_us",
            "pids/pids.max",
        )
        assert int(memory) == 384 * MIB
        assert memsw is None or int(memsw) == 384 * MIB  # swap off (when the kernel accounts swap)
        assert int(quota) / int(period) == 1.5
        assert pids == "256"
        # 1.5 CPUs are 2 threads' worth.
        counts = await client.execute_code(
            "import os\n(os.environ['OMP_NUM_THREADS'], os.cpu_count())"
        )
        assert counts.data["result"] == "('2', 2)"


async def test_defaults_are_512m_and_one_cpu(shared_sandbox: SandboxClient) -> None:
    memory, quota, period = await cgroup_values(
        shared_sandbox,
        "memory/memory.limit_in_bytes",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
    )
    assert int(memory) == 512 * MIB
    assert int(quota) == int(period)


async def test_the_sandbox_sees_its_cpu_limit_as_its_cpu_count(
    shared_sandbox: SandboxClient,
) -> None:
    # Pools sized by the host's cores (2 on CI's machine) would oversubscribe a 1-CPU quota.
    counts = await shared_sandbox.execute_code(
        "import os, multiprocessing, concurrent.futures as cf\n"
        "(os.cpu_count(), multiprocessing.cpu_count(), cf.ThreadPoolExecutor()._max_workers)"
    )
    assert counts.data["result"] == "(1, 1, 5)"
    shell = await shared_sandbox.execute_shell(
        "sh", ["-c", "nproc; python -c 'import os; print(os.cpu_count())'"]
    )
    assert shell.data["stdout"] == "1\n1\n"
