"""The relay between a sandbox's kernel and the host: run in a container of its own.

libzmq assembles a whole many-part message before its receiver sees any of it, and
``MAXMSGSIZE`` bounds each part, not their number: a hostile kernel can make any receiver hold
gigabytes. So the host never receives from the kernel directly. This program, started by the
provisioner as ``python3 -I -c <this source> <kernel dir> <relay dir> <message limit>`` in a
small container (its own memory limit, no network, no capabilities, read-only root, a uid that
is neither the sandbox's nor the host's), connects to the kernel's five sockets and binds five of
its own in a directory the sandbox cannot see, and forwards every message:

- shell, control, stdin and heartbeat: ROUTER (host side) to DEALER (kernel side), so the
  kernel's replies find their way back by identity; iopub: XPUB to XSUB, subscriptions included;
- a message from the kernel with more than ``MAX_PARTS`` parts or more than the message limit in
  bytes ends the relay (exit status ``REFUSED``, the reason on stderr): the host reports the
  sandbox broken. A message too big to hold gets the relay killed by its memory limit instead:
  either way the host's processes never hold it.
- IOPub is never dropped here (``XPUB_NODROP``): while the host reads slowly the relay stops
  reading from the kernel, whose own queue then fills (in the sandbox's memory).

On a swarm (``backends/swarm``) the same program runs on the sandbox's node with
``tcp://ADDRESS:PORT`` in place of its directory and a Curve key file: it binds five TCP ports
there as CurveZMQ servers that admit one client key (a ZAP handler in the same poll loop), and
the service's bridge thread forwards them to ipc sockets with ``open_pairs`` and ``forward``.

Only the standard library and pyzmq (both in the sandbox image) are used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import zmq
import zmq.utils.z85

MAX_PARTS = 64
"""Most parts (frames) a message may have, here and in the SDK (sdk/messages.py): identities,
delimiter, signature, four JSON parts, and a few buffers."""
REFUSED = 3
"""Exit status when the kernel sent a message the relay refuses; the reason is on stderr."""
PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}
"""The ipc "ports" (socket file suffixes) of the kernel's and the relay's sockets."""
HIGH_WATER_MARK = 8  # messages queued per socket and direction: the relay's memory is limit x HWM
_RETRY_MS = 1  # wait before offering a held IOPub message to a slow host again


def _refuse(reason: str) -> None:
    sys.stderr.write(reason + "\n")
    sys.stderr.flush()
    os._exit(REFUSED)


def _problem(frames: list[Any], message_limit: int) -> str | None:
    if len(frames) > MAX_PARTS:
        return f"a message of {len(frames)} parts"
    size = sum(len(frame) for frame in frames)
    if size > message_limit:
        return f"a message of {size} bytes (the limit is {message_limit})"
    return None


ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""Where libzmq asks who may connect to a Curve server socket (ZAP, RFC 27)."""


def relay_context() -> zmq.Context[Any]:
    """A context with the relay's socket defaults (no linger, small queues, quick reconnects)."""
    context: zmq.Context[Any] = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    context.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    context.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    context.setsockopt(zmq.RECONNECT_IVL, 10)
    return context


def open_pairs(
    context: zmq.Context[Any],
    kernel_endpoint: Callable[[int], str],
    host_endpoint: Callable[[int], str],
    *,
    kernel_options: Callable[[zmq.Socket[Any]], None] | None = None,
    host_options: Callable[[zmq.Socket[Any]], None] | None = None,
) -> tuple[dict[Any, Any], set[Any], Any, Any]:
    """The five socket pairs of a relay: for each channel one socket that connects towards the
    kernel (``kernel_endpoint(port)``) and one that binds for the host (``host_endpoint``),
    each given its options (Curve keys, say) before it connects or binds. Returns the peer of
    each socket, the kernel-side sockets, and the IOPub host and kernel sockets."""
    peers: dict[Any, Any] = {}
    from_kernel: set[Any] = set()
    iopub_host = iopub_kernel = None
    for name, port in PORTS.items():
        if name == "iopub":
            host, kernel = context.socket(zmq.XPUB), context.socket(zmq.XSUB)
            host.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber gets the kernel's welcome
            host.setsockopt(zmq.XPUB_NODROP, 1)
            iopub_host, iopub_kernel = host, kernel
        else:
            host, kernel = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
            # A client's new socket takes over its identity from one that is going away
            # (without this the ROUTER ignores the newcomer for good).
            host.setsockopt(zmq.ROUTER_HANDOVER, 1)
            # One identity on every channel: the kernel answers stdin to the shell's sender.
            kernel.setsockopt(zmq.ROUTING_ID, b"ai-computer-relay")
        if kernel_options is not None:
            kernel_options(kernel)
        if host_options is not None:
            host_options(host)
        kernel.connect(kernel_endpoint(port))
        host.bind(host_endpoint(port))
        peers[host], peers[kernel] = kernel, host
        from_kernel.add(kernel)
    return peers, from_kernel, iopub_host, iopub_kernel


