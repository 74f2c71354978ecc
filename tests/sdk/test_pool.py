"""SandboxPool: sandboxes started ahead of need, against the real Docker engine."""

from __future__ import annotations

import asyncio

import docker
import pytest

from ai_computer import ImageNotFoundError, SandboxPool, SandboxStateError
from ai_computer.backends import removals
from ai_computer.backends.labels import SANDBOX_LABEL
from ai_computer.limits import MIB


def containers_of(engine: docker.DockerClient, sandbox_ids: list[str]) -> list[str]:
    removals.wait(sandbox_ids, timeout=60)  # those cleanup() handed to a worker thread
    found = []
    for sandbox_id in sandbox_ids:
        selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
        found += [c.name for c in engine.containers.list(all=True, filters=selector)]
    return found


async def test_pool_hands_out_separate_ready_sandboxes_and_refills(
    docker_engine: docker.DockerClient,
) -> None:
    async with SandboxPool(size=2, memory_limit="256M", timeout=30) as pool:
        assert pool.idle == 2
        first, second = await pool.acquire(), await pool.acquire()
        assert first.state == second.state == "ready"
        assert first.sandbox_id != second.sandbox_id
        assert first.memory_limit == 256 * MIB and first.timeout == 30
        wrote = await first.execute_code("open('mine.txt', 'w').write('first')")
        assert wrote.success
        other = await second.execute_code("import os; os.listdir('.')")
        assert other.data["result"] == "[]"
        await pool.start()  # waits for the replacements
        assert pool.idle == 2
        idle_ids = [client.sandbox_id for client in pool._spares._ready]
        async with pool.sandbox() as third:
            assert third.sandbox_id in idle_ids
            assert (await third.execute_code("6 * 7")).data["result"] == "42"
        assert third.state == "closed"
        handed_out = [first.sandbox_id, second.sandbox_id]
        await asyncio.gather(first.cleanup(), second.cleanup())
    assert containers_of(docker_engine, handed_out + idle_ids) == []


async def test_a_sandbox_that_died_idle_is_never_handed_out(
    docker_engine: docker.DockerClient,
) -> None:
    async with SandboxPool(size=1) as pool:
        dead = pool._spares._ready[0]
        docker_engine.containers.get(dead._session.provisioner.container_id).kill()
        while (
            await dead._session.provisioner.poll() is None
        ):  # the exit is seen by a watcher thread
            await asyncio.sleep(0.05)
        async with pool.sandbox() as client:
            assert client is not dead
            assert (await client.execute_code("1 + 1")).data["result"] == "2"
        assert dead.state == "closed"
    assert containers_of(docker_engine, [dead.sandbox_id, client.sandbox_id]) == []


async def test_pool_bad_use_is_refused_clearly(docker_engine: docker.DockerClient) -> None:
    with pytest.raises(ValueError, match=r"pool size 0 is out of range \(allowed: 1 to 16\)"):
        SandboxPool(size=0)
    with pytest.raises(ValueError, match="memory_limit '3G' exceeds the maximum of 2G"):
        SandboxPool(memory_limit="3G")
    pool = SandboxPool(size=1, image="ai-computer-sandbox:no-such-tag")
    with pytest.raises(ImageNotFoundError, match="ai-computer image build"):
        await pool.acquire()
    await pool.close()
    with pytest.raises(SandboxStateError, match="the pool was closed"):
        await pool.acquire()
