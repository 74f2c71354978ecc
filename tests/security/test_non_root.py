"""Most users run the SDK as themselves, in the `docker` group, not as root: the hostile cases
that touch the host's files must leave nothing behind for them either."""

from __future__ import annotations

import json
import os
import pwd
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import docker
import pytest

from ai_computer.backends.labels import SANDBOX_LABEL

USER = "ai-computer-test"

AS_A_USER = dedent("""
    import asyncio, json, os
    from ai_computer import SandboxClient
    from ai_computer.backends.labels import default_runtime_root
    from ai_computer.backends.docker.sandboxes import collect_garbage

    LAUNCHER = '''
    import os
    for folder in ('/run/ai-computer-connection', '/run/ai-computer'):
        try:
            os.makedirs(folder + '/kept', exist_ok=True)
            os.chmod(folder + '/kept', 0o555)
        except OSError:
            pass
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()
    '''

    async def main():
        async with SandboxClient(memory_limit="256M", timeout=30) as client:
            sandbox_id = client.sandbox_id
            await client.fs.write_file("ipykernel_launcher.py", LAUNCHER)
            restarted = await client.restart()
            one = await client.execute_code("1 + 1")
            write = await client.fs.write_file("x.txt", "x")
            shell = await client.execute_shell("echo hi", timeout=5)
        await client.cleanup(wait=True)  # the removal done before looking at what is left
        root = default_runtime_root()
        print(json.dumps({
            "uid": os.getuid(),
            "root": root,
            "sandbox_id": sandbox_id,
            "restarted": restarted.success,
            "result": one.data["result"],
            "write": write.success,
            "shell": shell.data["stdout"],
            "left": os.listdir(root) if os.path.isdir(root) else [],
            "gc": collect_garbage(),
        }))

    asyncio.run(main())
""")


@pytest.fixture
def test_user() -> Iterator[pwd.struct_passwd]:
    """A user in the docker group, made for this test and removed after it."""
    if os.getuid() != 0:
        pytest.skip("creates a test user: run the suite as root (CI does)")
    subprocess.run(["userdel", "--remove", USER], capture_output=True)  # a leftover of a crash
    subprocess.run(["useradd", "--create-home", "--groups", "docker", USER], check=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", "--remove", USER], capture_output=True)


def _interpreter_for(user: str) -> str:
    """This Python, if the user may run it (a pyenv under /root is not theirs), else the
    system's of the same version (the virtualenv's packages are then put on its path)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), f"/usr/bin/python{version}"]
    for candidate in [*candidates, f"/usr/local/bin/python{version}"]:
        if (
            candidate
            and subprocess.run(["runuser", "-u", user, "--", "test", "-x", candidate]).returncode
            == 0
        ):
            return candidate
    pytest.fail(f"no Python {version} that {user} may run")


def test_a_user_in_the_docker_group_is_left_nothing(
    docker_engine: docker.DockerClient, test_user: pwd.struct_passwd
) -> None:
    repository = Path(__file__).parents[2]
    environment = {
        "HOME": test_user.pw_dir,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(repository), *site.getsitepackages()]),
    }
    done = subprocess.run(
        ["runuser", "-u", USER, "--", _interpreter_for(USER), "-c", AS_A_USER],
        capture_output=True,
        text=True,
        timeout=110,
        env=environment,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["uid"] == test_user.pw_uid and report["root"].endswith(f"-{test_user.pw_uid}")
    assert report["restarted"] and report["result"] == "2" and report["write"]
    assert report["shell"] == "hi\n"
    assert report["sandbox_id"] not in report["left"], report
    selector = {"label": f"{SANDBOX_LABEL}={report['sandbox_id']}"}
    assert docker_engine.containers.list(all=True, filters=selector) == []
    assert docker_engine.volumes.list(filters=selector) == []
