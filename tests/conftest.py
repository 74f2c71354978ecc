"""Shared fixtures. Integration tests use the real Docker engine and the real sandbox image;
there are no skips: a missing engine or image is a failure, with a message saying what to do."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import docker
import pytest
import pytest_asyncio
from service_process import ServiceProcess, start_service

from ai_computer import SandboxClient
from ai_computer.backends import removals
from ai_computer.backends.image import default_image_tag
from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL

if TYPE_CHECKING:
    from cluster.lab import Lab


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
    removals.wait(timeout=60)  # those cleanup() handed to a worker thread
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


NODE_LOSS = "node_loss"
"""Marks tests that kill a node of the swarm lab: they run after every other test using it."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{NODE_LOSS}: kills a swarm lab node; runs last")


SWARM_CORE_TESTS = {
    "test_stdout_stderr_and_result",
    "test_state_persists_and_counts_increase",
    "test_stream_yields_events_in_order_while_running",
    "test_text_and_bytes_round_trip",
    "test_large_file_round_trip_streams",
    "test_shell_exit_codes_stdout_and_stderr",
    "test_shell_has_no_network",
}
"""The core tests that also run on the swarm: the essentials of the remote path (execution,
streams, files both ways, shell, no network); the rest is the same code behind the service,
and the limits, isolation and OOM have their own tests in ``tests/cluster``."""
LAB_TIMEOUT = 600
"""Seconds for the first test that uses the swarm lab: pytest-timeout counts the set-up of its
fixtures (the lab: 25-80 s alone, far more on a loaded machine; the service; its node checks)."""


def _uses_the_lab(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    swarm_core = callspec is not None and callspec.params.get("core_sandbox") == "swarm"
    return swarm_core or "swarm_lab" in fixtures or "swarm_service" in fixtures


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [
        item
        for item in items
        if getattr(item, "callspec", None) is not None
        and item.callspec.params.get("core_sandbox") == "swarm"  # type: ignore[attr-defined]
        and getattr(item, "originalname", item.name) not in SWARM_CORE_TESTS
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]
    items.sort(key=lambda item: item.get_closest_marker(NODE_LOSS) is not None)
    first = next((item for item in items if _uses_the_lab(item)), None)
    if first is not None:
        first.add_marker(pytest.mark.timeout(LAB_TIMEOUT), append=False)  # before its own


@pytest.fixture(scope="session")
def swarm_lab(docker_engine: docker.DockerClient) -> Iterator[Lab]:
    """Three engines in network namespaces, a swarm and a registry holding the sandbox image
    (``tests/cluster/lab.py``): made once, removed at the end whatever happened (and by the
    next run, should this one be killed)."""
    from cluster import lab

    made = lab.up(default_image_tag())
    print(f"swarm lab up (slot {made.slot}): {made.timings}")
    try:
        yield made
    finally:
        made.down()


def swarm_arguments(made: Lab) -> list[str]:
    """`ai-computer serve` options for the lab's swarm."""
    return [
        "--backend", "swarm", "--manager", made.manager.url,
        "--node-docker-host", made.node_host_template, "--registry", made.registry,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def swarm_service(
    swarm_lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """`ai-computer serve --backend swarm` on the lab for the whole run."""
    process = start_service(
        tmp_path_factory.mktemp("swarm-service"),
        *swarm_arguments(swarm_lab),
        "--per-token", "40", "--max-sandboxes", "48",
    )  # fmt: skip
    yield process
    assert process.stop() == 0, "".join(process.log)


@pytest_asyncio.fixture(scope="session", params=["local", "gvisor", "remote", "swarm"])
async def core_sandbox(
    request: pytest.FixtureRequest, shared_sandbox: SandboxClient
) -> AsyncIterator[SandboxClient]:
    """The core suites' sandbox, four times: local (runc), local under gVisor, through
    `ai-computer serve` with the SDK's remote mode (``SandboxClient(base_url=..., token=...)``),
    and through the service on a Docker Swarm (the lab's): the same tests must pass."""
    if request.param == "swarm":
        swarm: ServiceProcess = request.getfixturevalue("swarm_service")
        async with SandboxClient(base_url=swarm.url, token=swarm.token, timeout=60) as client:
            yield client
        return
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
