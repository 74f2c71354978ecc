"""The swarm services of a sandbox, checked without an engine: every guarantee Swarm can say
per service is in each spec; the image names the registry."""

from __future__ import annotations

import json

import pytest

from ai_computer.backends.base import SandboxSpec
from ai_computer.backends.swarm import specs
from ai_computer.backends.swarm.settings import SwarmSettings

SPEC = SandboxSpec(
    sandbox_id="0123",
    image="reg:5000/ai-computer-sandbox:1",
    user="1000:1000",
    memory_limit=256 << 20,
    cpu_limit=0.5,
    pids_limit=64,
    disk_limit=64 << 20,
    tmp_size=16 << 20,
    log_max_size="1m",
    message_limit=8 << 20,
    relay_memory_limit=128 << 20,
    runtime_root="/tmp/x",
    owner_labels={"ai-computer.owner-pid": "1"},
)
SECRET = {"id": "s1", "name": "aic-0123-kernel-ab"}


def _container(service: dict) -> dict:
    return service["task_template"]["ContainerSpec"]


@pytest.mark.parametrize("role", ["kernel", "relay", "holder"])
def test_every_service_is_hardened_and_runs_once(role: str) -> None:
    service = {
        "kernel": specs.kernel_service(
            SPEC, SPEC.image, ["python"], node="n1", start="ab", secret=SECRET
        ),
        "relay": specs.relay_service(
            SPEC, SPEC.image, "pass", node="n1", address="198.18.0.1", first_port=42000,
            start="ab", secret=SECRET,
        ),
        "holder": specs.holder_service(SPEC, SPEC.image, avoid=["lost"]),
    }[role]  # fmt: skip
    task = service["task_template"]
    container = _container(service)
    assert container["ReadOnly"] is True and container["CapabilityDrop"] == ["ALL"]
    assert container["Init"] is True and container["User"] not in ("", "0", "root")
    assert container["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": 0}]
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Resources"]["Limits"]["Pids"] > 0
    assert task["Resources"]["Limits"]["MemoryBytes"] > 0
    assert service["labels"]["ai-computer.sandbox"] == "0123"
    assert service["labels"]["ai-computer.owner-pid"] == "1"
    assert service["endpoint_spec"]["Mode"] == "dnsrr"
    constraints = task["Placement"]["Constraints"]
    assert constraints == (["node.id!=lost"] if role == "holder" else ["node.id==n1"])
    assert len(service["name"]) <= 63


def test_the_kernel_has_its_limits_no_network_and_a_private_connection_file() -> None:
    service = specs.kernel_service(
        SPEC, SPEC.image, ["python"], node="n1", start="ab", secret=SECRET
    )
    task, container = service["task_template"], _container(service)
    assert "Networks" not in task  # no network: the node's --bridge=none leaves only lo
    assert task["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000, "MemoryBytes": 256 << 20, "Pids": 64,
    }  # fmt: skip
    [secret] = container["Secrets"]
    assert secret["File"] == {
        "Name": specs.CONNECTION_SECRET_FILE,
        "UID": "1000",
        "GID": "1000",
        "Mode": 0o400,
    }
    kinds = {mount["Target"]: mount["Type"] for mount in container["Mounts"]}
    assert kinds["/workspace"] == "volume" and kinds["/tmp"] == "tmpfs"
    workspace = next(m for m in container["Mounts"] if m["Target"] == "/workspace")
    options = workspace["VolumeOptions"]["DriverConfig"]["Options"]
    assert options["type"] == "tmpfs" and f"size={64 << 20}" in options["o"]


def test_the_relay_is_on_the_host_network_with_the_sockets_only_read_only() -> None:
    service = specs.relay_service(
        SPEC, SPEC.image, "pass", node="n1", address="198.18.0.1", first_port=42000,
        start="ab", secret=SECRET,
    )  # fmt: skip
    container = _container(service)
    assert service["task_template"]["Networks"] == [{"Target": "host"}]
    [mount] = container["Mounts"]
    assert mount["ReadOnly"] is True and mount["Source"].endswith("-sockets")
    assert "tcp://198.18.0.1:42000" in container["Command"]
    assert container["User"] == "65532:65532"


def test_secrets_hold_what_each_side_needs() -> None:
    inside = json.loads(specs.kernel_connection({"ip": "/host/path", "key": b"k", "shell_port": 1}))
    assert inside == {"ip": "/run/ai-computer/kernel", "key": "k", "shell_port": 1}
    keys = json.loads(specs.relay_keys(b"secret", b"client"))
    assert keys == {"secret": "secret", "client": "client"}


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ai-computer-sandbox:1", "reg:5000/ai-computer-sandbox:1"),
        ("me/sandbox:1", "reg:5000/me/sandbox:1"),
        ("other.example/sandbox:1", "other.example/sandbox:1"),
        ("localhost:5000/sandbox:1", "localhost:5000/sandbox:1"),
    ],
)
def test_images_are_named_with_the_registry(image: str, expected: str) -> None:
    assert SwarmSettings(registry="reg:5000").qualified(image) == expected
    assert SwarmSettings().qualified(image) == image


def test_settings_travel_in_the_environment() -> None:
    settings = SwarmSettings(
        manager="unix:///m.sock", node_engine="unix:///{hostname}", registry="r:1"
    )
    assert SwarmSettings.from_environment(settings.to_environment()) == settings
