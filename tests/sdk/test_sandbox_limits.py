"""Limits as seen from inside a real sandbox. Hardening and hostile code: tests/security/."""

from __future__ import annotations

import ast

import docker

from ai_computer import SandboxClient
from ai_computer.limits import MIB

READ_CGROUP = """
import os
V2 = os.path.exists('/sys/fs/cgroup/cgroup.controllers')  # the unified hierarchy (most hosts)
def read(path):
    try:
        return open('/sys/fs/cgroup/' + path).read().strip()
    except OSError:
        return None
def limits():
    if V2:
        memory, swap = read('memory.max'), read('memory.swap.max')
        quota, period = read('cpu.max').split()
        pids = read('pids.max')
    else:
        memory = read('memory/memory.limit_in_bytes')
        total = read('memory/memory.memsw.limit_in_bytes')
        swap = None if total is None else str(int(total) - int(memory))
        quota, period = read('cpu/cpu.cfs_quota_us'), read('cpu/cpu.cfs_period_us')
        pids = read('pids/pids.max')
    return {'memory': int(memory), 'swap': swap, 'cpus': int(quota) / int(period), 'pids': pids}
"""


async def cgroup_limits(client: SandboxClient) -> dict[str, object]:
    """The sandbox's cgroup limits, read from cgroup v2's files or v1's, whichever it has."""
    response = await client.execute_code(READ_CGROUP + "limits()")
    assert response.success, response.error
    return ast.literal_eval(response.data["result"])  # a dict literal produced above


async def test_chosen_limits_are_enforced_by_the_cgroup(docker_engine: docker.DockerClient) -> None:
    async with SandboxClient(memory_limit="384M", cpu_limit=1.5) as client:
        limits = await cgroup_limits(client)
        assert limits["memory"] == 384 * MIB
        # Swap off, where the kernel accounts swap (it need not, on v1).
        assert limits["swap"] in (None, "0"), limits
        assert limits["cpus"] == 1.5
        assert limits["pids"] == "256"
        # 1.5 CPUs are 2 threads' worth.
        counts = await client.execute_code(
            "import os\n(os.environ['OMP_NUM_THREADS'], os.cpu_count())"
        )
        assert counts.data["result"] == "('2', 2)"


async def test_defaults_are_512m_and_one_cpu(shared_sandbox: SandboxClient) -> None:
    limits = await cgroup_limits(shared_sandbox)
    assert limits["memory"] == 512 * MIB
    assert limits["cpus"] == 1.0


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
