"""The MCP server (Model Context Protocol): a sandbox's code, shell, files and packages as tools.

Built on the official SDK's ``MCPServer`` (``mcp`` 2.x). Seven tools, each a call of the SDK's
``SandboxClient``: ``execute_code``, ``execute_shell``, ``read_file``, ``write_file``,
``list_files``, ``install_packages`` and ``restart``. Every MCP session gets a sandbox of its own,
started by its first tool call and removed when the session ends:

- on stdio (:func:`run_stdio`, ``ai-computer mcp``) the process is the session: its sandbox is
  removed when the server's run ends (end of stdin, SIGTERM, Ctrl-C, cancellation);
- on streamable HTTP (:func:`mcp_http_app`) there is one sandbox per MCP session id, removed when
  the session ends (the client's DELETE, the session's idle timeout, its task failing) and, for
  the sessions still open, when the app shuts down.

How the end of a session is seen, in mcp 2.3: the SDK gives each connection a
``mcp.server.connection.Connection`` whose ``exit_stack`` it unwinds when the connection ends,
on every transport (``runner.serve_connection``, ``aclose_shielded``); its session manager says
"per-connection cleanup belongs on ``connection.exit_stack``". That is the hook used for HTTP
sessions. A tool's ``Context`` does not expose the connection yet (the low-level
``Context.connection`` exists but ``ServerRunner`` does not construct that class), so
:func:`_connection` reads it from the request's ``ServerSession``, checked, in one place. The
SDK gives that unwinding 5 seconds; a removal that takes longer goes on in a task of its own,
and the server's lifespan waits for it. The lifespan (one per stdio run, one per HTTP session
manager) removes whatever is left; on stdio it is the session's end (there, a 2026-07-28
client gets a new connection per request, so connections are not sessions).

The 2026-07-28 protocol era has no sessions (each request stands alone), so an HTTP server
refuses it: a client that negotiates (``mode="auto"``) falls back to the initialize handshake
and gets a session. On stdio the process is the session, so both eras are served.

Tool arguments are untrusted: their types are checked strictly (``True`` is not a timeout,
``"5"`` is not a number), the SDK checks paths, limits and package names, and every refusal or
failure comes back as a tool error (``isError``) saying what was wrong, never as a crash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import (
    DEFAULT_SESSION_IDLE_TIMEOUT,
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_REQUEST,
    CallToolResult,
    ContentBlock,
    ImageContent,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from .. import limits
from .._version import __version__
from ..backends.image import WORKSPACE
from ..errors import SandboxError
from ..models import SandboxResponse
from ..sdk.client import SandboxClient

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_TIMEOUT = 20.0
"""Seconds a server that stops waits for its sandboxes' removal (the owner's watchdog removes
what is left once the process is gone)."""

DEFAULT_MAX_SESSIONS = 32
"""Most MCP sessions (so sandboxes) an HTTP server keeps at once; more get HTTP 503."""

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""Display data returned as images (the first of these a bundle has), in order of preference."""

INSTRUCTIONS = (
    "Each MCP session has a sandbox of its own: an IPython kernel in an isolated container "
    "with no network, limited memory, CPU and time. Variables, imports and files persist "
    "between calls of the session; files live under /workspace. `execute_code` runs Python "
    "(plots come back as images), `execute_shell` runs a shell command line, `install_packages` "
    "adds packages from PyPI, `restart` gives a fresh kernel (files are kept). The sandbox is "
    "removed when the session ends."
)

_SESSIONS_ONLY = (
    "this server keeps one sandbox per MCP session, and the 2026-07-28 protocol has no "
    "sessions: connect with the initialize handshake (protocol "
    f"{', '.join(HANDSHAKE_PROTOCOL_VERSIONS)}), e.g. mcp's Client(url, mode='legacy')"
)


# -- the sandboxes of the sessions ----------------------------------------------------------


