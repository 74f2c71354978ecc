"""Case 14: configuration cannot weaken isolation. Unknown kernelspec config keys (privileged,
capabilities, host namespaces, devices, host mounts) are refused with a clear error, limits are
range-checked, and the containers are created with nothing that widens them. There is no opt-in
for any of these: code that needs one must subclass the provisioner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from traitlets import TraitError

from ai_computer import SandboxClient, SandboxStartError
from ai_computer.backends.labels import ROLE_LABEL, SANDBOX_LABEL
from ai_computer.kernel.provisioner import DockerSandboxProvisioner

DANGEROUS = {
    "privileged": True,
    "cap_add": ["SYS_ADMIN"],
    "devices": ["/dev/sda:/dev/sda"],
    "network_mode": "host",
    "pid_mode": "host",
    "ipc_mode": "host",
    "userns_mode": "host",
    "volumes": {"/": {"bind": "/host", "mode": "rw"}},
    "mounts": [{"source": "/", "target": "/host", "type": "bind"}],
    "security_opt": ["seccomp=unconfined"],
}


def install_kernelspec(folder: Path, config: dict[str, object]) -> KernelSpecManager:
    spec_dir = folder / "kernels" / "hostile"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hostile",
        "language": "python",
        "metadata": {
            "kernel_provisioner": {"provisioner_name": "ai-computer-docker", "config": config}
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder / "kernels")])


@pytest.mark.parametrize("key", sorted(DANGEROUS))
async def test_kernelspec_options_that_weaken_isolation_are_refused(
    docker_engine: docker.DockerClient, tmp_path: Path, key: str
) -> None:
    specs = install_kernelspec(tmp_path, {"memory_limit": "256M", key: DANGEROUS[key]})
    manager = AsyncKernelManager(kernel_name="hostile", kernel_spec_manager=specs)
    with pytest.raises(TraitError, match=f"unknown sandbox configuration '{key}'"):
        await manager.start_kernel()
    assert manager.kernel_id is None or not docker_engine.containers.list(
        all=True, filters={"label": f"{SANDBOX_LABEL}={manager.kernel_id}"}
    )


def test_the_sdk_has_no_way_to_pass_them() -> None:
    with pytest.raises(TypeError):
        SandboxClient(privileged=True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sandbox_user": "0:0"}, "sandbox_user '0:0' must be 'uid:gid' with non-zero numbers"),
        ({"sandbox_user": "4242:4242"}, "has the uid of this process"),
        ({"runtime_root": "relative/dir"}, "runtime_root 'relative/dir' must be an absolute path"),
        ({"disk_limit": "10G"}, "disk_limit '10G' is out of range"),
        ({"tmp_size": "10G"}, "tmp_size '10G' exceeds the maximum of 2G"),
        ({"log_max_size": "1g"}, "log_max_size '1g' exceeds the maximum of 64M"),
        ({"pids_limit": 100_000}, "pids_limit 100000 is out of range"),
    ],
)
def test_out_of_range_settings_are_refused(
    config: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 4242)  # as if run by an ordinary user, uid 4242
    with pytest.raises(TraitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DockerSandboxProvisioner(**config)


async def test_a_runtime_root_open_to_others_is_refused_not_changed(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    specs = install_kernelspec(tmp_path, {"runtime_root": str(shared)})
    manager = AsyncKernelManager(kernel_name="hostile", kernel_spec_manager=specs)
    with pytest.raises(SandboxStartError, match="is writable by other users"):
        await manager.start_kernel()
    assert shared.stat().st_mode & 0o777 == 0o777  # refused, and left as it was


async def test_containers_get_nothing_that_widens_isolation(
    docker_engine: docker.DockerClient, shared_sandbox: SandboxClient
) -> None:
    selector = {"label": f"{SANDBOX_LABEL}={shared_sandbox.sandbox_id}"}
    containers = docker_engine.containers.list(filters=selector)
    roles = sorted(container.labels[ROLE_LABEL] for container in containers)
    assert roles in (["kernel", "relay"], ["holder", "kernel", "relay"])  # holder: at a restart
    sandbox_dir = f"/{shared_sandbox.sandbox_id}/"
    for container in containers:
        host = container.attrs["HostConfig"]
        assert host["Privileged"] is False
        assert host["CapAdd"] is None and host["CapDrop"] == ["ALL"]
        assert not host["Devices"]
        assert host["NetworkMode"] == "none"
        assert host["PidMode"] == "" and host["UsernsMode"] == ""
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["ReadonlyRootfs"] is True
        assert not host["Binds"]
        binds = {
            m["Destination"]: (m["Source"], m["RW"])
            for m in container.attrs["Mounts"]
            if m["Type"] == "bind"
        }
        # The host directories: the kernel's connection file and /etc/hosts, read-only (its
        # sockets are on a tmpfs volume) and, for the relay only, its own sockets' directory,
        # which no sandbox container sees. Nothing of the host is writable from a sandbox
        # container.
        assert sorted(binds) in (
            [],
            ["/etc/hosts", "/run/ai-computer-connection"],
            ["/run/relay"],
        )
        assert all(sandbox_dir in source for source, _ in binds.values())
        if "/run/relay" in binds:
            assert binds["/run/relay"][0].endswith(f"{sandbox_dir}relay")
            assert container.attrs["Config"]["User"] == "65532:65532"
            volumes = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
            assert volumes["/run/kernel"] is False  # the kernel's sockets: it only connects
            assert volumes["/run/held/workspace"] is volumes["/run/held/packages"] is False
        else:
            assert all(rw is False for _, rw in binds.values())
            kernel_dir = f"{sandbox_dir}kernel"
            ends = (kernel_dir, f"{kernel_dir}/hosts")
            assert all(source.endswith(ends) for source, _ in binds.values())
        assert container.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
