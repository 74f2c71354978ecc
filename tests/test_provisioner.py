"""The provisioner through its real entry point, driven by a plain jupyter_client kernel manager."""

from __future__ import annotations

from pathlib import Path

import docker
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory

from ai_computer.kernelspec import SHIPPED_KERNELSPEC_DIR
from ai_computer.provisioner import DockerSandboxProvisioner
from ai_computer.sandboxes import SANDBOX_LABEL

KERNELSPEC_DIR = SHIPPED_KERNELSPEC_DIR


async def test_plain_kernel_manager_runs_the_installed_kernelspec(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    specs.install_kernel_spec(str(KERNELSPEC_DIR), prefix=str(tmp_path))
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
    import pytest
    from traitlets import TraitError

    with pytest.raises(TraitError, match="memory_limit '8G' exceeds the maximum of 2G"):
        DockerSandboxProvisioner(memory_limit="8G")
    with pytest.raises(TraitError, match="sandbox_user '0:0'"):
        DockerSandboxProvisioner(sandbox_user="0:0")