@dataclass
class _Sandbox:
    client: SandboxClient
    started: asyncio.Task[SandboxClient]
    session: str  # for the logs: the MCP session id, or "(the process)"


class SessionSandboxes:
    """The sandboxes of one running MCP server: one per MCP session (``per_session``), or one
    for the whole run (stdio, where the process is the session).

    A sandbox is made by ``make_client`` and started (``setup()``) by the first tool call that
    needs it; calls that arrive meanwhile wait for the same start. A call cancelled while it
    waits leaves the start going: the next call gets that sandbox. A start that fails is
    forgotten, so the next call tries again. A session's sandbox is removed when the session
    ends; :meth:`close` (the end of the server's lifespan) removes the rest and waits for every
    removal, after which a call is refused.
    """

    def __init__(self, make_client: Callable[[], SandboxClient], *, per_session: bool) -> None:
        self._make_client = make_client
        self.per_session = per_session
        self._sandboxes: dict[Connection | None, _Sandbox] = {}
        self._removals: set[asyncio.Task[None]] = set()
        self.closed = False

    def _key(self, ctx: Context[Any, Any]) -> Connection | None:
        if not self.per_session:
            return None
        connection = _connection(ctx)
        if connection.session_id is None:  # stateless HTTP or the sessionless protocol era
            raise ToolError(_SESSIONS_ONLY)
        return connection

    def has_sandbox(self, ctx: Context[Any, Any]) -> bool:
        """Whether the call's session has a sandbox (started, or starting)."""
        return self._key(ctx) in self._sandboxes

    async def sandbox(self, ctx: Context[Any, Any]) -> SandboxClient:
        """The set-up sandbox of the call's session, started now if it has none.

        Raises ``ToolError`` when the server is closing, and what ``make_client`` or
        ``setup()`` raise (``ValueError``, ``SandboxError``) when the sandbox cannot start.
        """
        if self.closed:
            raise ToolError("the MCP server is shutting down; its sandboxes are being removed")
        key = self._key(ctx)
        sandbox = self._sandboxes.get(key)
        if sandbox is None:
            sandbox = self._open(key)
        return await asyncio.shield(sandbox.started)

    def _open(self, key: Connection | None) -> _Sandbox:
        client = self._make_client()
        session = "(the process)" if key is None else str(key.session_id)
        start = self._start(key, client, session)
        started = asyncio.create_task(start, name="ai-computer-mcp-start")
        sandbox = _Sandbox(client, started, session)
        self._sandboxes[key] = sandbox
        if key is not None:
            key.exit_stack.push_async_callback(self._session_ended, key)
        return sandbox

    async def _start(
        self, key: Connection | None, client: SandboxClient, session: str
    ) -> SandboxClient:
        try:
            await client.setup()
        except BaseException:
            # setup() left nothing behind; forget the sandbox so that the next call retries.
            sandbox = self._sandboxes.get(key)
            if sandbox is not None and sandbox.client is client:
                del self._sandboxes[key]
            raise
        log.info("sandbox %s started for MCP session %s", client.sandbox_id, session)
        return client

    async def _session_ended(self, key: Connection) -> None:
        """Called by the SDK when the session's connection ends (its ``exit_stack``)."""
        sandbox = self._sandboxes.pop(key, None)
        if sandbox is not None:
            # Shielded: the SDK gives this callback 5 seconds, the removal goes on past them.
            await asyncio.shield(self._remove(sandbox))

    def _remove(self, sandbox: _Sandbox) -> asyncio.Task[None]:
        removal = asyncio.create_task(self._cleanup(sandbox), name="ai-computer-mcp-remove")
        self._removals.add(removal)
        removal.add_done_callback(self._removals.discard)
        return removal

    async def _cleanup(self, sandbox: _Sandbox) -> None:
        try:
            await sandbox.client.cleanup(wait=True)  # also stops a start still under way
        except Exception as exc:  # the owner's watchdog and `ai-computer gc` are the fallback
            log.warning("removing sandbox %s failed: %s", sandbox.client.sandbox_id, exc)
        # The start's own end (its error, if any, was the callers' to see).
        await asyncio.gather(sandbox.started, return_exceptions=True)
        log.info("sandbox %s of MCP session %s removed", sandbox.client.sandbox_id, sandbox.session)

    async def close(self) -> None:
        """Remove every sandbox left and wait (at most ``CLOSE_TIMEOUT`` seconds) for all the
        removals, earlier ones included. Shielded from cancellation: it is what runs while a
        server stops."""
        self.closed = True
        sandboxes, self._sandboxes = list(self._sandboxes.values()), {}
        for sandbox in sandboxes:
            self._remove(sandbox)
        with anyio.CancelScope(shield=True):
            if self._removals:
                _, pending = await asyncio.wait(set(self._removals), timeout=CLOSE_TIMEOUT)
                if pending:
                    log.warning("sandbox removal did not finish; the watchdog removes the rest")


