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
    import asyncio, gc, json, time
    from ai_computer import SandboxClient

    async def main(keep_running):
        client = SandboxClient()
        await client.setup()
        assert (await client.execute_code("1 + 1")).data["result"] == "2"
        sandbox_id = client.sandbox_id
        del client
        started = time.monotonic()
        gc.collect()
        collected = time.monotonic() - started
        if keep_running:
            await asyncio.sleep(3)  # the loop goes on, as an agent server's does
        return sandbox_id, collected

    sandbox_id, collected = asyncio.run(main({keep_running}))
    print(json.dumps({{"sandbox_id": sandbox_id, "collected": collected}}), flush=True)
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
    deadline = time.monotonic() + BOUND
    while leftovers(docker_engine, report["sandbox_id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(docker_engine, report["sandbox_id"]) == []
