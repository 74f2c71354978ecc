"""The Docker engine restarts while a sandbox runs: the call in flight fails with a clear error
within a bounded time, and the client can then restart the sandbox or remove it.

This restarts the engine of the whole machine (every container on it stops), so it always runs
last (see conftest.py). It restarts dockerd the way setup.sh starts it."""

from __future__ import annotations

import gc
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from ai_computer.backends.labels import SANDBOX_LABEL


def engine_answers() -> bool:
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return done.returncode == 0


def wait_until(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds:g} s")
        time.sleep(0.2)


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited: a zombie counts as gone (its parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def restart_engine() -> None:
    """Stop dockerd and start it again as setup.sh does; return once `docker info` answers."""
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=120)
    else:
        pid = int(Path("/var/run/docker.pid").read_text())
        # The same command line again (setup.sh's flags, and its config file naming gVisor).
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: process_gone(pid), 60, "dockerd did not stop")
        # As setup.sh starts it: in its own session, in the background (no Popen of ours left
        # to outlive).
        command = shlex.join(arg.decode() for arg in argv)
        subprocess.run(["sh", "-c", f"setsid {command} >>/var/log/dockerd.log 2>&1 </dev/null &"])
    wait_until(engine_answers, 60, "the Docker engine did not answer again")


SCENARIO = """
import asyncio, json, sys, time
from ai_computer import SandboxClient

async def main():
    client = SandboxClient(timeout=120)
    await client.setup()
    report = {"sandbox_id": client.sandbox_id}
    try:
        running = asyncio.ensure_future(client.execute_code("import time; time.sleep(100)"))
        await asyncio.sleep(0.5)
        print("restart the engine now", flush=True)
        sys.stdin.readline()  # the engine has been restarted
        response = await asyncio.wait_for(running, 90)
        report["call"] = [response.success, response.error]
        restarted = await client.restart()
        report["restart"] = [restarted.success, restarted.error]
        report["restart_message"] = (restarted.data or {}).get("message")
        after = await client.execute_code("1 + 1")
        report["after"] = after.data["result"]
    finally:
        await client.cleanup()
    print(json.dumps(report), flush=True)

asyncio.run(main())
"""


@pytest.mark.engine_restart
@pytest.mark.timeout(240)
# The session's own sandboxes (shared_sandbox) lose their engine connections too: the sockets the
# engine cut are dropped by docker-py unclosed, in their watcher threads.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_engine_restart_fails_the_call_clearly_and_the_sandbox_recovers(
    docker_engine: docker.DockerClient,
) -> None:
    # The client runs in a process of its own: connections cut by the restart stay there.
    client = subprocess.Popen(
        [sys.executable, "-c", SCENARIO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdin is not None and client.stdout is not None
        assert client.stdout.readline().strip() == "restart the engine now"
        started = time.monotonic()
        restart_engine()
        client.stdin.write("done\n")
        client.stdin.flush()
        report = json.loads(client.stdout.readline())
        assert client.wait(timeout=60) == 0
    finally:
        client.kill()
        client.wait()
        for stream in (client.stdin, client.stdout):
            if stream is not None:
                stream.close()
    # The call in flight failed, plainly and within a bounded time, and the client recovered.
    assert time.monotonic() - started < 120
    success, error = report["call"]
    assert not success and error.startswith("kernel died ("), error
    assert report["restart"] == [True, None]
    # The engine's restart unmounted the workspace: whichever restart noticed it says so.
    assert "/workspace was emptied" in error + report["restart_message"], report
    assert report["after"] == "2"
    selector = {"label": f"{SANDBOX_LABEL}={report['sandbox_id']}"}
    assert docker_engine.containers.list(all=True, filters=selector) == []
    # Collect the sockets the restart cut now, while this test's warning filter applies, rather
    # than at the end of the session.
    gc.collect()
