"""The swarm backend's decisions, checked without an engine: which engine URLs are refused,
when a node is checked (once per version of its record) and avoided, how an owner on a
shared swarm is judged, and that ``--backend`` beats the environment."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

import pytest

from ai_computer import cli
from ai_computer.backends import BACKEND_VARIABLE
from ai_computer.backends.labels import OWNER_LABEL, current_owner, owner_alive
from ai_computer.backends.swarm import checks
from ai_computer.backends.swarm.backend import SwarmBackend
from ai_computer.backends.swarm.engines import NodeInfo, refuse_insecure
from ai_computer.backends.swarm.settings import SwarmSettings
from ai_computer.errors import ClusterNodeError, DockerUnavailableError


@pytest.mark.parametrize("url", ["tcp://n1:2376", "ssh://n1", "https://n1:2376"])
def test_node_engines_other_than_unix_are_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")  # TLS too: stdin cannot be ended over it
    with pytest.raises(DockerUnavailableError, match="unix://"):
        refuse_insecure(url, "the engine of node n1", node=True)
    refuse_insecure("unix:///run/n1.sock", "the engine of node n1", node=True)


def test_a_manager_over_tcp_needs_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with pytest.raises(DockerUnavailableError, match="DOCKER_TLS_VERIFY"):
        refuse_insecure("tcp://manager:2376", "the swarm manager", node=False)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    refuse_insecure("tcp://manager:2376", "the swarm manager", node=False)


def test_another_boot_with_this_hostname_is_cannot_tell_on_a_swarm() -> None:
    here = current_owner()
    rebooted = dataclasses.replace(here, boot_id="another-boot")
    labels = {OWNER_LABEL: rebooted.label()}
    assert owner_alive(labels) is False  # the local engine: this host rebooted since
    assert owner_alive(labels, shared=True) is None  # a swarm: maybe another machine
    assert owner_alive({"ai-computer.owner-pid": "1"}, shared=True) is None


class _Engines:
    """The part of ``Engines`` the node checks use, with nodes set by the test."""

    def __init__(self, *nodes: NodeInfo) -> None:
        self.by_id = {node.node_id: node for node in nodes}

    def nodes(self) -> list[NodeInfo]:
        return list(self.by_id.values())

    known_nodes = nodes

    def node(self, node_id: str) -> NodeInfo:
        return self.by_id[node_id]


def _node(version: int) -> NodeInfo:
    return NodeInfo("n1", "host1", "198.18.0.1", "ready", "active", "x86_64", version)


def test_a_node_is_checked_once_per_version_and_avoided_while_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = SwarmBackend(SwarmSettings(manager="unix:///nowhere"))
    engines = _Engines(_node(1))
    backend.engines = engines  # type: ignore[assignment]
    answers = [["node host1: run its dockerd with --bridge=none"], []]
    calls: list[int] = []

    def check_node(_: Any, node: NodeInfo, image: str) -> list[str]:
        calls.append(node.version)
        return answers[len(calls) - 1]

    monkeypatch.setattr(checks, "check_node", check_node)
    for _ in range(2):
        with pytest.raises(ClusterNodeError, match="--bridge=none"):
            backend._ensure_checked("n1", "image")
    assert calls == [1] and backend._refused() == ["n1"]
    engines.by_id["n1"] = _node(2)  # its daemon came back: its record changed
    assert backend._refused() == []
    backend._ensure_checked("n1", "image")
    backend._ensure_checked("n1", "image")
    assert calls == [1, 2]


def test_an_explicit_backend_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, "swarm")
    arguments = argparse.Namespace(
        backend="docker", manager=None, node_docker_host=None, registry=None
    )
    assert cli._use_backend(arguments) == "docker"
    assert os.environ[BACKEND_VARIABLE] == "docker"