def _connection(ctx: Context[Any, Any]) -> Connection:
    """The connection a tool call came on (see the module's docstring for why it is read from
    the session, and where the SDK documents its ``exit_stack``)."""
    connection = getattr(ctx.request_context.session, "_connection", None)
    if not isinstance(connection, Connection):
        # An SDK that moved it: fail loudly rather than keep sandboxes nobody removes.
        raise RuntimeError("this mcp version does not let a tool reach its session's connection")
    return connection


def _sandboxes(ctx: Context[SessionSandboxes, Any]) -> SessionSandboxes:
    return ctx.request_context.lifespan_context


async def _in_sandbox(
    ctx: Context[SessionSandboxes, Any], call: Callable[[SandboxClient], Awaitable[T]]
) -> T:
    """``call`` on the session's sandbox; a refusal or failure of the SDK (a bad argument, a
    sandbox that cannot start or is closed) becomes a ``ToolError`` with its message.

    Cancelled (the client cancels the tool call), it cancels ``call``: the SDK then stops the
    code or command it runs (see ``SandboxClient.execute_code``).
    """
    try:
        client = await _sandboxes(ctx).sandbox(ctx)
        return await call(client)
    except (SandboxError, ValueError) as exc:  # UnicodeError is a ValueError
        raise ToolError(str(exc)) from exc


async def _started(client: SandboxClient) -> None:
    """Nothing more to do: the sandbox is set up."""


# -- the protocol era -------------------------------------------------------------------------


