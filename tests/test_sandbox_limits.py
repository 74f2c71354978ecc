"""Limits and hardening as seen from inside a real sandbox."""

from __future__ import annotations

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
    return eval(response.data["result"])  # a list literal of strings produced above


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
        env = await client.execute_code("import os; os.environ['OMP_NUM_THREADS']")
        assert env.data["result"] == "'2'"


async def test_defaults_are_512m_and_one_cpu(shared_sandbox: SandboxClient) -> None:
    memory, quota, period = await cgroup_values(
        shared_sandbox, "memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us"
    )
    assert int(memory) == 512 * MIB
    assert int(quota) == int(period)


async def test_runs_as_non_root_without_capabilities(shared_sandbox: SandboxClient) -> None:
    code = (
        "import os\n"
        "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)\n"
        "(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapBnd'].strip(), status['NoNewPrivs'].strip())"
    )
    response = await shared_sandbox.execute_code(code)
    assert response.data["result"] == "(1000, 1000, '0000000000000000', '0000000000000000', '1')"


async def test_root_file_system_is_read_only(shared_sandbox: SandboxClient) -> None:
    code = (
        "import errno\nresults = []\n"
        "for path in ['/usr/evil', '/etc/evil', '/evil']:\n"
        "    try:\n        open(path, 'w')\n        results.append('written')\n"
        "    except OSError as exc:\n        results.append(errno.errorcode[exc.errno])\n"
        "open('/tmp/ok', 'w').write('tmp is writable'); open('/workspace/ok', 'w').write('so is the workspace')\n"
        "results"
    )
    response = await shared_sandbox.execute_code(code)
    assert response.success, response.error
    assert response.data["result"] == "['EROFS', 'EROFS', 'EROFS']"


async def test_no_network_only_loopback(shared_sandbox: SandboxClient) -> None:
    code = (
        "import socket, os\n"
        "names = sorted(name for _, name in socket.if_nameindex())\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=2)\n    outcome = 'connected'\n"
        "except OSError as exc:\n    outcome = type(exc).__name__\n"
        "(names, outcome)"
    )
    response = await shared_sandbox.execute_code(code)
    assert response.data["result"] == "(['lo'], 'ConnectionRefusedError')"


async def test_host_environment_is_not_passed_in(shared_sandbox: SandboxClient, monkeypatch) -> None:
    response = await shared_sandbox.execute_code("import os; sorted(os.environ)")
    names = eval(response.data["result"])
    for host_only in ("PATH_INFO", "PWD", "USER", "SSH_AUTH_SOCK", "DOCKER_HOST", "VIRTUAL_ENV"):
        assert host_only not in names


async def test_fork_bomb_is_stopped_by_the_pids_limit(sandbox: SandboxClient) -> None:
    code = (
        "import subprocess\nprocs = []\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        procs.append(subprocess.Popen(['sleep', '60']))\n"
        "except OSError as exc:\n    print('refused', exc.errno)\n"
        "count = len(procs)\n"
        "for p in procs: p.kill(); p.wait()\n"
        "count"
    )
    response = await sandbox.execute_code(code, timeout=60)
    assert "refused" in response.data["output"], response
    assert 50 < int(response.data["result"]) < 256
    assert (await sandbox.execute_code("1 + 1")).data["result"] == "2"
