"""The service's end of the path to a sandbox on another node: a thread that binds the ipc
sockets the host's Jupyter client connects to (in the sandbox's private directory, as the
local backend's relay does) and forwards every message over CurveZMQ to the sandbox's relay
on its node.

Curve encrypts and authenticates both ways: the bridge knows the relay's public key (so it
talks to that relay only) and the relay lets in only the bridge's key (``relay.authenticate``).
Both key pairs are made per kernel start; the relay's secret half reaches it as a Swarm
secret. So the Jupyter client itself stays as it is (jupyter_client, nbclient, JupyterLab),
and the HMAC key of the messages never crosses the network in clear.

The relay on the node already refuses what a kernel must not send (``inside/relay.py``), so
what arrives here is bounded; the bridge applies the same limit again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

import zmq

from ...inside.relay import forward, open_pairs, relay_context

log = logging.getLogger(__name__)

HEARTBEAT_MS = 1000
"""ZMTP heartbeats on the TCP connections: a relay whose node is gone is noticed."""


def curve_client(server_public: bytes, public: bytes, secret: bytes) -> Any:
    """Options of a socket that speaks CurveZMQ to the server whose key is ``server_public``."""

    def options(socket: zmq.Socket[Any]) -> None:
        socket.setsockopt(zmq.CURVE_SERVERKEY, server_public)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)

    return options


class Bridge:
    """Forwards between ``ipc://<directory>/kernel-<port>`` and the relay at
    ``tcp://<address>:<first_port + port - 1>`` until :meth:`stop`."""

    def __init__(
        self,
        directory: str,
        address: str,
        first_port: int,
        *,
        server_public: bytes,
        public: bytes,
        secret: bytes,
        message_limit: int,
        name: str,
    ) -> None:
        self._context = relay_context()
        self._pairs = open_pairs(
            self._context,
            lambda port: f"tcp://{address}:{first_port + port - 1}",
            lambda port: f"ipc://{directory}/kernel-{port}",
            kernel_options=curve_client(server_public, public, secret),
        )
        self._message_limit = message_limit
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"ai-computer-bridge-{name}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        try:
            problem = forward(self._pairs, self._message_limit, {self._wake_read: lambda: True})
            if problem is not None:
                log.warning("a sandbox relay sent %s: its bridge stops", problem)
        except zmq.ZMQError as exc:
            log.warning("a sandbox bridge stopped: %s", exc)
        finally:
            for socket in self._pairs[0]:
                socket.close(linger=0)
            self._context.term()
            os.close(self._wake_read)

    def stop(self) -> None:
        """End the forwarding and close the sockets (idempotent; from any thread)."""
        if self._wake_write < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self._wake_write)
        self._wake_write = -1
