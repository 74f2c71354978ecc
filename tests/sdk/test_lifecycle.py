"""Lifecycle, clean-up and bad use, against the real Docker engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import docker
import pytest
from sandbox_checks import leftovers

from ai_computer import ImageNotFoundError, SandboxClient, SandboxStateError
from ai_computer.backends.labels import ROLE_LABEL, SANDBOX_LABEL


async def test_setup_execute_cleanup_leaves_nothing(docker_engine: docker.DockerClient) -> None:
    client = SandboxClient()
    assert client.state == "new"
    setup = await client.setup()
    assert setup.success and setup.data["sandbox_id"] == client.sandbox_id
    assert client.state == "ready"
    assert leftovers(docker_engine, client.sandbox_id)  # it really exists
    response = await client.execute_code("print('Hello from sandbox!')")
    assert response.data["output"] == "Hello from sandbox!\n"
    await client.cleanup()
    assert client.state == "closed"
    assert leftovers(docker_engine, client.sandbox_id) == []
    await client.cleanup()  # idempotent


async def test_cleanup_returns_once_the_kernel_is_dead_and_the_rest_follows(
    docker_engine: docker.DockerClient,
) -> None:
    async with SandboxClient() as client:
        selector = {"label": f"{SANDBOX_LABEL}={client.sandbox_id}"}
        await client.execute_code("open('kept.txt', 'w').write('x')")
    # No code of the sandbox runs once cleanup() has returned: its kernel is dead (the relay
    # and holder, which run none, may still be being removed).
    running = docker_engine.api.containers(filters={**selector, "status": "running"})
    assert [c for c in running if c["Labels"][ROLE_LABEL] == "kernel"] == []
    await client.cleanup(wait=True)  # and with wait=True, nothing is left
    assert docker_engine.api.containers(all=True, filters=selector) == []
    assert docker_engine.api.volumes(filters=selector)["Volumes"] in (None, [])


def test_a_script_that_ends_right_after_cleanup_leaves_nothing(
    docker_engine: docker.DockerClient,
) -> None:
    # The removal cleanup() hands to a worker thread is finished before the process exits.
    script = (
        "import asyncio\n"
        "from ai_computer import SandboxClient\n"
        "async def main():\n"
        "    async with SandboxClient() as client:\n"
        "        await client.execute_code('1')\n"
        "    print(client.sandbox_id)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    sandbox_id = done.stdout.split()[-1]
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    assert docker_engine.api.containers(all=True, filters=selector) == []
    assert docker_engine.api.volumes(filters=selector)["Volumes"] in (None, [])


async def test_context_manager_cleans_up_even_on_error(docker_engine: docker.DockerClient) -> None:
    with pytest.raises(RuntimeError, match="user code failed"):
        async with SandboxClient() as client:
            assert (await client.execute_code("1 + 1")).data["result"] == "2"
            raise RuntimeError("user code failed")
    assert leftovers(docker_engine, client.sandbox_id) == []


async def test_bad_use_is_refused_clearly(docker_engine: docker.DockerClient) -> None:
    client = SandboxClient()
    with pytest.raises(SandboxStateError, match=r"not set up: call `await client.setup\(\)`"):
        await client.execute_code("1")
    await client.cleanup()
    with pytest.raises(SandboxStateError, match="cleaned up; create a new SandboxClient"):
        await client.execute_code("1")
    with pytest.raises(SandboxStateError, match="already called"):
        await client.setup()


def test_bad_limits_raise_value_error_at_construction() -> None:
    with pytest.raises(ValueError, match="memory_limit '3G' exceeds the maximum of 2G"):
        SandboxClient(memory_limit="3G")
    with pytest.raises(ValueError, match="cpu_limit 8 exceeds the maximum of 4"):
        SandboxClient(cpu_limit=8)
    with pytest.raises(ValueError, match="timeout -1 must be a positive number"):
        SandboxClient(timeout=-1)


async def test_missing_image_says_how_to_build(docker_engine: docker.DockerClient) -> None:
    client = SandboxClient(image="ai-computer-sandbox:no-such-tag")
    with pytest.raises(ImageNotFoundError, match="ai-computer image build"):
        await client.setup()
    assert client.state == "closed"
    assert leftovers(docker_engine, client.sandbox_id) == []


def test_no_docker_engine_says_how_to_start_one(tmp_path) -> None:
    code = (
        "import asyncio\nfrom ai_computer import SandboxClient, DockerUnavailableError\n"
        "async def main():\n"
        "    try:\n        await SandboxClient().setup()\n"
        "    except DockerUnavailableError as exc:\n        print('REFUSED', exc)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "REFUSED no Docker engine is reachable" in result.stdout, result.stderr
    assert "dockerd" in result.stdout


async def test_two_sandboxes_do_not_share_files(docker_engine: docker.DockerClient) -> None:
    async with SandboxClient() as first, SandboxClient() as second:
        await first.execute_code("open('secret.txt', 'w').write('mine')")
        seen = await second.execute_code("import os; sorted(os.listdir('.'))")
        assert seen.data["result"] == "[]"
        assert (await first.execute_code("open('secret.txt').read()")).data["result"] == "'mine'"


async def test_the_holder_comes_with_the_first_restart_and_the_files_stay(
    docker_engine: docker.DockerClient,
) -> None:
    def roles(sandbox_id: str) -> list[str]:
        found = docker_engine.containers.list(filters={"label": f"{SANDBOX_LABEL}={sandbox_id}"})
        return sorted(container.labels[ROLE_LABEL] for container in found)

    async with SandboxClient() as client:
        # Until a restart the kernel and relay hold the volumes between them.
        assert roles(client.sandbox_id) == ["kernel", "relay"]
        await client.fs.write_file("kept.txt", "yes")
        for _ in range(2):  # the first restart makes the holder, the second finds it running
            restarted = await client.restart()
            assert restarted.success and "files in /workspace kept" in restarted.data["message"]
            assert roles(client.sandbox_id) == ["holder", "kernel", "relay"]
            assert (await client.fs.read_file("kept.txt")).data["content"] == "yes"


async def test_a_restart_after_kernel_and_relay_both_died_says_the_files_are_gone(
    docker_engine: docker.DockerClient,
) -> None:
    # Nothing held the volumes in between (no holder before a first restart): the engine
    # emptied them, and the restart says so rather than "files kept".
    async with SandboxClient() as client:
        await client.fs.write_file("lost.txt", "yes")
        provisioner = client._session.provisioner  # type: ignore[union-attr]
        for instance in (provisioner.container_id, provisioner.relay_id):
            docker_engine.api.kill(instance)
        await asyncio.wait_for(provisioner.exited(), 30)
        await asyncio.wait_for(provisioner.relay_exited(), 30)
        restarted = await client.restart()
        assert restarted.success and "/workspace was emptied" in restarted.data["message"]
        assert not (await client.fs.read_file("lost.txt")).success
