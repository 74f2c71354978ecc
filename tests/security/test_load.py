"""Load: many sandboxes at once, each running many executions with output. Every output arrives
complete and in order, nothing crosses between sandboxes, and all are removed at the end.
(benchmarks/bench_load.py runs the full 20 x 50 and reports wall time and peak memory.)"""

from __future__ import annotations

import asyncio
import time

import docker

from ai_computer import SandboxClient
from ai_computer.backends import removals
from ai_computer.backends.labels import SANDBOX_LABEL

SANDBOXES = 8
EXECUTIONS = 20

CELL = "for line in range(3):\n    print({tag!r}, line, 'x' * 200)\n{tag!r}"


def expected(tag: str) -> str:
    return "".join(f"{tag} {line} {'x' * 200}\n" for line in range(3))


async def run_one(client: SandboxClient, index: int) -> list[str]:
    problems = []
    for execution in range(EXECUTIONS):
        tag = f"sandbox-{index}-execution-{execution}"
        response = await client.execute_code(CELL.format(tag=tag), timeout=60)
        if not response.success or response.data["output"] != expected(tag):
            problems.append(f"{tag}: {response.error} {response.data['output'][:200]!r}")
        elif response.data["result"] != repr(tag):
            problems.append(f"{tag}: result {response.data['result']!r}")
    return problems


async def test_many_sandboxes_at_once_keep_their_outputs_apart(
    docker_engine: docker.DockerClient,
) -> None:
    clients = [SandboxClient(memory_limit="256M", cpu_limit=0.5) for _ in range(SANDBOXES)]
    started = time.monotonic()
    try:
        await asyncio.gather(*(client.setup() for client in clients))
        problems = await asyncio.gather(*(run_one(c, i) for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(client.cleanup() for client in clients))
    assert [p for p in problems if p] == []
    removals.wait([client.sandbox_id for client in clients], timeout=60)
    for client in clients:
        selector = {"label": f"{SANDBOX_LABEL}={client.sandbox_id}"}
        assert docker_engine.containers.list(all=True, filters=selector) == []
        assert docker_engine.volumes.list(filters=selector) == []
    assert time.monotonic() - started < 90
