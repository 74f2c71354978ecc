"""A Docker Swarm of three engines on this machine, made and unmade by this module.

``up()`` makes, for a free *slot* (several runs of the suite may share the machine):

- network namespaces ``aicl<slot>-hub`` (a bridge) and ``aicl<slot>-n1..n3`` (one engine
  each), joined by veth pairs; the nodes are ``198.18.<slot>.1-3/24`` and the root namespace
  gets ``198.18.<slot>.254`` on a veth of its own into the hub, so that the service (in the
  root namespace) reaches them. The benchmarking range 198.18.0.0/15 only: no private or
  public address, no route out;
- three ``dockerd``, each started in its namespace (``nsenter``, not ``ip netns exec``, which
  remounts /sys and hides the cgroup v1 mounts) with its own data and exec roots, no bridge, no
  iptables, ``no-new-privileges`` and the lab's registry as an insecure one in its daemon
  config, its containers under the cgroup ``/aicl<slot>-n<i>`` and the engine itself (with its
  containerd and shims) in the pids cgroup ``aicl<slot>-n<i>-engine``;
- a swarm (node 1 the manager, overlay pool 198.19.0.0/16), Debian's ``docker-registry`` on
  ``198.18.<slot>.1:5000`` (in node 1's namespace, pids cgroup ``aicl<slot>-lab``), and the
  sandbox image: saved from the main engine (only read), loaded into every node under its
  registry name, and pushed from node 1 into the registry (in the background: what a node
  without the image would pull; ``Lab.registry_ready()`` waits for it).

``down(slot)`` unmakes all of it by what the slot's names select: every process of its
cgroups (SIGKILL), the mounts under its directories, the cgroups, the namespaces, the root
veth, the directories. It is idempotent and needs no record of the run that made them, so a
crashed run's leftovers go too: ``up()`` calls it for the slot it takes, and
``python tests/cluster/lab.py down`` for every slot whose lock nobody holds.
The main engine (/var/run/docker.sock) is never configured or changed.

Run as root: ``python tests/cluster/lab.py up`` (keeps the lab until Ctrl-C), ``down``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import docker

SLOTS = 8
STATE_ROOT = Path("/run/ai-computer-lab")
"""Locks, sockets, exec roots, logs: short paths (unix sockets allow ~107 bytes)."""
DATA_ROOT = Path("/var/lib/ai-computer-lab")
"""The engines' data roots and the registry's storage: on a disk file system (overlay2)."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODES = 3
OVERLAY_POOL = "198.19.0.0/16"
LOCAL_POOL = {"base": "198.18.128.0/17", "size": 24}
"""The engines' own (local) networks, if any is made: inside their namespaces only."""
REGISTRY_PORT = 5000
IMAGE_REPOSITORY = "ai-computer-sandbox"


def _run(*argv: str, check: bool = True, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **options)  # type: ignore[call-overload, no-any-return]


def _quiet(*argv: str) -> None:
    _run(*argv, check=False)


