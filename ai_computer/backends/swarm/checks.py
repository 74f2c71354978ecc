"""What the backend checks on every node before a sandbox runs there (all of them when the
service starts, each node again when a sandbox first lands on it at a new version of its
record: ``SwarmBackend``): the guarantees Swarm cannot give per service, which each node's
daemon must give instead (the README's node set-up).

- **no network**: Swarm has no ``--network none``; a task without networks gets the daemon's
  default bridge, unless the daemon runs with ``--bridge=none`` (then it has only ``lo``);
- **no-new-privileges**: Swarm services have no ``--security-opt`` on this Docker; the daemon
  sets it for every container with ``"no-new-privileges": true`` in its daemon.json;
- **the image**: present on the node, or pulled now from the registry the service names.

A probe container on each node (its default network, the sandbox image, a non-root user)
proves the first two as a task sees them. A node that fails is named with what to change, and
the service does not start, or that sandbox does not (``ClusterNodeError``) and later ones
avoid the node: never a sandbox with a guarantee dropped.
Swap (Swarm gives a task twice its memory) is set per kernel by the backend, not here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import docker.errors

from ...errors import ClusterNodeError, SandboxError
from ..docker.specs import RELAY_USER
from ..labels import ROLE_LABEL
from .engines import Engines, NodeInfo

_PROBE = "grep ^NoNewPrivs: /proc/self/status; ls /sys/class/net"


def check_node(engines: Engines, node: NodeInfo, image: str) -> list[str]:
    """What node ``node`` lacks for a sandbox with ``image``, one line per problem naming the
    node and the fix (none: it keeps every guarantee). Pulls the image when missing."""
    where = f"node {node.hostname} ({node.address})"
    try:
        client = engines.slow_engine(node.node_id)
    except SandboxError as exc:
        return [f"{where}: {exc}"]
    try:
        return _check_engine(client, where, image)
    finally:
        client.close()


def _check_engine(client: docker.DockerClient, where: str, image: str) -> list[str]:
    problems = []
    # The engine's name filter matches parts of names (docker_gwbridge): compare whole names.
    if any(network["Name"] == "bridge" for network in client.api.networks(names=["bridge"])):
        problems.append(
            f"{where}: its daemon has the default bridge network, which a sandbox's task would "
            "join (Swarm has no --network none): run its dockerd with --bridge=none"
        )
    try:
        client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        try:
            client.api.pull(image)
        except docker.errors.DockerException as exc:
            return [
                *problems,
                f"{where}: has no sandbox image {image!r} and could not pull it: {exc}",
            ]
    try:
        output = client.containers.run(
            image,
            ["sh", "-c", _PROBE],
            user=RELAY_USER,
            remove=True,
            labels={ROLE_LABEL: "probe"},
            stderr=True,
        )
    except docker.errors.DockerException as exc:
        return [*problems, f"{where}: a probe container with the sandbox image failed: {exc}"]
    lines = output.decode("utf-8", "replace").split()
    if "NoNewPrivs:" not in lines or lines[lines.index("NoNewPrivs:") + 1] != "1":
        problems.append(
            f'{where}: its containers may gain privileges: add "no-new-privileges": true to '
            "its daemon.json and restart it"
        )
    interfaces = [line for line in lines[2:] if line != "NoNewPrivs:"]
    if interfaces != ["lo"]:
        problems.append(
            f"{where}: a container without networks has the interfaces {interfaces}, not only "
            "lo: run its dockerd with --bridge=none"
        )
    return problems


def node_error(problems: list[str]) -> ClusterNodeError:
    """The error that refuses nodes with ``problems`` (``check_node``'s lines)."""
    return ClusterNodeError(
        "the swarm's nodes do not all keep the sandboxes' guarantees (see the README's "
        "swarm node set-up):\n  " + "\n  ".join(problems),
        problems=problems,
    )


def check_nodes(engines: Engines, image: str) -> list[NodeInfo]:
    """Raise ``ClusterNodeError`` naming every node that would not keep a sandbox's
    guarantees (or has no ready node at all); return the nodes checked."""
    nodes = [
        node for node in engines.nodes() if node.state == "ready" and node.availability == "active"
    ]
    if not nodes:
        raise ClusterNodeError("the swarm has no ready, active node", problems=[])
    with ThreadPoolExecutor(len(nodes), thread_name_prefix="ai-computer-check") as pool:
        found = [
            problem
            for problems in pool.map(lambda n: check_node(engines, n, image), nodes)
            for problem in problems
        ]
    if found:
        raise node_error(found)
    return nodes
