"""The swarm's engines: the manager (services, tasks, secrets, nodes) and each node's own
engine (the containers of its tasks: exec, signals, exits, memory), and which nodes are lost.

Swarm has no exec, no signal and no container state for a task: those go to the engine of the
node that runs it, found from the settings' template (``SwarmSettings.node_engine``).

Blocking (docker-py): call from worker threads in async code.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass

import docker
import docker.constants
import docker.errors
import docker.utils
import requests

from ...errors import DockerUnavailableError
from ..docker.engine import explain
from .settings import SwarmSettings

NODE_LOST = "the node running this sandbox was lost; its files are gone"
"""What a sandbox on a node that died reports (its kernel's exit, its next start)."""
_PING_TIMEOUT = 3.0  # seconds a node's engine has to answer a ping before it counts as silent
_CALL_TIMEOUT = 15.0  # seconds for a call to a node's engine (signal, inspect, memory, exec setup)
_MANAGER_TIMEOUT = 60.0
_SLOW_TIMEOUT = 600.0  # the node checks' pulls


@dataclass(frozen=True)
class NodeInfo:
    """A swarm node as the manager describes it."""

    node_id: str
    hostname: str
    address: str
    state: str
    """``ready``, ``down``, ``unknown``, ``disconnected``."""
    availability: str
    architecture: str
    version: int = 0
    """The manager's version of the node's record: it changes when the node is updated or
    its daemon comes back (``down`` then ``ready``), so a node checked at one version is
    checked again at the next (``checks.py``)."""


def _node_info(attributes: dict[str, object]) -> NodeInfo:
    description = attributes.get("Description") or {}
    status = attributes.get("Status") or {}
    spec = attributes.get("Spec") or {}
    version = attributes.get("Version") or {}
    assert isinstance(description, dict) and isinstance(status, dict) and isinstance(spec, dict)
    assert isinstance(version, dict)
    platform = description.get("Platform") or {}
    return NodeInfo(
        node_id=str(attributes.get("ID")),
        hostname=str(description.get("Hostname") or ""),
        address=str(status.get("Addr") or ""),
        state=str(status.get("State") or "unknown"),
        availability=str(spec.get("Availability") or "active"),
        architecture=str(platform.get("Architecture") or ""),
        version=int(version.get("Index") or 0),
    )


def refuse_insecure(url: str, what: str, *, node: bool) -> None:
    """Refuse an engine URL that would hand root on that machine to anyone on the path: plain
    ``tcp://`` (HTTP, no TLS). A node's engine must be ``unix://`` for now: commands with stdin
    (file uploads) end it by half-closing the socket, which a TLS connection cannot do."""
    scheme = url.partition("://")[0]
    tls = bool(os.environ.get("DOCKER_TLS_VERIFY"))
    if node and scheme != "unix":
        message = (
            f"{what} at {url}: node engines must be reached over unix:// for now (for example "
            "a socket forwarded with `ssh -nNT -L /run/ai-computer/{hostname}.sock:"
            "/var/run/docker.sock {hostname}` and --node-docker-host "
            "'unix:///run/ai-computer/{hostname}.sock'): over tcp:// the uploads' stdin cannot "
            "be ended (TLS) or the engine is open to anyone (no TLS)"
        )
        raise DockerUnavailableError(message)
    if scheme in ("tcp", "http") and not tls:
        message = (
            f"{what} at {url}: a tcp:// engine without TLS gives root on that machine to "
            "anyone who reaches the port: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (the "
            "docker CLI's TLS settings), or use unix://"
        )
        raise DockerUnavailableError(message)


def connect(
    url: str | None, what: str, *, node: bool = False, timeout: float = _MANAGER_TIMEOUT
) -> docker.DockerClient:
    """A pinged client of the engine at ``url`` (None: the environment's), TLS as the docker
    CLI's (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``); ``refuse_insecure`` first."""
    environment = dict(os.environ)
    if url is not None:
        environment["DOCKER_HOST"] = url
    refuse_insecure(environment.get("DOCKER_HOST") or "unix://", what, node=node)
    try:
        client = docker.from_env(environment=environment, timeout=timeout)
        client.api.timeout = _PING_TIMEOUT
        try:
            client.ping()
        finally:
            client.api.timeout = timeout
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        where = url or os.environ.get("DOCKER_HOST") or "the default Docker socket"
        raise DockerUnavailableError(
            f"{what} does not answer at {where} ({explain(exc)}); see the README's swarm set-up"
        ) from exc
    return client


class Engines:
    """The manager's client and the nodes' clients (made on first use, one per node)."""

    def __init__(self, settings: SwarmSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._manager: docker.DockerClient | None = None
        self._nodes: dict[str, docker.DockerClient] = {}
        self._info: dict[str, NodeInfo] = {}
        self.lost: set[str] = set()
        """Nodes found dead by this process: none of its new sandboxes goes there."""

    @property
    def manager(self) -> docker.DockerClient:
        with self._lock:
            if self._manager is None:
                self._manager = connect(self.settings.manager, "the swarm manager")
            return self._manager

    def nodes(self) -> list[NodeInfo]:
        """Every node of the swarm, as the manager sees it now."""
        found = [_node_info(node) for node in self.manager.api.nodes()]
        with self._lock:
            self._info.update({node.node_id: node for node in found})
        return found

    def known_nodes(self) -> list[NodeInfo]:
        """The nodes as this process last saw them (no call)."""
        with self._lock:
            return list(self._info.values())

    def node(self, node_id: str) -> NodeInfo:
        """One node (as last seen by this process; asked once)."""
        with self._lock:
            known = self._info.get(node_id)
        if known is not None:
            return known
        found = _node_info(self.manager.api.inspect_node(node_id))
        with self._lock:
            self._info[node_id] = found
        return found

    def node_url(self, node: NodeInfo) -> str:
        return self.settings.node_engine.format(
            hostname=node.hostname, addr=node.address, id=node.node_id
        )

    def engine(self, node_id: str) -> docker.DockerClient:
        """The engine of node ``node_id`` (``DockerUnavailableError`` when it does not answer);
        its calls wait at most ``_CALL_TIMEOUT`` seconds, so a silent node blocks no one long
        (a command's own output is waited for as ``run_in_container`` says)."""
        with self._lock:
            client = self._nodes.get(node_id)
        if client is not None:
            return client
        node = self.node(node_id)
        client = connect(
            self.node_url(node),
            f"the engine of node {node.hostname}",
            node=True,
            timeout=_CALL_TIMEOUT,
        )
        with self._lock:
            self._nodes[node_id] = client
        return client

    def slow_engine(self, node_id: str) -> docker.DockerClient:
        """A new client of the node's engine for long calls (pulls); the caller closes it."""
        node = self.node(node_id)
        return connect(
            self.node_url(node),
            f"the engine of node {node.hostname}",
            node=True,
            timeout=_SLOW_TIMEOUT,
        )

    def avoided(self) -> list[str]:
        """Nodes a new sandbox must not go to: found lost here (until they answer again), or
        not ready in the manager's view."""
        avoid = []
        for node in self.nodes():
            if node.state != "ready":
                avoid.append(node.node_id)
            elif node.node_id in self.lost and not self._answers(node.node_id):
                avoid.append(node.node_id)
            else:
                with self._lock:
                    self.lost.discard(node.node_id)
        return avoid

    def _answers(self, node_id: str) -> bool:
        """Whether the node's engine answers a ping within ``_PING_TIMEOUT`` seconds."""
        return self._ping(node_id) == "answers"

    def _ping(self, node_id: str) -> str:
        """``answers``, ``refused`` (nothing listens, or no route) or ``silent`` (no answer
        within ``_PING_TIMEOUT`` seconds: a dead node, or a busy one) for one ping, from a
        client of its own (the node's usual client may be busy or closed)."""
        try:
            node = self.node(node_id)
            url = self.node_url(node)
            refuse_insecure(url, f"the engine of node {node.hostname}", node=True)
            environment = {**os.environ, "DOCKER_HOST": url}
            with docker.APIClient(
                **docker.utils.kwargs_from_env(environment=environment),
                timeout=_PING_TIMEOUT,
                # Old enough for any engine, and no round trip to ask it for its version.
                version=docker.constants.MINIMUM_DOCKER_API_VERSION,
            ) as api:
                api.ping()
        except docker.errors.APIError:
            return "answers"  # if not with a pong: it is there
        except requests.exceptions.Timeout:
            return "silent"
        except Exception:
            return "refused"
        return "answers"

    def is_lost(self, node_id: str) -> bool:
        """Whether node ``node_id`` is gone now: the manager has it down, or its engine refuses
        twice in a row, or does not answer twice in a row (``_PING_TIMEOUT`` each) while the
        manager no longer has it ready (a silent engine of a ready node is a busy one, not a
        lost one: that verdict would end its sandboxes). Asked anew at every call: a node that
        answers again is no longer lost."""
        state = "unknown"
        with contextlib.suppress(Exception):
            state = self.node_state(node_id)
        lost = state == "down"
        if not lost:
            first = self._ping(node_id)
            if first != "answers":
                time.sleep(0.3)  # one refusal may be an engine restarting: ask again
                second = self._ping(node_id)
                refused = first == second == "refused"
                lost = refused or (second != "answers" and state != "ready")
        with self._lock:
            if lost:
                self.lost.add(node_id)
                stale = self._nodes.pop(node_id, None)
            else:
                self.lost.discard(node_id)
                stale = None
        if stale is not None:
            stale.close()
        return lost

    def node_state(self, node_id: str) -> str:
        return _node_info(self.manager.api.inspect_node(node_id)).state
