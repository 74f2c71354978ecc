"""Shared fixtures. Integration tests use the real Docker engine and the real sandbox image;
there are no skips: a missing engine or image is a failure, with a message saying what to do."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
import pytest_asyncio
from service_process import ServiceProcess, start_service

from ai_computer import SandboxClient
from ai_computer.backends.image import default_image_tag
from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL


def labelled_containers(client: docker.DockerClient) -> list[str]:
    """Sandbox containers made by this test process (other runs may share the engine)."""
    mine = [SANDBOX_LABEL, f"{OWNER_PID_LABEL}={os.getpid()}"]
    return [c.id for c in client.containers.list(all=True, filters={"label": mine})]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """The real engine. At the end, any sandbox container still present is removed and reported."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine: {exc}; run the tests through `bash setup.sh test`")
    try:
        client.images.get(default_image_tag())
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {default_image_tag()} missing: run `ai-computer image build`")
    before = set(labelled_containers(client))
    yield client
    leaked = set(labelled_containers(client)) - before
    for container_id in leaked:
        client.api.remove_container(container_id, force=True)
    client.close()
    assert not leaked, f"tests leaked sandbox containers: {leaked}"


@pytest_asyncio.fixture(scope="session")
async def shared_sandbox(docker_engine: docker.DockerClient) -> AsyncIterator[SandboxClient]:
    """One sandbox for tests that only read its behaviour (saves a start per test)."""
    async with SandboxClient(timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def gvisor(docker_engine: docker.DockerClient) -> None:
    """gVisor registered with the engine: a failure, never a skip, when it is not (CI has it:
    `bash setup.sh test` installs and registers it)."""
    from ai_computer.backends import backend
    from ai_computer.errors import RuntimeUnavailableError

    try:
        backend().require_gvisor()  # type: ignore[attr-defined]
    except RuntimeUnavailableError as exc:
        pytest.fail(f"{exc} (`bash setup.sh test` does it)")


@pytest.fixture(scope="session")
def service(
    docker_engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A real `ai-computer serve` for the whole run; stopped (SIGTERM) at the end."""
    process = start_service(tmp_path_factory.mktemp("service"), "--per-token", "16")
    yield process
    assert process.stop() == 0, "".join(process.log)


@pytest_asyncio.fixture(scope="session", params=["local", "gvisor", "remote"])
async def core_sandbox(
    request: pytest.FixtureRequest, shared_sandbox: SandboxClient
) -> AsyncIterator[SandboxClient]:
    """The core suites' sandbox, three times: local (runc), local under gVisor, and through
    `ai-computer serve` with the SDK's remote mode (``SandboxClient(base_url=..., token=...)``):
    the same tests must pass."""
    if request.param == "local":
        yield shared_sandbox
        return
    if request.param == "gvisor":
        request.getfixturevalue("gvisor")
        async with SandboxClient(timeout=60, runtime="gvisor") as client:
            yield client
        return
    service: ServiceProcess = request.getfixturevalue("service")
    async with SandboxClient(base_url=service.url, token=service.token, timeout=60) as client:
        yield client


@pytest_asyncio.fixture
async def sandbox(docker_engine: docker.DockerClient) -> AsyncIterator[SandboxClient]:
    """A fresh sandbox, always cleaned up (even when the test fails)."""
    client = SandboxClient(memory_limit="256M", timeout=30, interrupt_grace=2)
    await client.setup()
    try:
        yield client
    finally:
        await client.cleanup()


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Jupyter data directory holding the sandbox kernelspec, installed the way a user would
    (`ai-computer kernelspec install --prefix P`), and named by JUPYTER_PATH while tests run."""
    from ai_computer.cli import main

    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    assert main(["kernelspec", "install", "--prefix", str(prefix)]) == 0
    path = str(prefix / "share" / "jupyter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", path)
        yield path
