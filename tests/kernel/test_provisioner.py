"""The provisioner through its real entry point, driven by a plain jupyter_client kernel manager."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import docker
import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets import TraitError

from ai_computer.backends.labels import SANDBOX_LABEL
from ai_computer.errors import SandboxStartError
from ai_computer.kernel.kernelspec import SHIPPED_KERNELSPEC_DIR
from ai_computer.kernel.provisioner import DockerSandboxProvisioner


async def test_plain_kernel_manager_runs_the_installed_kernelspec(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    specs.install_kernel_spec(str(SHIPPED_KERNELSPEC_DIR), prefix=str(tmp_path))
    spec = specs.get_kernel_spec("ai-computer-sandbox")
    assert spec.display_name == "AI Computer Sandbox"
    assert KernelProvisionerFactory.instance().is_provisioner_available(spec)

    km = AsyncKernelManager(kernel_name="ai-computer-sandbox", kernel_spec_manager=specs)
    await km.start_kernel()
    try:
        assert isinstance(km.provisioner, DockerSandboxProvisioner)
        assert km.provisioner.has_process
        [container] = docker_engine.containers.list(
            filters={"label": [f"{SANDBOX_LABEL}={km.kernel_id}", "ai-computer.role=kernel"]}
        )
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive("import os; print(os.getcwd(), 6 * 7)", timeout=30)
        assert reply["content"]["status"] == "ok"
        assert await km.is_alive()
        await km.restart_kernel(now=True)
        await kc.wait_for_ready(timeout=60)
        assert await km.is_alive()
        kc.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert not km.provisioner or not km.provisioner.has_process
    assert (
        docker_engine.containers.list(
            all=True, filters={"label": f"{SANDBOX_LABEL}={km.kernel_id}"}
        )
        == []
    )
    assert docker_engine.volumes.list(filters={"label": f"{SANDBOX_LABEL}={km.kernel_id}"}) == []


def test_bad_kernelspec_config_is_refused_with_the_allowed_range() -> None:
    with pytest.raises(TraitError, match="memory_limit '8G' exceeds the maximum of 2G"):
        DockerSandboxProvisioner(memory_limit="8G")
    with pytest.raises(TraitError, match="sandbox_user '0:0'"):
        DockerSandboxProvisioner(sandbox_user="0:0")


async def _run(km: AsyncKernelManager, code: str) -> str:
    """Run ``code`` in the kernel; return what it printed."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        printed: list[str] = []
        reply = await kc.execute_interactive(
            code, timeout=30, output_hook=lambda msg: printed.append(msg["content"].get("text", ""))
        )
        assert reply["content"]["status"] == "ok"
        return "".join(printed)
    finally:
        kc.stop_channels()


async def test_prestart_hands_each_kernel_a_fresh_spare_sandbox(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    from ai_computer.kernel import kernelspec, spares

    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    kernelspec.install(
        prefix=str(tmp_path), name="sandbox-prestart", prestart=1, kernel_spec_manager=specs
    )
    started: list[AsyncKernelManager] = []
    sandbox_ids: list[str] = []

    async def start() -> AsyncKernelManager:
        km = AsyncKernelManager(kernel_name="sandbox-prestart", kernel_spec_manager=specs)
        started.append(km)
        await km.start_kernel()
        sandbox_ids.append(km.provisioner.sandbox_id)
        return km

    async def spare_ready() -> None:
        while not any(pool.idle for pool in spares._PRESTARTED.values()):
            await asyncio.sleep(0.05)

    try:
        first = await start()  # nothing spare yet: its own sandbox, then a spare starts
        assert sandbox_ids[0] == first.kernel_id
        await asyncio.wait_for(spare_ready(), 60)
        second = await start()  # takes the spare
        assert sandbox_ids[1] != second.kernel_id
        report = "import os; print(os.environ['AI_COMPUTER_SANDBOX_ID'], sorted(os.listdir()))"
        assert await _run(second, "open('kept.txt', 'w').write('x')\n" + report) == (
            f"{sandbox_ids[1]} ['kept.txt']\n"
        )
        await second.restart_kernel(now=True)  # the spare's workspace stays with the kernel
        assert await _run(second, report) == f"{sandbox_ids[1]} ['kept.txt']\n"
        await asyncio.wait_for(spare_ready(), 60)  # replaced
        third = await start()
        assert await _run(third, report) == f"{sandbox_ids[2]} []\n"  # nothing of the second
        assert len(set(sandbox_ids)) == 3
    finally:
        for km in started:
            await km.shutdown_kernel(now=True)
        spare_ids = [
            spare.sandbox_id for pool in spares._PRESTARTED.values() for spare in pool._ready
        ]
        spares.remove_spares()  # what happens at exit
    for sandbox_id in sandbox_ids + spare_ids:
        selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
        assert docker_engine.containers.list(all=True, filters=selector) == []
        assert docker_engine.volumes.list(filters=selector) == []


def test_prestart_out_of_range_is_refused() -> None:
    with pytest.raises(TraitError, match="prestart 9 is not a whole number from 0 to 8"):
        DockerSandboxProvisioner(prestart=9)


async def test_a_cancelled_or_failed_notebook_folder_copy_leaves_no_sandbox(
    docker_engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # notebook_dir 'copy' streams the folder after the containers started: a start cancelled
    # meanwhile (or a copy that fails) must take them with it.
    from ai_computer.kernel import notebook_dir
    from ai_computer.kernel.kernelspec import sandbox_kernel_spec
    from ai_computer.kernel.manager import SandboxKernelManager

    (tmp_path / "data.csv").write_text("x\n")
    copying = asyncio.Event()
    loop = asyncio.get_running_loop()

    def endless(plan: notebook_dir.CopyPlan) -> object:
        loop.call_soon_threadsafe(copying.set)
        while True:  # never ends: only the cancellation stops it
            time.sleep(0.05)
            yield b"\0" * 512

    def failing(plan: notebook_dir.CopyPlan) -> object:
        raise notebook_dir.CopyFailed("data.csv changed while it was copied")
        yield b""

    for stream in (endless, failing):
        monkeypatch.setattr(notebook_dir, "tar_stream", stream)
        km = SandboxKernelManager(sandbox_kernel_spec({"notebook_dir": "copy"}))
        start = asyncio.create_task(km.start_kernel(cwd=str(tmp_path)))
        if stream is endless:
            await asyncio.wait_for(copying.wait(), 60)
            start.cancel()
            with pytest.raises(asyncio.CancelledError):
                await start
        else:
            with pytest.raises(SandboxStartError, match="changed while it was copied"):
                await start
        selector = {"label": f"{SANDBOX_LABEL}={km.kernel_id}"}
        assert docker_engine.containers.list(all=True, filters=selector) == []
        assert docker_engine.volumes.list(filters=selector) == []
