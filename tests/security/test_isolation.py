"""Cases 8, 9 and 10: nothing of the host is visible, there is no network, and no privilege."""

from __future__ import annotations

import ast
import os
import socket
import uuid
from pathlib import Path
from textwrap import dedent

import docker
import pytest
from sandbox_checks import still_works

from ai_computer import SandboxClient
from ai_computer.backends.labels import default_runtime_root

# What the image, the provisioner, sh and ipykernel set; anything else would come from the host.
# (No PYDEVD_USE_FRAME_EVAL: debugpy, which set it, is not in the image.)
EXPECTED_ENVIRONMENT = {
    "AI_COMPUTER_CPU_LIMIT", "AI_COMPUTER_MEMORY_LIMIT", "AI_COMPUTER_SANDBOX_ID", "CLICOLOR",
    "CLICOLOR_FORCE", "FORCE_COLOR", "GIT_PAGER", "HOME", "HOSTNAME", "LANG", "MKL_NUM_THREADS",
    "MPLBACKEND", "MPLCONFIGDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PAGER", "PATH", "PWD",
    "PYTHON_CPU_COUNT", "PYTHONDONTWRITEBYTECODE", "TERM", "VIRTUAL_ENV",
}  # fmt: skip


FIND_MARKER = """
import os
def find_marker(marker, roots):
    hits = []
    for root in roots:
        for folder, _, names in os.walk(root, onerror=lambda error: None):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    with open(path, 'rb') as file:
                        if marker.encode() in file.read(1 << 20):
                            hits.append(path)
                except OSError:
                    pass
    return hits
"""


