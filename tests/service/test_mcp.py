"""The MCP server, through the mcp SDK's own clients: on stdio (a child process, as an MCP host
runs ``ai-computer mcp``) and on streamable HTTP (uvicorn, the endpoint routed under a prefix in
a parent app, as the service mounts it). Every session's sandbox is a real one, and each test
checks that it is removed when its session ends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from textwrap import dedent
from typing import Any

import docker
import httpx2
import pytest
import uvicorn
from mcp.client.client import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ImageContent, TextContent
from service_process import ServiceProcess
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from ai_computer import SandboxClient, SandboxResponse
from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL
from ai_computer.service.mcp import (
    call_timeout,
    code_result,
    image_content,
    mcp_http_app,
    shell_result,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOOLS = {
    "execute_code",
    "execute_shell",
    "read_file",
    "write_file",
    "list_files",
    "install_packages",
    "restart",
}
# The stdio server as an MCP host runs it; INFO logs in plain lines, so that the test can see
# the server itself (not the owner's watchdog, after its death) removed the sandbox.
SERVER_PROGRAM = dedent("""
    import asyncio, logging, sys
    from ai_computer import SandboxClient
    from ai_computer.service.mcp import run_stdio
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    asyncio.run(run_stdio(lambda: SandboxClient(memory_limit="256M", timeout=60)))
""")


def removal_logged(log: str) -> bool:
    """Whether the server's log says it removed its sandbox."""
    return any(
        line.startswith("ai_computer.service.mcp: sandbox ") and line.endswith(" removed")
        for line in log.splitlines()
    )


def new_sandbox() -> SandboxClient:
    return SandboxClient(memory_limit="256M", timeout=60, interrupt_grace=2)


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


def text(result: CallToolResult) -> str:
    return "\n".join(texts(result))


# -- results, without Docker -------------------------------------------------------------------


def test_code_result_has_images_text_and_errors() -> None:
    png = base64.b64encode(PNG_MAGIC + b"rest").decode()
    response = SandboxResponse(
        success=False,
        data={
            "output": "out\n",
            "stderr": "warned\n",
            "result": "42",
            "display": [
                {"image/png": png[:8] + "\n" + png[8:], "text/plain": "<Figure>"},
                {"image/png": "not base64!", "text/plain": "<Figure>"},
                {"text/plain": "shown"},
                {"text/plain": "42"},  # the result's own bundle: shown once, as the result
            ],
            "error": {"ename": "ValueError", "evalue": "bad", "traceback": ["Traceback", "bad"]},
            "notices": [],
        },
        error="ValueError: bad",
    )
    result = code_result(response)
    assert result.is_error
    [image] = [block for block in result.content if isinstance(block, ImageContent)]
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(PNG_MAGIC)
    assert texts(result) == [
        "out\n",
        "[stderr]\nwarned\n",
        "[an image/png output is not base64 data and was left out]",
        "shown",
        "42",
        "Traceback\nbad",
    ]
    assert image_content({"text/plain": "x"}) is None
    assert texts(code_result(SandboxResponse(True, {"output": ""}))) == ["[no output]"]


def test_shell_result_says_the_exit_code() -> None:
    data = {"stdout": "", "stderr": "boom\n", "exit_code": 3}
    result = shell_result(SandboxResponse(False, data, "command exited with status 3"))
    assert result.is_error
    assert texts(result) == ["[stderr]\nboom\n", "[exit code 3]", "command exited with status 3"]


def test_a_tool_timeout_is_at_most_the_sandboxs() -> None:
    client = new_sandbox()  # nothing starts until setup()
    assert call_timeout(client, 5) == 5.0
    assert repr(call_timeout(client, None)) == "USE_CLIENT_DEFAULT"
    for wrong in (0, -1, float("nan"), 61):
        with pytest.raises(ValueError, match="timeout"):
            call_timeout(client, wrong)


# -- containers ----------------------------------------------------------------------------------


