"""The relay in its TCP mode (a swarm node's), run as its own process on the host without
Docker: CurveZMQ admits the one client key of its key file and nothing else, and a kernel's
message over the limits still ends it with ``REFUSED``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from ai_computer.inside import relay, source

LIMIT = 4096
_RELAY_ID = b"ai-computer-relay"  # the identity of the relay's kernel-side sockets


def _free_ports() -> int:
    """The first of five consecutive free TCP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + 4 > 65535:
            continue
        held = []
        try:
            for port in range(first, first + 5):
                held.append(socket.socket())
                held[-1].bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first
    raise RuntimeError("no five consecutive free ports")


class _Relay:
    """A relay process in TCP mode, a fake kernel's shell socket, and the relay's keys."""

    def __init__(self, directory: Path) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.context.setsockopt(zmq.LINGER, 0)
        self.server_public, server_secret = zmq.curve_keypair()
        self.client_public, self.client_secret = zmq.curve_keypair()
        keys = directory / "keys.json"
        keys.write_text(
            json.dumps({"secret": server_secret.decode(), "client": self.client_public.decode()})
        )
        self.kernel = self.context.socket(zmq.ROUTER)
        self.sockets = [self.kernel]
        self.kernel.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.kernel.bind(f"ipc://{directory}/kernel-{relay.PORTS['shell']}")
        self.port = _free_ports()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                source("relay.py"),
                str(directory),
                f"tcp://127.0.0.1:{self.port}",
                str(LIMIT),
                str(keys),
            ],
            stderr=subprocess.PIPE,
        )

    def client(self, public: bytes | None, secret: bytes | None) -> zmq.Socket[Any]:
        """A DEALER on the relay's shell port: Curve with these keys, plain when None."""
        client = self.context.socket(zmq.DEALER)
        self.sockets.append(client)
        if public is not None and secret is not None:
            client.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)
            client.setsockopt(zmq.CURVE_PUBLICKEY, public)
            client.setsockopt(zmq.CURVE_SECRETKEY, secret)
        client.connect(f"tcp://127.0.0.1:{self.port + relay.PORTS['shell'] - 1}")
        return client

    def to_relay(self, frames: list[bytes]) -> None:
        """Send ``frames`` from the kernel once the relay has connected to it."""
        for _ in range(500):
            try:
                self.kernel.send_multipart([_RELAY_ID, *frames])
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                assert self.process.poll() is None, self.process.stderr
                zmq.Poller().poll(10)  # the relay has not connected yet
        raise AssertionError("the relay never connected to the kernel")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.context.term()


@pytest.fixture
def tcp_relay() -> Iterator[_Relay]:
    # ipc paths allow ~107 bytes: a short directory rather than pytest's tmp_path.
    with tempfile.TemporaryDirectory(prefix="aic-relay-") as directory:
        running = _Relay(Path(directory))
        try:
            yield running
        finally:
            running.close()


def _received(sock: zmq.Socket[Any], seconds: float) -> list[bytes] | None:
    if sock.poll(int(seconds * 1000)):
        return sock.recv_multipart()
    return None


def test_the_right_client_key_round_trips_and_no_other_client_gets_through(
    tcp_relay: _Relay,
) -> None:
    client = tcp_relay.client(tcp_relay.client_public, tcp_relay.client_secret)
    client.send_multipart([b"hello"])
    received = _received(tcp_relay.kernel, 10)
    assert received is not None and received[0] == _RELAY_ID and received[-1] == b"hello"
    tcp_relay.kernel.send_multipart([*received[:-1], b"welcome"])
    assert _received(client, 10) == [b"welcome"]

    stranger_public, stranger_secret = zmq.curve_keypair()
    stranger = tcp_relay.client(stranger_public, stranger_secret)
    plain = tcp_relay.client(None, None)
    stranger.send_multipart([b"from a stranger"])
    plain.send_multipart([b"in the clear"])
    assert _received(tcp_relay.kernel, 1.5) is None
    assert tcp_relay.process.poll() is None  # refusing them ends nothing
    client.send_multipart([b"again"])
    again = _received(tcp_relay.kernel, 10)
    assert again is not None and again[-1] == b"again"


@pytest.mark.parametrize(
    "frames",
    [[b"x" * (LIMIT + 1)], [b"x"] * (relay.MAX_PARTS + 1)],
    ids=["over the limit", "over MAX_PARTS"],
)
def test_a_kernel_message_past_the_limits_ends_the_tcp_relay(
    tcp_relay: _Relay, frames: list[bytes]
) -> None:
    client = tcp_relay.client(tcp_relay.client_public, tcp_relay.client_secret)
    client.send_multipart([b"hello"])  # the relay forwards to the client's identity
    received = _received(tcp_relay.kernel, 10)
    assert received is not None
    tcp_relay.to_relay([*received[1:-1], *frames])
    assert tcp_relay.process.wait(10) == relay.REFUSED
    assert tcp_relay.process.stderr is not None
    assert b"a message of" in tcp_relay.process.stderr.read()
    assert _received(client, 0.2) is None
