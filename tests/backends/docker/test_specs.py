"""The hardening of every container of a sandbox, asserted on the pure specs (no Docker)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ai_computer.backends.base import SandboxSpec
from ai_computer.backends.docker import specs
from ai_computer.backends.image import PACKAGES_DIR, WORKSPACE
from ai_computer.backends.labels import ROLE_LABEL, SANDBOX_LABEL

SPEC = SandboxSpec(
    sandbox_id="abc",
    image="ai-computer-sandbox:test",
    user="1000:1000",
    memory_limit=256 << 20,
    cpu_limit=1.5,
    pids_limit=256,
    disk_limit=64 << 20,
    tmp_size=64 << 20,
    log_max_size="1m",
    message_limit=15 << 20,
    relay_memory_limit=256 << 20,
    runtime_root="/tmp/ai-computer-0",
    environment={"MINE": "1"},
    owner_labels={"ai-computer.owner-pid": "42"},
)
CONTAINERS = {
    "kernel": specs.kernel_container(SPEC, ["python", "-P", "-m", "ipykernel_launcher"]),
    "relay": specs.relay_container(SPEC, "print('relay')"),
    "holder": specs.holder_container(SPEC),
}


@pytest.mark.parametrize("role", sorted(CONTAINERS))
def test_every_container_is_hardened(role: str) -> None:
    config: dict[str, Any] = CONTAINERS[role]
    assert config["network_mode"] == "none" and config["network_disabled"] is True
    assert config["cap_drop"] == ["ALL"] and "cap_add" not in config
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["read_only"] is True and config["init"] is True
    assert config["mem_limit"] == config["memswap_limit"] > 0  # no swap
    assert 0 < config["pids_limit"] <= 256 and config["nano_cpus"] > 0
    assert config["user"] not in ("", "0", "root", "0:0") and not config["user"].startswith("0:")
    assert not {"privileged", "devices", "volumes", "pid_mode", "userns_mode"} & set(config)
    assert config["labels"][SANDBOX_LABEL] == "abc" and config["labels"][ROLE_LABEL] == role
    assert config["labels"]["ai-computer.owner-pid"] == "42"
    assert config["log_config"].config == {"max-size": config["log_config"].config["max-size"],
                                           "max-file": "1"}  # fmt: skip


def test_nothing_of_the_host_is_writable_from_the_kernel() -> None:
    kernel = CONTAINERS["kernel"]
    binds = [m for m in kernel["mounts"] if m["Type"] == "bind"]
    assert [(m["Target"], m["ReadOnly"]) for m in binds] == [
        (specs.CONTAINER_CONNECTION_DIR, True),
        ("/etc/hosts", True),  # specs.HOSTS, written next to the connection file
    ]
    targets = {m["Target"]: m["Source"] for m in kernel["mounts"] if m["Type"] == "volume"}
    assert targets == {
        specs.CONTAINER_RUNTIME_DIR: "ai-computer-abc-sockets",
        WORKSPACE: "ai-computer-abc",
        PACKAGES_DIR: "ai-computer-abc-packages",
    }
    assert all("nosuid" in options and "nodev" in options for options in kernel["tmpfs"].values())


def test_the_kernel_sees_its_limits_and_none_of_the_hosts_environment() -> None:
    environment = CONTAINERS["kernel"]["environment"]
    assert environment["PYTHON_CPU_COUNT"] == "2"  # 1.5 cores, rounded up
    assert environment["AI_COMPUTER_MEMORY_LIMIT"] == str(256 << 20)
    assert environment["MINE"] == "1"
    assert "PATH" not in environment and "DOCKER_HOST" not in environment


def test_the_relay_sees_the_sandboxs_volumes_only_read_only() -> None:
    relay = CONTAINERS["relay"]
    mounts = {m["Target"]: (m["Type"], m["Source"], m["ReadOnly"]) for m in relay["mounts"]}
    assert mounts == {
        specs.RELAY_KERNEL_DIR: ("volume", "ai-computer-abc-sockets", True),
        specs.RELAY_OWN_DIR: ("bind", "/tmp/ai-computer-0/abc/relay", False),
        # Mounted only to hold them with the kernel until a holder is needed (a restart).
        f"{specs.RELAY_HELD_DIR}/workspace": ("volume", "ai-computer-abc", True),
        f"{specs.RELAY_HELD_DIR}/packages": ("volume", "ai-computer-abc-packages", True),
    }
    assert relay["user"] == specs.RELAY_USER != SPEC.user
    assert relay["command"][:3] == ["python3", "-I", "-c"]


def test_the_volumes_are_bounded_tmpfs() -> None:
    made = {volume["name"]: volume["driver_opts"] for volume in specs.volumes(SPEC)}
    assert set(made) == {"ai-computer-abc", "ai-computer-abc-packages", "ai-computer-abc-sockets"}
    for options in made.values():
        assert options["type"] == "tmpfs" and "nosuid" in options["o"] and "size=" in options["o"]
    assert made["ai-computer-abc-sockets"]["o"].startswith("size=1m,")


def test_the_notebook_folder_is_read_only_not_recursive_and_changes_nothing_else() -> None:
    with_folder = dataclasses.replace(SPEC, notebook_folder="/home/me/project")
    kernel = specs.kernel_container(with_folder, ["python"])
    [mount] = [m for m in kernel["mounts"] if m["Target"] == specs.NOTEBOOK_FOLDER]
    assert mount["Source"] == "/home/me/project" and mount["Type"] == "bind"
    assert mount["ReadOnly"] is True
    # Below a read-only bind, Docker 20.10 leaves submounts writable: none are passed on.
    assert mount["BindOptions"] == {"Propagation": "rprivate", "NonRecursive": True}
    others = [m for m in kernel["mounts"] if m is not mount]
    assert others == CONTAINERS["kernel"]["mounts"]
    assert {k: v for k, v in kernel.items() if k != "mounts"} == {
        k: v for k, v in specs.kernel_container(SPEC, ["python"]).items() if k != "mounts"
    }
    for config in (specs.relay_container(with_folder, "x"), specs.holder_container(with_folder)):
        assert all(m["Target"] != specs.NOTEBOOK_FOLDER for m in config["mounts"])
    with pytest.raises(ValueError, match="must be an absolute path"):
        specs.kernel_container(dataclasses.replace(SPEC, notebook_folder="project"), ["python"])


def test_engine_times_sort_in_time_order_whatever_their_decimals() -> None:
    from ai_computer.backends.docker.backend import _engine_time

    stamps = [
        "2026-12-01T22:30:01Z",
        "2026-12-01T22:30:01.05Z",
        "2026-12-01T22:30:01.1Z",
        "2026-12-01T22:30:01.123456789Z",
        "2026-12-01T22:30:02.000000001Z",
    ]
    assert sorted(stamps, key=_engine_time) == stamps
    assert sorted(reversed(stamps), key=_engine_time) == stamps