async def _refuse_sessionless(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Server middleware of the HTTP server: a 2026-07-28 request (no session to keep a sandbox
    for) is refused, so a negotiating client falls back to the handshake era."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        if ctx.request_id is None:
            return None  # a notification: nothing to answer
        raise MCPError(code=INVALID_REQUEST, message=_SESSIONS_ONLY)
    return await call_next(ctx)


# -- tool arguments ---------------------------------------------------------------------------

_Code = Annotated[str, Field(strict=True, description="Python code, run as a notebook cell")]
_Command = Annotated[
    str, Field(strict=True, description="a shell command line, run by `sh -c` in the sandbox")
]
_Path = Annotated[
    str,
    Field(strict=True, description=f"a path relative to {WORKSPACE}, or absolute under it"),
]
_Directory = Annotated[
    str,
    Field(strict=True, description=f"a directory relative to {WORKSPACE}, or absolute under it"),
]
_Content = Annotated[str, Field(strict=True, description="the text to write (UTF-8)")]
_Packages = Annotated[
    list[str],
    Field(
        strict=True,
        description="requirements from PyPI, e.g. ['tabulate', 'requests==2.32.3']",
    ),
]
_Timeout = Annotated[
    float | None,
    Field(
        strict=True,
        description="seconds the call may take; by default, and at most, the server's limit",
    ),
]


def call_timeout(client: SandboxClient, timeout: float | None) -> limits.Timeout:
    """A tool's ``timeout`` as the SDK takes it: not given (``None``) is the sandbox's own limit,
    which is also the most a call may ask for (``ValueError`` beyond it)."""
    if timeout is None:
        return limits.USE_CLIENT_DEFAULT
    seconds = limits.parse_timeout(timeout)
    assert seconds is not None
    if client.timeout is not None and seconds > client.timeout:
        raise ValueError(
            f"timeout {timeout!r} exceeds this server's limit of "
            f"{limits.format_seconds(client.timeout)} (allowed: more than 0, at most that)"
        )
    return seconds


# -- tool results (pure: the SDK's responses as MCP content) ----------------------------------


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _error(message: str | None, what: str) -> CallToolResult:
    return CallToolResult(content=[_text(message or f"{what} failed")], is_error=True)


def image_content(bundle: dict[str, Any]) -> ContentBlock | None:
    """The image of a display bundle (the first of ``IMAGE_TYPES`` it has) as ``ImageContent``;
    a notice instead when its data is not base64 (the kernel's output is untrusted); None when
    it has no image."""
    for mime_type in IMAGE_TYPES:
        data = bundle.get(mime_type)
        if not isinstance(data, str):
            continue
        packed = "".join(data.split())  # Jupyter may wrap base64 in lines
        try:
            base64.b64decode(packed, validate=True)
        except (binascii.Error, ValueError):
            return _text(f"[an {mime_type} output is not base64 data and was left out]")
        return ImageContent(type="image", data=packed, mime_type=mime_type)
    return None


def _displays(data: dict[str, Any]) -> Iterator[ContentBlock]:
    """The display bundles: their image, else their text (the result's own bundle, also in
    ``display``, is left to ``result``)."""
    result = data.get("result")
    bundles = data.get("display")
    for bundle in bundles if isinstance(bundles, list) else []:
        if not isinstance(bundle, dict):
            continue
        image = image_content(bundle)
        if image is not None:
            yield image
            continue
        text = bundle.get("text/plain")
        if not isinstance(text, str):
            continue
        if text == result:
            result = None  # once: the result is yielded after the displays
            continue
        yield _text(text)


def _traceback(error: Any) -> str | None:
    if not isinstance(error, dict) or not isinstance(error.get("traceback"), list):
        return None
    lines = [line for line in error["traceback"] if isinstance(line, str)]
    return "\n".join(lines) or None


def code_result(response: SandboxResponse) -> CallToolResult:
    """``execute_code``'s response as MCP content: stdout, stderr (``[stderr]``), displays
    (images as ``ImageContent``), the last expression's value, notices; on failure also the
    traceback (or the reason: a timeout, a dead kernel), with ``isError``."""
    data = response.data or {}
    content: list[ContentBlock] = []
    output = data.get("output")
    if isinstance(output, str) and output:
        content.append(_text(output))
    stderr = data.get("stderr")
    if isinstance(stderr, str) and stderr:
        content.append(_text(f"[stderr]\n{stderr}"))
    content.extend(_displays(data))
    result = data.get("result")
    if isinstance(result, str) and result:
        content.append(_text(result))
    notices = data.get("notices")
    for notice in notices if isinstance(notices, list) else []:
        if isinstance(notice, str) and not (isinstance(output, str) and notice in output):
            content.append(_text(notice))
    if not response.success:
        reason = _traceback(data.get("error")) or response.error or "the code failed"
        content.append(_text(reason))
        return CallToolResult(content=content, is_error=True)
    return CallToolResult(content=content or [_text("[no output]")])


def shell_result(response: SandboxResponse) -> CallToolResult:
    """``execute_shell``'s response: stdout, stderr (``[stderr]``) and the exit code; a command
    that fails (a non-zero status, a timeout) has ``isError`` and says why."""
    data = response.data or {}
    content: list[ContentBlock] = []
    stdout, stderr = data.get("stdout"), data.get("stderr")
    if isinstance(stdout, str) and stdout:
        content.append(_text(stdout))
    if isinstance(stderr, str) and stderr:
        content.append(_text(f"[stderr]\n{stderr}"))
    if data.get("truncated"):
        content.append(_text("[stdout truncated: it passed the sandbox's output limit]"))
    if "exit_code" in data:
        content.append(_text(f"[exit code {data['exit_code']}]"))
    if not response.success:
        content.append(_text(response.error or "the command failed"))
        return CallToolResult(content=content, is_error=True)
    return CallToolResult(content=content)


def listing_result(response: SandboxResponse) -> CallToolResult:
    """``list_files``'s response: its entries as JSON (names are the sandbox's, so escaped)."""
    if not response.success:
        return _error(response.error, "listing")
    data = response.data or {}
    listing = {"entries": data.get("entries", []), "truncated": bool(data.get("truncated"))}
    return CallToolResult(content=[_text(json.dumps(listing, indent=1))])


# -- the tools ---------------------------------------------------------------------------------


async def execute_code(
    code: _Code, timeout: _Timeout = None, *, ctx: Context[SessionSandboxes, Any]
) -> CallToolResult:
    """Run Python code in the session's sandbox, a Jupyter (IPython) kernel: variables, imports
    and files persist between calls. Returns stdout, stderr, the value of the last expression
    and displayed output; matplotlib figures (plt.show()) come back as images. An exception
    comes back as an error with its traceback."""
    response = await _in_sandbox(
        ctx, lambda client: client.execute_code(code, call_timeout(client, timeout))
    )
    return code_result(response)


async def execute_shell(
    command: _Command, timeout: _Timeout = None, *, ctx: Context[SessionSandboxes, Any]
) -> CallToolResult:
    """Run a shell command line in the sandbox (`sh -c`, in /workspace, no network): pipes and
    redirections work. Returns stdout, stderr and the exit code; a non-zero exit is an error."""
    # args=None makes `command` a shell line, run by `sh -c` (sdk/shell.py, command_argv).
    response = await _in_sandbox(
        ctx, lambda client: client.execute_shell(command, None, call_timeout(client, timeout))
    )
    return shell_result(response)


async def read_file(path: _Path, *, ctx: Context[SessionSandboxes, Any]) -> CallToolResult:
    """Read a UTF-8 text file of the sandbox (under /workspace)."""
    response = await _in_sandbox(ctx, lambda client: client.fs.read_file(path))
    if not response.success:
        return _error(response.error, f"reading {path!r}")
    return CallToolResult(content=[_text((response.data or {}).get("content", ""))])


async def write_file(
    path: _Path, content: _Content, *, ctx: Context[SessionSandboxes, Any]
) -> CallToolResult:
    """Write a text file in the sandbox (under /workspace), creating its folders; an existing
    file is replaced."""
    response = await _in_sandbox(ctx, lambda client: client.fs.write_file(path, content))
    if not response.success:
        return _error(response.error, f"writing {path!r}")
    data = response.data or {}
    return CallToolResult(content=[_text(f"wrote {data.get('size')} bytes to {data.get('path')}")])


async def list_files(
    path: _Directory = WORKSPACE, *, ctx: Context[SessionSandboxes, Any]
) -> CallToolResult:
    """List a directory of the sandbox (default /workspace): each entry's name, path, type and
    size, as JSON."""
    response = await _in_sandbox(ctx, lambda client: client.fs.list(path))
    return listing_result(response)


async def install_packages(
    packages: _Packages, *, ctx: Context[SessionSandboxes, Any]
) -> CallToolResult:
    """Install Python packages from PyPI into the sandbox (wheels only; the sandbox itself has
    no network). They can be imported at once and survive `restart`."""
    response = await _in_sandbox(ctx, lambda client: client.install_packages(packages))
    if not response.success:
        return _error(response.error, "installing packages")
    data = response.data or {}
    installed = data.get("installed") or []
    if not installed:
        message = data.get("message") or "nothing to install"
        return CallToolResult(content=[_text(f"{', '.join(data.get('packages', []))}: {message}")])
    return CallToolResult(content=[_text("installed: " + ", ".join(map(str, installed)))])


async def restart(*, ctx: Context[SessionSandboxes, Any]) -> CallToolResult:
    """Restart the sandbox's Python kernel: variables and imports are lost, files in /workspace
    and installed packages are kept. Also the way back from a broken kernel."""
    sandboxes = _sandboxes(ctx)
    if not sandboxes.has_sandbox(ctx):  # a new sandbox is as fresh as a restarted one
        await _in_sandbox(ctx, _started)
        return CallToolResult(content=[_text("started a fresh sandbox")])
    response = await _in_sandbox(ctx, lambda client: client.restart())
    if not response.success:
        return _error(response.error, "restarting")
    return CallToolResult(content=[_text((response.data or {}).get("message") or "restarted")])


_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_CLOSED_WORLD = ToolAnnotations(open_world_hint=False)
_TOOLS: list[tuple[Callable[..., Awaitable[CallToolResult]], ToolAnnotations]] = [
    (execute_code, _CLOSED_WORLD),
    (execute_shell, _CLOSED_WORLD),
    (read_file, _READ_ONLY),
    (write_file, _CLOSED_WORLD),
    (list_files, _READ_ONLY),
    (install_packages, ToolAnnotations(open_world_hint=True)),  # the host reaches PyPI
    (restart, ToolAnnotations(destructive_hint=True, open_world_hint=False)),
]


# -- the server and its transports ------------------------------------------------------------


def build_mcp_server(
    make_client: Callable[[], SandboxClient], *, per_session: bool = False
) -> MCPServer[SessionSandboxes]:
    """The MCP server whose tools run in sandboxes made by ``make_client`` (called once per
    session, on its first tool call; it may raise ``SandboxError`` or ``ValueError`` to refuse,
    e.g. a quota, and the message reaches the client as a tool error).

    With ``per_session`` (streamable HTTP) each MCP session id gets its own sandbox and the
    sessionless 2026-07-28 protocol is refused; without it (stdio) the whole run shares one.
    Either way the sandboxes live in the server's lifespan (``SessionSandboxes``), which removes
    what is left when it ends.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[SessionSandboxes]) -> AsyncIterator[SessionSandboxes]:
        sandboxes = SessionSandboxes(make_client, per_session=per_session)
        try:
            yield sandboxes
        finally:
            await sandboxes.close()

    server: MCPServer[SessionSandboxes] = MCPServer(
        "ai-computer",
        title="AI Computer sandbox",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        middleware=[_refuse_sessionless] if per_session else None,
    )
    for tool, hints in _TOOLS:
        server.add_tool(tool, annotations=hints, structured_output=False)
    return server


async def run_stdio(make_client: Callable[[], SandboxClient]) -> None:
    """Serve MCP on stdin/stdout until stdin ends; the session's sandbox is then removed.

    For ``ai-computer mcp``. SIGTERM (what an MCP host sends a server that has not exited 2 s
    after closing its stdin) ends the run the same way, sandbox removal included; a SIGTERM
    that comes while the sandbox is being removed does not interrupt that. Cancelled, it removes
    the sandbox too, then raises ``CancelledError``.

    mcp reads stdin in a thread nothing can interrupt: a process told to stop while its host
    keeps stdin open removes its sandbox at once, but exits only when stdin ends or one more
    message arrives.
    """
    server = build_mcp_server(make_client)
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        if not terminated:  # a second SIGTERM must not cut the removal short
            terminated = True
            task.cancel()

    with _signal_handler(signal.SIGTERM, terminate):
        try:
            await server.run_stdio_async()
        except BaseException as exc:
            if not terminated or task.uncancel() > 0 or not _ended_by_signal(exc):
                raise  # a cancellation of the caller's (too), or a failure of the run's


def _ended_by_signal(exc: BaseException) -> bool:
    """Whether ``exc`` is how a run cut short by ``task.cancel()`` ends: the cancellation, or
    mcp's stdio reader failing to hand on a message that arrived after the server stopped
    reading (its thread blocks on stdin, so it sees the message before the cancellation)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_ended_by_signal(inner) for inner in exc.exceptions)
    return isinstance(
        exc, asyncio.CancelledError | anyio.BrokenResourceError | anyio.ClosedResourceError
    )