def _parent_pid(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


async def containers(engine: docker.DockerClient, *labels: str) -> list[dict[str, str]]:
    """The labels of the sandbox containers that have ``labels`` too."""

    def listing() -> list[dict[str, str]]:
        # The list call only: inspecting each would race with their removal (NotFound).
        found = engine.api.containers(all=True, filters={"label": [SANDBOX_LABEL, *labels]})
        return [container["Labels"] for container in found]

    return await asyncio.to_thread(listing)


async def child_owners(engine: docker.DockerClient) -> set[str]:
    """The owner pids of sandboxes made by children of this process (the stdio servers)."""
    owners = {labels[OWNER_PID_LABEL] for labels in await containers(engine)}
    return {pid for pid in owners if _parent_pid(pid) == os.getpid()}


async def my_sandboxes(engine: docker.DockerClient) -> set[str]:
    """The sandbox ids this process owns (the HTTP server runs in it)."""
    found = await containers(engine, f"{OWNER_PID_LABEL}={os.getpid()}")
    return {labels[SANDBOX_LABEL] for labels in found}


async def eventually(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Wait until ``await condition()`` is true (the engine has no event for "removed")."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds:g} s")
        await asyncio.sleep(0.1)


# -- stdio ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stdio_session(errlog: Path) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(
        command=sys.executable, args=["-c", SERVER_PROGRAM], env=dict(os.environ)
    )
    with errlog.open("w") as log:
        async with stdio_client(server, errlog=log) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def test_stdio_session_runs_code_and_removes_its_sandbox(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    errlog = tmp_path / "server.log"
    others = await child_owners(docker_engine)  # e.g. the session's `ai-computer serve`
    async with stdio_session(errlog) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS

        printed = await session.call_tool("execute_code", {"code": "print(1+1)"})
        assert not printed.is_error and text(printed).strip() == "2"
        [owner] = await child_owners(docker_engine) - others

        plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
        plotted = await session.call_tool("execute_code", {"code": plot})
        assert not plotted.is_error, text(plotted)
        [image] = [block for block in plotted.content if isinstance(block, ImageContent)]
        assert image.mime_type == "image/png"
        assert base64.b64decode(image.data).startswith(PNG_MAGIC)

        wrote = await session.call_tool("write_file", {"path": "notes/a.txt", "content": "hé\n"})
        assert not wrote.is_error, text(wrote)
        read = await session.call_tool("read_file", {"path": "/workspace/notes/a.txt"})
        assert not read.is_error and text(read) == "hé\n"
        listed_files = await session.call_tool("list_files", {"path": "notes"})
        assert '"/workspace/notes/a.txt"' in text(listed_files)
        shell = await session.call_tool("execute_shell", {"command": "ls notes | wc -l"})
        assert not shell.is_error and texts(shell) == ["1\n", "[exit code 0]"]

        failed = await session.call_tool("execute_code", {"code": "1/0"})
        assert failed.is_error and "ZeroDivisionError" in text(failed)
        outside = await session.call_tool("read_file", {"path": "../etc/passwd"})
        assert outside.is_error and "outside the sandbox's /workspace" in text(outside)
        wrong_type = await session.call_tool("execute_code", {"code": "1", "timeout": True})
        assert wrong_type.is_error and "timeout" in text(wrong_type)
        option = await session.call_tool("install_packages", {"packages": ["--index-url=x"]})
        assert option.is_error and "is not a requirement" in text(option)
    log = errlog.read_text()
    assert await containers(docker_engine, f"{OWNER_PID_LABEL}={owner}") == [], log
    assert removal_logged(log) and "Traceback" not in log, log


async def test_stdio_server_removes_its_sandbox_on_sigterm(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    errlog = tmp_path / "server.log"
    others = await child_owners(docker_engine)  # e.g. the session's `ai-computer serve`
    async with stdio_session(errlog) as session:
        started = await session.call_tool("execute_code", {"code": "x = 1"})
        assert not started.is_error, text(started)
        [owner] = await child_owners(docker_engine) - others
        os.kill(int(owner), signal.SIGTERM)
        # A call on the heels of the signal mostly reaches a server that has stopped reading
        # (mcp's stdin thread still hands it on): it fails as the connection closes, or is
        # answered if it came first. Either way the server exits without a traceback.
        with contextlib.suppress(MCPError):
            await session.call_tool("execute_code", {"code": "x"}, read_timeout_seconds=3)
    log = errlog.read_text()
    assert await containers(docker_engine, f"{OWNER_PID_LABEL}={owner}") == [], log
    assert removal_logged(log) and "Traceback" not in log, log


# -- streamable HTTP -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_server(**options: Any) -> AsyncIterator[str]:
    """The endpoint routed as the service does (a Route in a parent app, here under a Mount
    prefix too), served by uvicorn on a free port; yields its URL."""
    endpoint, sessions = mcp_http_app(new_sandbox, **options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield

    inner = Starlette(routes=[Route("/mcp", endpoint=endpoint)])
    app = Starlette(routes=[Mount("/prefix", app=inner)], lifespan=lifespan)
    config = uvicorn.Config(app, log_level="warning", ws="none", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        try:
            while not server.started:  # uvicorn sets a flag, no event
                assert not serving.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{port}/prefix/mcp"
        finally:
            server.should_exit = True
            await serving


@contextlib.asynccontextmanager
async def http_session(
    url: str, *, terminate_on_close: bool = True
) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url, terminate_on_close=terminate_on_close) as streams:
        async with ClientSession(*streams) as session:
            await session.initialize()
            yield session


async def test_http_session_keeps_its_sandbox_until_deleted(
    docker_engine: docker.DockerClient,
) -> None:
    before = await my_sandboxes(docker_engine)
    async with http_server() as url, http_session(url) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        assert not (await session.call_tool("execute_code", {"code": "x = 41"})).is_error
        [sandbox] = await my_sandboxes(docker_engine) - before
        kept = await session.call_tool("execute_code", {"code": "print(x + 1)"})
        assert text(kept).strip() == "42"

        # A call the client gives up on is cancelled in the sandbox: the next one runs at once.
        with pytest.raises(MCPError):
            sleep = {"code": "import time; time.sleep(60)"}
            await session.call_tool("execute_code", sleep, read_timeout_seconds=1)
        started = time.monotonic()
        after = await session.call_tool("execute_code", {"code": "print('after')"})
        assert text(after).strip() == "after" and time.monotonic() - started < 15

        async with http_session(url) as other:  # another session, another sandbox
            alone = await other.call_tool("execute_code", {"code": "print('x' in globals())"})
            assert text(alone).strip() == "False"

        async def only_this_sessions() -> bool:
            return await my_sandboxes(docker_engine) - before == {sandbox}

        # ...removed when that session was deleted, while this one's stays.
        await eventually(only_this_sessions, 10, "the other session's sandbox was not removed")

    async def sandbox_gone() -> bool:
        return sandbox not in await my_sandboxes(docker_engine)

    await eventually(sandbox_gone, 10, "the deleted session's sandbox was not removed")


async def test_http_negotiating_client_falls_back_to_a_session(
    docker_engine: docker.DockerClient,
) -> None:
    before = await my_sandboxes(docker_engine)
    async with http_server() as url:
        async with Client(url) as client:  # mode="auto": probes 2026-07-28 first
            assert not (await client.call_tool("execute_code", {"code": "y = 2"})).is_error
            squared = await client.call_tool("execute_code", {"code": "y * y"})
            assert text(squared) == "4"
            restarted = await client.call_tool("restart", {})
            assert not restarted.is_error and "restarted" in text(restarted)
            forgotten = await client.call_tool("execute_code", {"code": "y"})
            assert forgotten.is_error and "NameError" in text(forgotten)
        async with Client(url, mode="2026-07-28") as client:
            with pytest.raises(MCPError, match="initialize handshake"):
                await client.call_tool("execute_code", {"code": "1"})

        async def none_left() -> bool:
            return await my_sandboxes(docker_engine) - before == set()

        await eventually(none_left, 10, "the session's sandbox was not removed")


async def test_http_shutdown_removes_the_sandboxes_of_open_sessions(
    docker_engine: docker.DockerClient,
) -> None:
    before = await my_sandboxes(docker_engine)
    async with http_server() as url:
        async with http_session(url, terminate_on_close=False) as session:
            fresh = await session.call_tool("restart", {})  # no sandbox yet: it just starts one
            assert text(fresh) == "started a fresh sandbox"
            # Calls at once on a session share its one sandbox.
            calls = [session.call_tool("execute_code", {"code": "1"}) for _ in range(3)]
            assert [text(result) for result in await asyncio.gather(*calls)] == ["1"] * 3
        # The client left without ending its session: the sandbox stays while the app runs.
        assert len(await my_sandboxes(docker_engine) - before) == 1
    assert await my_sandboxes(docker_engine) - before == set()


async def test_http_idle_session_ends_and_loses_its_sandbox(
    docker_engine: docker.DockerClient,
) -> None:
    before = await my_sandboxes(docker_engine)
    async with http_server(session_idle_timeout=1) as url:
        async with http_session(url, terminate_on_close=False) as session:
            assert not (await session.call_tool("execute_code", {"code": "1"})).is_error

        async def none_left() -> bool:
            return await my_sandboxes(docker_engine) - before == set()

        # The client left without ending its session: the session ends once idle for 1 s.
        await eventually(none_left, 15, "the idle session's sandbox was not removed")


async def test_the_service_serves_mcp_behind_its_tokens(service: ServiceProcess) -> None:
    url = f"{service.url}/mcp"
    async with httpx2.AsyncClient() as anonymous:
        refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    async with (
        httpx2.AsyncClient(headers=service.headers(), timeout=60) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        result = await session.call_tool("execute_code", {"code": "print(6 * 7)"})
        assert text(result).strip() == "42"
        written = await session.call_tool("write_file", {"path": "m.txt", "content": "mcp"})
        assert not written.is_error
        assert text(await session.call_tool("read_file", {"path": "m.txt"})) == "mcp"
