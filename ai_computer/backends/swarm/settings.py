"""Where the swarm is: its manager, each node's engine, the registry of the sandbox image.

The settings travel in environment variables (``to_environment``), read when the backend is
first used (never at import): ``ai-computer serve --backend swarm`` sets them, and the
processes it starts (the owner's watchdog, ``backends/reaper.py``) inherit them, so they
remove the same swarm's sandboxes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .. import BACKEND_VARIABLE

MANAGER_VARIABLE = "AI_COMPUTER_SWARM_MANAGER"
NODE_ENGINE_VARIABLE = "AI_COMPUTER_SWARM_NODE_DOCKER_HOST"
REGISTRY_VARIABLE = "AI_COMPUTER_SWARM_REGISTRY"
RELAY_PORTS_VARIABLE = "AI_COMPUTER_SWARM_RELAY_PORTS"

DEFAULT_NODE_ENGINE = "unix:///run/ai-computer/nodes/{hostname}.sock"
# Below Linux's default ephemeral range (32768-60999): a node's own outgoing connections (its
# swarm agent's, its pulls') take ports from there, and a relay could not bind one so taken.
DEFAULT_RELAY_PORTS = (29000, 31999)


@dataclass(frozen=True)
class SwarmSettings:
    """How this process reaches the swarm."""

    manager: str | None = None
    """Docker host URL of a manager (``unix://...``, ``tcp://...:2376``); None: the engine the
    environment names (``DOCKER_HOST``), which must then be a manager."""
    node_engine: str = DEFAULT_NODE_ENGINE
    """Docker host URL of each node's engine, with ``{hostname}``, ``{addr}`` (the node's swarm
    address) or ``{id}`` filled in per node: files, programs inside, signals, exits and
    memory readings go to the node that runs the sandbox (Swarm has no exec). Only ``unix://``
    for now (sockets forwarded with ``ssh -L``, say): ``engines.refuse_insecure`` says why."""
    registry: str | None = None
    """The registry the nodes pull the sandbox image from (``host:port``); an image name
    without a registry is qualified with it."""
    relay_ports: tuple[int, int] = DEFAULT_RELAY_PORTS
    """The TCP ports relays may bind on their node's address (five per sandbox)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SwarmSettings:
        environ = os.environ if environ is None else environ
        ports = environ.get(RELAY_PORTS_VARIABLE, "")
        low, _, high = ports.partition("-")
        return cls(
            manager=environ.get(MANAGER_VARIABLE) or None,
            node_engine=environ.get(NODE_ENGINE_VARIABLE) or DEFAULT_NODE_ENGINE,
            registry=environ.get(REGISTRY_VARIABLE) or None,
            relay_ports=(int(low), int(high))
            if low.isdigit() and high.isdigit()
            else DEFAULT_RELAY_PORTS,
        )

    def to_environment(self) -> dict[str, str]:
        """The variables that give these settings to this process and its children."""
        found = {
            BACKEND_VARIABLE: "swarm",
            NODE_ENGINE_VARIABLE: self.node_engine,
            RELAY_PORTS_VARIABLE: f"{self.relay_ports[0]}-{self.relay_ports[1]}",
        }
        if self.manager:
            found[MANAGER_VARIABLE] = self.manager
        if self.registry:
            found[REGISTRY_VARIABLE] = self.registry
        return found

    def qualified(self, image: str) -> str:
        """``image`` as the nodes pull it: prefixed with the registry unless it names one
        (a first component with a dot or a port, as Docker decides)."""
        first, slash, _ = image.partition("/")
        if not self.registry or (slash and ("." in first or ":" in first or first == "localhost")):
            return image
        return f"{self.registry}/{image}"
