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

Only the standard library and pyzmq (both in the sandbox image) are used.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import zmq

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


def relay(kernel_dir: str, relay_dir: str, message_limit: int) -> None:
    """Forward messages between the kernel's sockets and the relay's own, forever."""
    os.umask(0)  # the host user, another uid, must be able to connect to the sockets
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    context.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    context.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    context.setsockopt(zmq.RECONNECT_IVL, 10)
    peers: dict[zmq.Socket[bytes], zmq.Socket[bytes]] = {}
    from_kernel: set[zmq.Socket[bytes]] = set()
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
        kernel.connect(f"ipc://{kernel_dir}/kernel-{port}")
        host.bind(f"ipc://{relay_dir}/kernel-{port}")
        peers[host], peers[kernel] = kernel, host
        from_kernel.add(kernel)
    assert iopub_host is not None and iopub_kernel is not None
    poller = zmq.Poller()
    for socket in peers:
        poller.register(socket, zmq.POLLIN)
    held: list[Any] | None = None  # an IOPub message the host has no room for yet
    while True:
        for socket, _ in poller.poll(_RETRY_MS if held is not None else None):
            frames = socket.recv_multipart(copy=False)
            problem = _problem(frames, message_limit)
            if problem is not None:
                if socket in from_kernel:
                    _refuse(problem)
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


if __name__ == "__main__":
    relay(sys.argv[1], sys.argv[2], int(sys.argv[3]))
