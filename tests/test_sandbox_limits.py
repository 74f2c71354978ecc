"""Limits and hardening as seen from inside a real sandbox."""

from __future__ import annotations

from textwrap import dedent

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
        shared_sandbox,
        "memory/memory.limit_in_bytes",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
    )
    assert int(memory) == 512 * MIB
    assert int(quota) == int(period)


async def test_runs_as_non_root_without_capabilities(shared_sandbox: SandboxClient) -> None:
    code = dedent("""
        import os
        lines = open('/proc/self/status').read().splitlines()
        status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)
        fields = [status[name].strip() for name in ('CapEff', 'CapBnd', 'NoNewPrivs')]
        (os.getuid(), os.getgid(), *fields)
    """)
    response = await shared_sandbox.execute_code(code)
    assert response.data["result"] == "(1000, 1000, '0000000000000000', '0000000000000000', '1')"


async def test_root_file_system_is_read_only(shared_sandbox: SandboxClient) -> None:
    code = dedent("""
        import errno
        results = []
        for path in ['/usr/evil', '/etc/evil', '/evil']:
            try:
                open(path, 'w')
                results.append('written')
            except OSError as exc:
                results.append(errno.errorcode[exc.errno])
        open('/tmp/ok', 'w').write('tmp is writable')
        open('/workspace/ok', 'w').write('so is the workspace')
        results
    """)
    response = await shared_sandbox.execute_code(code)
    assert response.success, response.error
    assert response.data["result"] == "['EROFS', 'EROFS', 'EROFS']"


async def test_no_network_only_loopback(shared_sandbox: SandboxClient) -> None:
    code = dedent("""
        import socket
        names = sorted(name for _, name in socket.if_nameindex())
        try:
            socket.create_connection(('127.0.0.1', 9), timeout=2)
            outcome = 'connected'
        except OSError as exc:
            outcome = type(exc).__name__
        (names, outcome)
    """)
    response = await shared_sandbox.execute_code(code)
    assert response.data["result"] == "(['lo'], 'ConnectionRefusedError')"


# What the image, the provisioner, sh and ipykernel set; anything else would come from the host.
EXPECTED_ENVIRONMENT = {
    "AI_COMPUTER_CPU_LIMIT", "AI_COMPUTER_MEMORY_LIMIT", "AI_COMPUTER_SANDBOX_ID", "CLICOLOR",
    "CLICOLOR_FORCE", "FORCE_COLOR", "GIT_PAGER", "HOME", "HOSTNAME", "LANG", "MKL_NUM_THREADS",
    "MPLBACKEND", "MPLCONFIGDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PAGER", "PATH", "PWD",
    "PYDEVD_USE_FRAME_EVAL", "PYTHONDONTWRITEBYTECODE", "TERM", "VIRTUAL_ENV",
}  # fmt: skip


async def test_host_environment_is_not_passed_in(docker_engine, monkeypatch) -> None:
    monkeypatch.setenv("AI_COMPUTER_HOST_CANARY", "host secret")
    async with SandboxClient(environment={"ASKED_FOR": "yes"}) as client:
        response = await client.execute_code("import os; dict(os.environ)")
    environment = eval(response.data["result"])
    assert set(environment) == EXPECTED_ENVIRONMENT | {"ASKED_FOR"}
    assert environment["ASKED_FOR"] == "yes"
    assert environment["HOME"] == "/home/sandbox"


async def test_fork_bomb_is_stopped_by_the_pids_limit(sandbox: SandboxClient) -> None:
    code = dedent("""
        import subprocess
        procs = []
        try:
            for _ in range(1000):
                procs.append(subprocess.Popen(['sleep', '60']))
        except OSError as exc:
            print('refused', exc.errno)
        count = len(procs)
        for p in procs:
            p.kill()
            p.wait()
        count
    """)
    response = await sandbox.execute_code(code, timeout=60)
    assert "refused" in response.data["output"], response
    assert 50 < int(response.data["result"]) < 256
    assert (await sandbox.execute_code("1 + 1")).data["result"] == "2"
