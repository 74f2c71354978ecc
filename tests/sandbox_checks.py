"""Checks shared by the integration tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import docker

from ai_computer import SandboxClient
from ai_computer.backends import removals
from ai_computer.backends.labels import SANDBOX_LABEL, default_runtime_root


async def still_works(client: SandboxClient) -> None:
    """The sandbox answers plain code after whatever the test did to it."""
    response = await client.execute_code("1 + 1", timeout=30)
    assert response.success, response.error
    assert response.data is not None and response.data["result"] == "2"


def leftovers(engine: docker.DockerClient, sandbox_id: str) -> list[str]:
    """What exists of a sandbox: its containers, volumes and runtime directory (once a removal
    this process handed to a worker thread has finished)."""
    removals.wait([sandbox_id], timeout=60)
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    # The low-level listing: containers.list() inspects each one, which fails with a 404 for a
    # container removed meanwhile.
    found = [
        f"container {c['Names'][0]}" for c in engine.api.containers(all=True, filters=selector)
    ]
    found += [f"volume {v['Name']}" for v in engine.api.volumes(filters=selector)["Volumes"] or []]
    if os.path.exists(os.path.join(default_runtime_root(), sandbox_id)):
        found.append("runtime dir")
    return found


def run_client(script: str) -> dict[str, Any]:
    """Run an SDK script in a process of its own (so that its peak memory is the client's
    alone); return the JSON report it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
