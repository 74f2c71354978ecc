"""Sandboxes die with their owner: a process killed with SIGKILL while it owns a sandbox, a
pool and a prestarted Jupyter kernel (with its spare) leaves nothing, without ``gc``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from textwrap import dedent

import docker

from ai_computer.backends.labels import OWNER_PID_LABEL

OWNER = dedent("""
    import asyncio, json
    from ai_computer import SandboxClient, SandboxPool
    from ai_computer.kernel import spares
    from ai_computer.kernel.kernelspec import sandbox_kernel_spec
    from ai_computer.kernel.manager import SandboxKernelManager

    async def main():
        client = SandboxClient()
        await client.setup()
        pool = SandboxPool(size=1)
        await pool.start()
        kernel = SandboxKernelManager(sandbox_kernel_spec({"prestart": 1}))
        await kernel.start_kernel()
        while not any(prestarted.idle for prestarted in spares._PRESTARTED.values()):
            await asyncio.sleep(0.05)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")
BOUND = 30  # seconds: the watchdog takes about one


def _objects(engine: docker.DockerClient, pid: int) -> list[str]:
    selector = {"label": f"{OWNER_PID_LABEL}={pid}"}
    found = [
        f"container {c['Names'][0]}" for c in engine.api.containers(all=True, filters=selector)
    ]
    return found + [
        f"volume {v['Name']}" for v in engine.api.volumes(filters=selector)["Volumes"] or []
    ]


def test_sandboxes_go_when_their_owner_is_killed(docker_engine: docker.DockerClient) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True
    ) as owner:
        try:
            assert owner.stdout is not None
            assert json.loads(owner.stdout.readline()) == {"ready": True}
            made = _objects(docker_engine, owner.pid)
            # The client's, the pool's, the kernel's and its spare: 2 containers (no restart, so
            # no holder yet) and 3 volumes each.
            assert len(made) == 20, made
        finally:
            os.kill(owner.pid, signal.SIGKILL)
    deadline = time.monotonic() + BOUND
    while _objects(docker_engine, owner.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _objects(docker_engine, owner.pid) == []
