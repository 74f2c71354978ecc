"""A client dropped without ``cleanup()``: its sandbox is removed (with a warning naming
``cleanup()``), and nothing hangs, whether its loop goes on or ends at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from textwrap import dedent

import docker
import pytest
from sandbox_checks import leftovers

DROP = dedent("""
    import asyncio, gc, json, threading, time
    from ai_computer import SandboxClient
    from ai_computer.backends import backend

    def present(sandbox_id):
        return any(info.sandbox_id == sandbox_id for info in backend().list_sandboxes())

    async def main(keep_running):
        client = SandboxClient()
        await client.setup()
        assert (await client.execute_code("1 + 1")).data["result"] == "2"
        sandbox_id = client.sandbox_id
        del client
        started = time.monotonic()
        gc.collect()
        collected = time.monotonic() - started
        if keep_running:  # the loop goes on, as an agent server's does
            while present(sandbox_id) and time.monotonic() - started < 30:
                await asyncio.sleep(0.2)
        return sandbox_id, collected, started

    sandbox_id, collected, started = asyncio.run(main({keep_running}))
    for thread in threading.enumerate():  # the loop has ended: the removal runs on its own
        if thread.name == "ai-computer-dropped":
            thread.join(30)
    # Checked here, while this process (and so its watchdog) still lives.
    gone = not present(sandbox_id)
    print(json.dumps({{"sandbox_id": sandbox_id, "collected": collected, "gone": gone,
                       "seconds": time.monotonic() - started}}), flush=True)
""")
BOUND = 30  # seconds for the removal: far above the second or so it takes


@pytest.mark.parametrize("keep_running", [True, False], ids=["loop-goes-on", "loop-ends"])
def test_a_dropped_client_is_removed_and_nothing_hangs(
    docker_engine: docker.DockerClient, keep_running: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DROP.format(keep_running=keep_running)],
        capture_output=True,
        text=True,
        timeout=90,  # a hang in the ZMQ context's term() would end here
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["collected"] < 5  # the finalizer does not wait for the engine
    assert "without cleanup()" in done.stderr and "await client.cleanup()" in done.stderr
    assert "removing a dropped sandbox failed" not in done.stderr
    assert report["gone"], report  # removed by the client's finalizer, not by the watchdog
    deadline = time.monotonic() + BOUND
    while leftovers(docker_engine, report["sandbox_id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(docker_engine, report["sandbox_id"]) == []