@contextlib.contextmanager
def _signal_handler(signum: int, handler: Callable[[], None]) -> Iterator[None]:
    """``handler`` on the running loop for ``signum`` while the block runs, where the loop can
    take one (the main thread, not Windows); elsewhere the signal keeps its own behaviour."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signum, handler)
    except (NotImplementedError, RuntimeError, ValueError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signum)


def mcp_http_app(
    make_client: Callable[[], SandboxClient],
    *,
    host: str = "127.0.0.1",
    transport_security: TransportSecuritySettings | None = None,
    max_sessions: int | None = DEFAULT_MAX_SESSIONS,
    session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_TIMEOUT,
) -> tuple[StreamableHTTPASGIApp, StreamableHTTPSessionManager]:
    """The streamable-HTTP MCP endpoint, as an ASGI app, and the session manager that must run
    while it serves. One sandbox per MCP session (see the module's docstring).

    The app answers the MCP endpoint whatever its path (GET, POST and DELETE: the SDK's own
    ``streamable_http_path`` routing is not used), so the parent decides the URL: route one
    exact path to it, under any ``Mount`` prefix. A ``Route`` with an ASGI app as its endpoint
    serves every method. Prefer it to mounting the app itself: ``Mount("/mcp", ...)`` serves
    ``/mcp/`` and answers ``/mcp`` with a 307 redirect to it (a round trip more per request,
    and lost behind a proxy that rewrites the scheme). Run the manager in the parent's
    lifespan; it can run once only, so build a new pair for each app::

        mcp_endpoint, mcp_sessions = mcp_http_app(lambda: SandboxClient(**options))

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with mcp_sessions.run():  # sandboxes still open are removed on the way out
                yield

        app = Starlette(routes=[Route("/mcp", endpoint=mcp_endpoint)], lifespan=lifespan)
        # FastAPI: FastAPI(lifespan=lifespan), then app.add_route("/mcp", mcp_endpoint).

    A check in front of it (the bearer token) must keep the endpoint an ASGI *object* (an
    instance with ``__call__(scope, receive, send)``): Starlette takes a plain function or a
    method given as a ``Route`` endpoint for a request handler, not an ASGI app.

    ``host`` is the address the server listens on: on a loopback one (``127.0.0.1``,
    ``localhost``, ``::1``) requests must name a loopback Host and Origin (the SDK's DNS
    rebinding protection) unless ``transport_security`` says otherwise. ``max_sessions``
    bounds the sessions, so the sandboxes (HTTP 503 beyond); a session without a request for
    ``session_idle_timeout`` seconds ends, and its sandbox is removed. Sessions are bound to the
    caller only if the parent puts an ``mcp.server.auth`` ``AuthenticatedUser`` in
    ``scope["user"]``; otherwise knowing a session id (random, 128 bits) is enough to use it.
    """
    server = build_mcp_server(make_client, per_session=True)
    server.streamable_http_app(  # builds the session manager; its own routing is not used
        streamable_http_path="/",
        host=host,
        transport_security=transport_security,
        max_sessions=max_sessions,
        session_idle_timeout=session_idle_timeout,
    )
    manager = server.session_manager
    return StreamableHTTPASGIApp(manager), manager