async def test_host_files_and_other_sandboxes_are_invisible(
    docker_engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"host-canary-{uuid.uuid4()}"
    canary = tmp_path / "canary.txt"
    canary.write_text(marker)
    monkeypatch.setenv("AI_COMPUTER_HOST_CANARY", marker)
    async with SandboxClient(environment={"ASKED_FOR": "yes"}) as other, SandboxClient() as client:
        await other.execute_code(f"open('/workspace/secret.txt', 'w').write({marker!r})")
        host_paths = [
            str(canary), str(tmp_path), "/var/run/docker.sock", "/run/docker.sock",
            "/var/lib/docker", "/etc/docker", "/root/.docker", "/host",
            os.path.join(default_runtime_root(), other.sandbox_id),
        ]  # fmt: skip
        code = FIND_MARKER + dedent(f"""
            visible = [p for p in {host_paths!r} if os.path.lexists(p)]
            roots = ['/workspace', '/tmp', '/home', '/run', '/opt/packages', '/mnt', '/media',
                     '/srv', '/var', '/dev/shm']
            found = find_marker({marker!r}, roots)
            environ = open('/proc/self/environ', 'rb').read() + open('/proc/1/environ', 'rb').read()
            (visible, found, {marker!r}.encode() in environ, sorted(os.environ))
        """)
        response = await client.execute_code(code, timeout=120)
        assert response.success, response.error
        visible, found, in_environ, names = ast.literal_eval(response.data["result"])
        assert visible == []
        assert found == []
        assert not in_environ
        assert set(names) == EXPECTED_ENVIRONMENT
        asked = await other.execute_code("import os; os.environ['ASKED_FOR']")
        assert asked.data["result"] == "'yes'"
        await still_works(client)


async def test_kernel_interfaces_are_read_only(walled: SandboxClient) -> None:
    code = dedent("""
        import errno
        outcomes = {}
        for path in ['/proc/sys/kernel/hostname', '/proc/sysrq-trigger', '/sys/kernel/profiling',
                     '/sys/fs/cgroup/memory/memory.limit_in_bytes', '/proc/kcore']:
            try:
                open(path, 'wb').write(b'1')
                outcomes[path] = 'written'
            except OSError as exc:
                outcomes[path] = errno.errorcode[exc.errno]
        outcomes
    """)
    outcomes = ast.literal_eval((await walled.execute_code(code)).data["result"])
    assert "written" not in outcomes.values(), outcomes


async def test_no_network_only_loopback(walled: SandboxClient) -> None:
    # A server on the host's loopback: the sandbox's 127.0.0.1 is its own, so it cannot reach it.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = dedent(f"""
            import socket
            names = sorted(name for _, name in socket.if_nameindex())
            routes = open('/proc/net/route').read().splitlines()[1:]
            try:
                socket.create_connection(('127.0.0.1', {port}), timeout=2)
                outcome = 'connected'
            except OSError as exc:
                outcome = type(exc).__name__
            (names, routes, outcome)
        """)
        response = await walled.execute_code(code)
    assert response.data["result"] == "(['lo'], [], 'ConnectionRefusedError')"


async def test_localhost_is_the_sandboxs_own_loopback(walled: SandboxClient) -> None:
    # The engine writes no /etc/hosts without networking (specs.HOSTS is mounted instead): a
    # server that user code runs on localhost is reached by that name, and /etc/hosts is ours.
    code = dedent("""
        import socket
        with socket.create_server(('localhost', 0)) as server:
            client = socket.create_connection(('localhost', server.getsockname()[1]), timeout=2)
            client.close()
        try:
            open('/etc/hosts', 'a').write('10.0.0.1 host\\n')
            outcome = 'written'
        except OSError:  # read-only, and root's
            outcome = 'refused'
        (sorted({info[4][0] for info in socket.getaddrinfo('localhost', 0)}), outcome)
    """)
    response = await walled.execute_code(code)
    assert response.data["result"] == "(['127.0.0.1', '::1'], 'refused')", response


async def test_no_privileges(walled: SandboxClient) -> None:
    code = dedent("""
        import ctypes, errno, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        lines = open('/proc/self/status').read().splitlines()
        status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)
        fields = {name: status[name].strip() for name in ('CapEff', 'CapBnd')}
        fields['NoNewPrivs'] = str(libc.prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS (gVisor too)
        def attempt(action):
            try:
                result = action()
            except OSError as exc:
                return errno.errorcode[exc.errno]
            return result
        def syscall(call, *args):
            if call(*args) == 0:
                return 'allowed'
            return errno.errorcode[ctypes.get_errno()]
        outcomes = {
            'setuid': attempt(lambda: os.setuid(0)),
            'mount': syscall(libc.mount, b'none', b'/mnt', b'tmpfs', 0, None),
            'unshare-user': syscall(libc.unshare, 0x10000000),
            'unshare-mount': syscall(libc.unshare, 0x00020000),
            'mount-after-unshare': syscall(libc.mount, b'none', b'/mnt', b'tmpfs', 0, None),
            'su': subprocess.run(['su', '-c', 'id'], input=b'', capture_output=True).returncode,
            'root-fs': attempt(lambda: open('/usr/evil', 'w')),
            'etc': attempt(lambda: open('/etc/passwd', 'a')),
        }
        (os.getuid(), os.getgid(), fields, outcomes)
    """)
    response = await walled.execute_code(code)
    assert response.success, response.error
    uid, gid, fields, outcomes = ast.literal_eval(response.data["result"])
    assert uid != 0 and gid != 0
    assert fields == {"CapEff": "0" * 16, "CapBnd": "0" * 16, "NoNewPrivs": "1"}
    # Refused behind both walls; gVisor has no user namespaces to make (EINVAL), and gives the
    # sandbox user a mount namespace of its own kernel's, in which mounting is still refused.
    refusals = {"EPERM"} if walled.runtime == "runc" else {"EPERM", "EINVAL"}
    actions = ["setuid", "mount", "unshare-user", "mount-after-unshare"]
    if walled.runtime == "runc":
        actions.append("unshare-mount")
    for action in actions:
        assert outcomes[action] in refusals, (action, outcomes[action])
    assert outcomes["su"] != 0
    # gVisor checks the permission before the read-only mount (root's EROFS: test_gvisor).
    assert outcomes["root-fs"] in ("EROFS", "EACCES") and outcomes["etc"] in ("EACCES", "EROFS")
    if walled.runtime == "runc":
        assert outcomes["root-fs"] == "EROFS"
    await still_works(walled)
