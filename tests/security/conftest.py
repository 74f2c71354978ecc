"""Fixtures of the security and fault suite: each test gets hostile code its own sandbox, and
every case ends by checking that the same sandbox still runs ``1+1``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import docker
import pytest
import pytest_asyncio

from ai_computer import SandboxClient
from ai_computer.limits import RUNTIMES

ENGINE_RESTART = "engine_restart"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ENGINE_RESTART}: restarts the Docker engine; always runs last"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Restarting the engine disturbs every sandbox on it: do it after everything else.
    items.sort(key=lambda item: item.get_closest_marker(ENGINE_RESTART) is not None)


@pytest_asyncio.fixture(params=RUNTIMES)
async def hostile(
    request: pytest.FixtureRequest, docker_engine: docker.DockerClient
) -> AsyncIterator[SandboxClient]:
    """A fresh 256M sandbox with short time limits and a 1 MiB output cap, under each runtime
    (runc, and gVisor: the hostile cases must hold behind both walls)."""
    if request.param == "gvisor":
        request.getfixturevalue("gvisor")
    client = SandboxClient(
        memory_limit="256M",
        timeout=30,
        interrupt_grace=2,
        output_limit="1M",
        disk_limit="64M",
        runtime=request.param,
    )
    await client.setup()
    try:
        yield client
    finally:
        await client.cleanup()


@pytest_asyncio.fixture(scope="module", params=RUNTIMES)
async def walled(
    request: pytest.FixtureRequest, shared_sandbox: SandboxClient
) -> AsyncIterator[SandboxClient]:
    """A sandbox shared by a module's cases, behind each wall: runc (the session's shared one)
    and gVisor (whose file proxy resolves paths its own way)."""
    if request.param == "runc":
        yield shared_sandbox
        return
    request.getfixturevalue("gvisor")
    async with SandboxClient(timeout=60, runtime="gvisor") as client:
        yield client
