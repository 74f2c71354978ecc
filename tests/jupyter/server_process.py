"""Talking to a JupyterLab/jupyter_server process in tests: REST with a token, and the Jupyter
protocol over its kernel websocket (JSON messages)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

KERNEL_MANAGER = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Reply:
    """What one execution over the websocket produced."""

    status: str = ""
    stdout: str = ""
    ename: str | None = None


class KernelSocket:
    """A Jupyter-protocol client over jupyter_server's kernel websocket (JSON messages)."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.session = uuid.uuid4().hex

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "test",
            "session": self.session,
            "date": "2024-01-01T00:00:00Z",
            "version": "5.3",
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.connection.write_message(json.dumps({**message, "channel": channel, "buffers": []}))
        return msg_id

    async def receive(self) -> dict[str, Any]:
        raw = await self.connection.read_message()
        assert raw is not None, "the kernel websocket closed"
        message: dict[str, Any] = json.loads(raw)
        return message

    def start(self, code: str) -> str:
        """Send an execute request; return its id."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
        return self.send(
            "execute_request", {**content, "allow_stdin": False, "stop_on_error": True}
        )

    async def finish(self, msg_id: str, timeout: float = 30) -> Reply:
        """Collect the execution's output until its reply and idle status have both come."""
        reply, replied, idle = Reply(), False, False
        async with asyncio.timeout(timeout):
            while not (replied and idle):
                message = await self.receive()
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                content, kind = message["content"], message["msg_type"]
                if kind == "stream" and content.get("name") == "stdout":
                    reply.stdout += content["text"]
                elif kind == "error":
                    reply.ename = content["ename"]
                elif kind == "execute_reply":
                    reply.status, replied = content["status"], True
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
        return reply

    async def execute(self, code: str, timeout: float = 30) -> Reply:
        return await self.finish(self.start(code), timeout)

    async def wait_for_state(self, *states: str, timeout: float = 30) -> str:
        """Wait for a kernel status message (any parent) in one of ``states``."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive()
                if message["msg_type"] == "status":
                    state: str = message["content"]["execution_state"]
                    if state in states:
                        return state


class JupyterServer:
    """A running server: its URL and token, and authenticated REST and websocket helpers."""

    def __init__(self, url: str, token: str, root_dir: Path, log: list[str]) -> None:
        self.url, self.token, self.root_dir = url, token, root_dir
        self.log = log
        """The server's output so far."""
        self.kernel_ids: set[str] = set()
        self.sockets: list[KernelSocket] = []
        self.pid: int | None = None
        """The server's process id."""

    async def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = ""
    ) -> tuple[int, Any]:
        """Call the REST API; ``token=None`` sends none, the default sends the right one."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"token {token or self.token}"
        request = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            body=None if body is None and method == "GET" else json.dumps(body or {}),
            allow_nonstandard_methods=True,
            request_timeout=120,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        payload = json.loads(response.body) if response.body else None
        return response.code, payload

    async def start_kernel(self, name: str = "ai-computer-sandbox") -> str:
        status, model = await self.request("POST", "api/kernels", {"name": name})
        assert status == 201, model
        self.kernel_ids.add(model["id"])
        return str(model["id"])

    async def start_session(self, path: str, name: str = "ai-computer-sandbox") -> dict[str, Any]:
        body = {"path": path, "name": Path(path).name, "type": "notebook", "kernel": {"name": name}}
        status, model = await self.request("POST", "api/sessions", body)
        assert status == 201, model
        self.kernel_ids.add(model["kernel"]["id"])
        return dict(model)

    async def connect(self, kernel_id: str) -> KernelSocket:
        url = self.url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        headers = {"Authorization": f"token {self.token}"}
        socket = KernelSocket(await websocket_connect(HTTPRequest(url, headers=headers)))
        self.sockets.append(socket)
        return socket

    def close_sockets(self) -> None:
        """Close every websocket opened so far."""
        for kernel_socket in self.sockets:
            kernel_socket.connection.close()
        self.sockets.clear()