def forward(
    pairs: tuple[dict[Any, Any], set[Any], Any, Any],
    message_limit: int,
    others: dict[Any, Callable[[], bool]] | None = None,
) -> str | None:
    """Forward messages between the pairs until a kernel-side socket delivers a message the
    relay refuses (returned: what it was), or a callback of ``others`` (sockets or file
    descriptors, called when readable) returns True (None is returned)."""
    peers, from_kernel, iopub_host, iopub_kernel = pairs
    others = others or {}
    poller = zmq.Poller()
    for socket in [*peers, *others]:
        poller.register(socket, zmq.POLLIN)
    held: list[Any] | None = None  # an IOPub message the host has no room for yet
    while True:
        for socket, _ in poller.poll(_RETRY_MS if held is not None else None):
            if socket in others:
                if others[socket]():
                    return None
                continue
            frames = socket.recv_multipart(copy=False)
            problem = _problem(frames, message_limit)
            if problem is not None:
                if socket in from_kernel:
                    return problem
                continue  # the host's side is trusted, but its oversized messages are dropped
            try:
                peers[socket].send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                if socket is iopub_kernel:
                    held = frames
                    poller.unregister(iopub_kernel)
        if held is not None:
            try:
                iopub_host.send_multipart(held, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            held = None
            poller.register(iopub_kernel, zmq.POLLIN)


def curve_server(secret_key: bytes) -> Callable[[zmq.Socket[Any]], None]:
    """Options of a host-side socket that speaks CurveZMQ as the server (``secret_key``,
    Z85): every message encrypted and authenticated; who may connect is the ZAP handler's
    decision (:func:`authenticate`)."""

    def options(socket: zmq.Socket[Any]) -> None:
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
        socket.setsockopt(zmq.ZAP_DOMAIN, b"ai-computer")

    return options


def authenticate(zap: zmq.Socket[Any], allowed_client: bytes) -> bool:
    """Answer one ZAP request: only the client whose Curve public key is ``allowed_client``
    (Z85) may connect. Returns False (go on)."""
    request = zap.recv_multipart()
    version, request_id, mechanism = request[0], request[1], request[5]
    key = request[6] if len(request) > 6 else b""
    allowed = mechanism == b"CURVE" and zmq.utils.z85.encode(key) == allowed_client
    status = [b"200", b"OK"] if allowed else [b"400", b"not the service's key"]
    zap.send_multipart([version, request_id, *status, b"", b""])
    return False


def relay(kernel_dir: str, host: str, message_limit: int, key_file: str | None = None) -> None:
    """Forward messages between the kernel's sockets and the relay's own, until the kernel
    sends one it refuses. ``host`` is a directory (the relay binds ipc sockets there) or
    ``tcp://ADDRESS:PORT`` (it binds PORT to PORT+4 on ADDRESS, speaking CurveZMQ with the keys
    of ``key_file``, JSON: ``{"secret": server secret key, "client": the one client's public
    key}``, both Z85)."""
    os.umask(0)  # the host user, another uid, must be able to connect to ipc sockets
    context = relay_context()
    others: dict[Any, Callable[[], bool]] = {}
    host_options = None
    if host.startswith("tcp://"):
        if key_file is None:
            _refuse("a TCP relay needs its Curve keys")
        with open(str(key_file)) as file:
            keys = json.load(file)
        zap = context.socket(zmq.REP)
        zap.bind(ZAP_ENDPOINT)  # before any Curve socket binds
        allowed = keys["client"].encode()
        others[zap] = lambda: authenticate(zap, allowed)
        host_options = curve_server(keys["secret"].encode())
        address, _, first = host[len("tcp://") :].rpartition(":")

        def host_endpoint(port: int) -> str:
            return f"tcp://{address}:{int(first) + port - 1}"

    else:

        def host_endpoint(port: int) -> str:
            return f"ipc://{host}/kernel-{port}"

    pairs = open_pairs(
        context,
        lambda port: f"ipc://{kernel_dir}/kernel-{port}",
        host_endpoint,
        host_options=host_options,
    )
    problem = forward(pairs, message_limit, others)
    _refuse(problem or "stopped")


if __name__ == "__main__":
    relay(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