@dataclass
class Node:
    """One engine of the lab."""

    name: str
    """Its network namespace, host name and swarm host name (``aicl0-n1``)."""
    address: str
    socket: Path
    exec_root: Path
    data_root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def netns(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def engine_cgroup(self) -> Path:
        """The pids cgroup of the engine, its containerd and shims."""
        return CGROUP_ROOT / "pids" / f"{self.name}-engine"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def docker(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine."""
        return _run("docker", "-H", self.url, *argv, check=check)


@dataclass
class Lab:
    """A running lab: its slot, nodes, registry and image."""

    slot: int
    nodes: list[Node]
    registry: str
    image: str
    """The sandbox image, registry-qualified."""
    root_address: str
    node_host_template: str
    """Where the service finds each node's engine: ``unix:///.../{hostname}.sock``."""
    timings: dict[str, float] = field(default_factory=dict)
    registry_process: subprocess.Popen[bytes] | None = None
    push: threading.Thread | None = None
    push_error: str | None = "not pushed yet"
    _lock: IO[str] | None = None

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def kill_node(self, node: Node) -> None:
        """The node dies as a machine would: its engine, containerd, shims and containers, all
        at once (SIGKILL). Its network namespace stays: its address refuses from now on."""
        _kill_cgroups([node.engine_cgroup, *_cgroup_dirs(node.name)])
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)

    def registry_ready(self, timeout: float = 300.0) -> None:
        """Wait for the image's push into the registry; raise if it failed."""
        if self.push is not None:
            self.push.join(timeout)
        if self.push_error is not None:
            raise RuntimeError(f"the lab's image push failed: {self.push_error}")

    def down(self) -> None:
        down(self.slot)
        if self.push is not None:
            self.push.join(30)
        for process in [node.process for node in self.nodes] + [self.registry_process]:
            if process is not None:  # killed by down(): collect its exit status
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


# -- cgroups and processes ---------------------------------------------------------------------


def _cgroup_dirs(name: str) -> list[Path]:
    """Every controller's cgroup ``name`` (the containers' parent of a node, say)."""
    return [
        controller / name
        for controller in sorted(CGROUP_ROOT.iterdir())
        if (controller / name).is_dir()
    ]


def _processes(cgroup: Path) -> set[int]:
    found: set[int] = set()
    if not cgroup.is_dir():
        return found
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            found |= {int(line) for line in procs.read_text().split()}
    return found


def _kill_cgroups(cgroups: list[Path], timeout: float = 15.0) -> None:
    """SIGKILL every process in ``cgroups`` (and their children cgroups) until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = set().union(*(_processes(cgroup) for cgroup in cgroups)) if cgroups else set()
        pids.discard(os.getpid())
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"lab processes would not die: {sorted(pids)}")
        time.sleep(0.05)


def _remove_cgroup_tree(cgroup: Path) -> None:
    if not cgroup.is_dir():
        return
    for child in sorted(
        (path for path in cgroup.rglob("*") if path.is_dir()),
        key=lambda path: len(path.parts),
        reverse=True,
    ):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        cgroup.rmdir()


def _slot_cgroups(slot: int) -> list[Path]:
    prefix = f"aicl{slot}-"
    return [
        path
        for controller in sorted(CGROUP_ROOT.iterdir())
        if controller.is_dir()
        for path in sorted(controller.glob(prefix + "*"))
        if path.is_dir()
    ]


def _unmount_under(roots: list[Path]) -> None:
    """Unmount whatever the killed engines left mounted under ``roots`` (deepest first)."""
    prefixes = [str(root) + "/" for root in roots]
    for _ in range(3):
        points = []
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                point = line.split()[4].replace("\\040", " ")
                if any(point.startswith(prefix) or point + "/" == prefix for prefix in prefixes):
                    points.append(point)
        if not points:
            return
        for point in sorted(set(points), key=len, reverse=True):
            _quiet("umount", "-l", point)


# -- down --------------------------------------------------------------------------------------


def down(slot: int) -> None:
    """Remove everything of ``slot``: processes, mounts, cgroups, namespaces, veth, files."""
    _kill_cgroups(_slot_cgroups(slot))
    roots = [STATE_ROOT / str(slot), DATA_ROOT / str(slot)]
    _unmount_under(roots)
    for cgroup in _slot_cgroups(slot):
        _remove_cgroup_tree(cgroup)
    prefix = f"aicl{slot}-"
    netns = Path("/run/netns")
    for path in sorted(netns.glob(prefix + "*")) if netns.is_dir() else []:
        _quiet("ip", "netns", "del", path.name)
    _quiet("ip", "link", "del", f"{prefix}r")
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def down_all() -> list[int]:
    """``down`` every slot nobody holds (leftovers of crashed runs); the slots cleaned."""
    cleaned = []
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        with open(STATE_ROOT / f"{slot}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            down(slot)
            cleaned.append(slot)
    return cleaned


# -- up ----------------------------------------------------------------------------------------


def _take_slot() -> tuple[int, IO[str]]:
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        lock = open(STATE_ROOT / f"{slot}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return slot, lock
    raise RuntimeError(f"all {SLOTS} lab slots are taken (locks in {STATE_ROOT})")


def _network(slot: int) -> None:
    prefix = f"aicl{slot}-"
    hub = f"{prefix}hub"
    commands = [f"netns add {hub}", f"-n {hub} link set lo up"]
    commands += [f"-n {hub} link add br0 type bridge", f"-n {hub} link set br0 up"]
    for index in range(1, NODES + 1):
        name, node_end, hub_end = f"{prefix}n{index}", f"{prefix}v{index}", f"{prefix}h{index}"
        commands += [
            f"netns add {name}",
            f"-n {name} link set lo up",
            f"link add {node_end} type veth peer name {hub_end}",
            f"link set {node_end} netns {name}",
            f"link set {hub_end} netns {hub}",
            f"-n {name} link set {node_end} name eth0",
            f"-n {name} addr add 198.18.{slot}.{index}/24 dev eth0",
            f"-n {name} link set eth0 up",
            f"-n {hub} link set {hub_end} master br0",
            f"-n {hub} link set {hub_end} up",
        ]
    root, root_hub = f"{prefix}r", f"{prefix}rh"
    commands += [
        f"link add {root} type veth peer name {root_hub}",
        f"link set {root_hub} netns {hub}",
        f"-n {hub} link set {root_hub} master br0",
        f"-n {hub} link set {root_hub} up",
        f"addr add 198.18.{slot}.254/24 dev {root}",
        f"link set {root} up",
    ]
    for command in commands:  # `ip -batch` takes no -n per line: one call each (~2 ms)
        _run("ip", *command.split())


def _in_cgroup_and_netns(cgroup: Path, node: str, argv: list[str]) -> list[str]:
    """``argv`` started in the pids cgroup ``cgroup`` and node's network and UTS namespaces
    (its host name set), by exec all the way: the process is the one started."""
    inner = f'hostname {node}; exec "$@"'
    return [
        "sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh",
        "nsenter", f"--net=/run/netns/{node}", "unshare", "--uts", "sh", "-c", inner, "sh",
        *argv,
    ]  # fmt: skip


def _start_engine(node: Node, registry: str) -> None:
    for directory in (node.exec_root, node.data_root):
        directory.mkdir(parents=True, exist_ok=True)
    config = node.exec_root.parent / f"{node.name}.json"
    config.write_text(
        json.dumps(
            {
                "no-new-privileges": True,
                "insecure-registries": [registry],
                "default-address-pools": [LOCAL_POOL],
                "log-level": "warn",
            }
        )
    )
    node.engine_cgroup.mkdir(exist_ok=True)
    log = open(node.exec_root.parent / f"{node.name}.log", "wb")
    argv = [
        "dockerd",
        "--data-root", str(node.data_root),
        "--exec-root", str(node.exec_root),
        "--pidfile", str(node.exec_root / "dockerd.pid"),
        "-H", node.url,
        "--config-file", str(config),
        "--bridge=none", "--iptables=false", "--ip-masq=false",
        f"--cgroup-parent=/{node.name}",
    ]  # fmt: skip
    node.process = subprocess.Popen(
        _in_cgroup_and_netns(node.engine_cgroup, node.name, argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()


def _wait_for_engine(node: Node, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            break
        if node.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0:
            return
        time.sleep(0.1)
    log = (node.exec_root.parent / f"{node.name}.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"lab engine {node.name} did not come up:\n{log}")


def _start_registry(slot: int, directory: Path, address: str) -> subprocess.Popen[bytes]:
    storage = DATA_ROOT / str(slot) / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )
    cgroup = CGROUP_ROOT / "pids" / f"aicl{slot}-lab"
    cgroup.mkdir(exist_ok=True)
    log = open(directory / "registry.log", "wb")
    process = subprocess.Popen(
        _in_cgroup_and_netns(cgroup, f"aicl{slot}-n1", ["docker-registry", "serve", str(config)]),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as answer:
                if answer.status == 200:
                    return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(
        "the lab registry did not answer:\n" + (directory / "registry.log").read_text()
    )


def _distribute_image(lab: Lab, local_image: str) -> None:
    """The image from the main engine (only read: ``docker save``) into every node at once
    (one save, three loads), tagged with its registry name, and pushed from node 1 into the
    lab's registry (what a node without it pulls)."""
    started = time.monotonic()
    save = subprocess.Popen(["docker", "save", local_image], stdout=subprocess.PIPE)
    loads = [
        subprocess.Popen(
            ["docker", "-H", node.url, "load", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for node in lab.nodes
    ]
    assert save.stdout is not None
    with save.stdout:
        while chunk := save.stdout.read(1 << 20):
            for load in loads:
                assert load.stdin is not None
                load.stdin.write(chunk)
    failures = [load.communicate()[1].decode() for load in loads]
    if save.wait() != 0 or any(load.returncode != 0 for load in loads):
        raise RuntimeError(f"could not copy {local_image} into the lab: {failures}")
    for node in lab.nodes:
        node.docker("tag", local_image, lab.image)
        node.docker("rmi", local_image)
    lab.timings["image load"] = time.monotonic() - started
    # The push runs while tests do (nothing needs it until a node lacks the image); its
    # gzip of every layer would otherwise double the lab's start on two cores.
    lab.push = threading.Thread(target=_push, args=(lab,), name="lab-push", daemon=True)
    lab.push.start()


def _push(lab: Lab) -> None:
    started = time.monotonic()
    pushed = lab.manager.docker("push", "-q", lab.image, check=False)
    lab.timings["image push"] = time.monotonic() - started
    lab.push_error = None if pushed.returncode == 0 else pushed.stderr.strip()


def up(local_image: str) -> Lab:
    """Make a lab in a free slot with ``local_image`` (from the main engine) in its registry.
    On any failure everything made is removed again before the error propagates."""
    if os.geteuid() != 0:
        raise RuntimeError("the swarm lab needs root (network namespaces, engines, cgroups)")
    missing = [
        tool for tool in ("ip", "nsenter", "unshare", "dockerd", "docker-registry")
        if shutil.which(tool) is None
    ]  # fmt: skip
    if missing:
        raise RuntimeError(
            f"the swarm lab needs {', '.join(missing)}: `bash setup.sh test` installs them "
            "(apt-get install iproute2 util-linux docker.io docker-registry)"
        )
    slot, lock = _take_slot()
    down(slot)  # whatever a crashed run left in this slot
    started = time.monotonic()
    directory = STATE_ROOT / str(slot)
    directory.mkdir(parents=True, exist_ok=True)
    registry = f"198.18.{slot}.1:{REGISTRY_PORT}"
    tag = local_image.rpartition(":")[2]
    nodes = [
        Node(
            name=f"aicl{slot}-n{index}",
            address=f"198.18.{slot}.{index}",
            socket=directory / f"aicl{slot}-n{index}.sock",
            exec_root=directory / f"n{index}",
            data_root=DATA_ROOT / str(slot) / f"n{index}",
        )
        for index in range(1, NODES + 1)
    ]
    lab = Lab(
        slot=slot,
        nodes=nodes,
        registry=registry,
        image=f"{registry}/{IMAGE_REPOSITORY}:{tag}",
        root_address=f"198.18.{slot}.254",
        node_host_template=f"unix://{directory}/{{hostname}}.sock",
        _lock=lock,
    )
    atexit.register(lab.down)
    try:
        _network(slot)
        for node in nodes:
            _start_engine(node, registry)
        lab.registry_process = _start_registry(slot, directory, registry)
        for node in nodes:
            _wait_for_engine(node)
        lab.timings["engines"] = time.monotonic() - started
        manager = nodes[0].client()
        manager.swarm.init(
            advertise_addr=nodes[0].address,
            listen_addr=f"{nodes[0].address}:2377",
            default_addr_pool=[OVERLAY_POOL],
            subnet_size=24,
        )
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        for node in nodes[1:]:
            with contextlib.closing(node.client()) as client:
                client.swarm.join(
                    remote_addrs=[f"{nodes[0].address}:2377"],
                    join_token=token,
                    listen_addr=f"{node.address}:2377",
                    advertise_addr=node.address,
                )
        manager.close()
        lab.timings["swarm"] = time.monotonic() - started
        _distribute_image(lab, local_image)
        _wait_for_ready_nodes(lab)
    except BaseException:
        lab.down()
        raise
    lab.timings["up"] = time.monotonic() - started
    return lab


def _wait_for_ready_nodes(lab: Lab, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.closing(lab.manager.client()) as client:
        while time.monotonic() < deadline:
            nodes = client.api.nodes()
            if len(nodes) == NODES and all(n["Status"]["State"] == "ready" for n in nodes):
                return
            time.sleep(0.1)
    raise RuntimeError("the lab's swarm nodes did not all become ready")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "up"
    if command == "down":
        print(f"cleaned slots: {down_all()}")
        return 0
    if command != "up":
        print("usage: lab.py up [IMAGE] | down", file=sys.stderr)
        return 2
    if len(argv) > 1:
        image = argv[1]
    else:
        from ai_computer.backends.image import default_image_tag

        image = default_image_tag()
    lab = up(image)
    print(json.dumps({"slot": lab.slot, "image": lab.image, "timings": lab.timings}, indent=1))
    print(
        "serve it with:\n  ai-computer serve --backend swarm "
        f"--manager {lab.manager.url} --node-docker-host '{lab.node_host_template}' "
        f"--registry {lab.registry}\nCtrl-C removes the lab."
    )
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()
    lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
