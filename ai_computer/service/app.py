"""``ai-computer serve``: the HTTP API of the original AI Computer service, on FastAPI.

Routes (``…`` is ``/api/v1/sandbox/{sandbox_id}``; every route but ``/dev/token`` and
``/healthz`` needs ``Authorization: Bearer <token>``):

=============================  ======================================================
``POST /dev/token``            a new token, only with ``--give-tokens-to-anyone``
``POST /api/v1/sandbox/create``  a set-up sandbox (optional JSON body: its limits)
``GET /api/v1/sandboxes``      this token's sandboxes
``GET …/status``, ``DELETE …``   state; removal
``POST …/execute``             ``{"code"}`` or ``{"file_path"}``; the outcome in the body
``POST …/execute/stream``      the same as NDJSON events (``…/execute/file/stream`` too)
``POST …/execute/shell``       ``{"command", "args"}``; ``args: []`` runs a shell line
``POST …/files/upload``        multipart ``file`` then ``path``
``GET …/files?path=``          the file's bytes; ``DELETE`` removes, ``…/files/list`` lists
``POST …/restart``, ``…/interrupt``, ``…/packages``
``GET /metrics``, ``/healthz``   Prometheus text; liveness
=============================  ======================================================

Success is HTTP 200 with the outcome inside the body (``wire.response_body``): an execution
that raised is a 200 whose ``success`` is false. Errors of the request itself (no such sandbox,
a bad limit, a quota reached, a body too large) are JSON ``{"error": message}`` with a 4xx/5xx
status, the message naming what was wrong and what is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import posixpath
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._version import __version__
from ..errors import SandboxError, SandboxStateError
from ..limits import MIB, USE_CLIENT_DEFAULT, Timeout, format_size
from ..models import SandboxResponse, StreamEvent
from ..sdk.client import SandboxClient
from ..sdk.files import sandbox_path
from ..sdk.wire import (
    client_path,
    environment_code,
    keepalive_line,
    ndjson_lines,
    response_body,
)
from .mcp import mcp_http_app
from .sandboxes import Entry, QuotaError, Sandboxes, UnknownSandboxError
from .tokens import TokenLimitError, Tokens

log = logging.getLogger("ai_computer.service")
T = TypeVar("T")
access_log = logging.getLogger("ai_computer.service.access")

KEEPALIVE_INTERVAL = 5.0
"""Seconds of silence after which a stream sends a ``keepalive`` event."""
UPLOADS_IN_FLIGHT = 8
"""Most uploads the service receives at once (each may spool up to the upload limit)."""
DEFAULT_BODY_LIMIT = 8 * MIB
"""Most bytes of a JSON request body (code, a command line)."""
_STREAM_MEDIA_TYPE = "application/x-ndjson"
_TEMPORARY_NAME = re.compile(r"tmp[a-z0-9_]{8}\Z")  # tempfile's names


@dataclass
class ServiceSettings:
    """What ``ai-computer serve`` was started with (besides the sandboxes' options)."""

    tokens: list[str]
    give_tokens_to_anyone: bool = False
    upload_limit: int = 256 * MIB
    body_limit: int = DEFAULT_BODY_LIMIT
    keepalive_interval: float = KEEPALIVE_INTERVAL
    host: str = "127.0.0.1"
    """The address the service listens on (the MCP endpoint's DNS-rebinding check uses it)."""


@dataclass
class Metrics:
    """Counters for ``/metrics`` (Prometheus text format)."""

    executions: int = 0
    execution_seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def render(self, live: int) -> str:
        lines = [
            "# TYPE ai_computer_sandboxes_live gauge",
            f"ai_computer_sandboxes_live {live}",
            "# TYPE ai_computer_executions_total counter",
            f"ai_computer_executions_total {self.executions}",
            "# TYPE ai_computer_execution_seconds summary",
            f"ai_computer_execution_seconds_sum {self.execution_seconds:.6f}",
            f"ai_computer_execution_seconds_count {self.executions}",
            "# TYPE ai_computer_requests_total counter",
            *(f'ai_computer_requests_total{{status="{s}"}} {n}' for s, n in self.requests.items()),
            "# TYPE ai_computer_errors_total counter",
            *(f'ai_computer_errors_total{{kind="{k}"}} {n}' for k, n in self.errors.items()),
        ]
        return "\n".join(lines) + "\n"


# -- request bodies ----------------------------------------------------------------------------

Seconds = Annotated[float, Field(gt=0, le=86400)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateRequest(_Body):
    """Limits of a new sandbox (our extension: the original client sends no body)."""

    memory_limit: str | int | None = Field(None, description="e.g. '1G' (at most 2G)")
    cpu_limit: float | None = Field(None, description="cores, at most 4")
    timeout: Seconds | None = Field(None, description="default seconds per execution")
    disk_limit: str | int | None = Field(None, description="size of /workspace, e.g. '512M'")


class ExecuteRequest(_Body):
    """Code to run, or a ``.py`` file in the sandbox to run as ``__main__``."""

    code: str | None = None
    file_path: str | None = None
    timeout: Seconds | None = Field(None, description="seconds; default: the sandbox's")
    environment: dict[str, str] | None = Field(
        None, description="variables set in os.environ for this execution only"
    )


class ShellRequest(_Body):
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list, description="[] runs command as a shell line")
    timeout: Seconds | None = None


class PackagesRequest(_Body):
    packages: list[str] = Field(min_length=1, max_length=64)
    timeout: Seconds | None = None


_UNAUTHORISED = (
    "missing or unknown bearer token: send `Authorization: Bearer <token>` "
    "with a token from the server's token file"
)
_OPEN_PATHS = frozenset({"/dev/token", "/healthz"})


def _owner(request: Request) -> str:
    """The request's token's owner, as ``_RequireToken`` found it before the body was read."""
    found = request.scope.get("state", {}).get("owner")
    if found is None:
        raise HTTPException(401, _UNAUTHORISED)
    return str(found)


Owner = Annotated[str, Depends(_owner)]


def _entry(sandbox_id: str, request: Request, who: Owner) -> Entry:
    """The sandbox of the path, if this token owns it (else 404, as for no sandbox)."""
    sandboxes: Sandboxes = request.app.state.sandboxes
    return sandboxes.get(who, sandbox_id)


SandboxEntry = Annotated[Entry, Depends(_entry)]


def _timeout(value: float | None) -> Timeout:
    return USE_CLIENT_DEFAULT if value is None else value


# -- the app -----------------------------------------------------------------------------------


def create_app(settings: ServiceSettings, sandboxes: Sandboxes) -> FastAPI:
    """The service's ASGI app over ``sandboxes`` (started and closed by its lifespan)."""
    tokens = Tokens(settings.tokens)
    metrics = Metrics()
    # MCP sessions: one sandbox each, with the service's options; at most --max-sandboxes
    # sessions (counted apart from the sandboxes of the HTTP API).
    mcp_endpoint, mcp_sessions = mcp_http_app(
        lambda: SandboxClient(**sandboxes.options),
        host=settings.host,
        max_sessions=sandboxes.max_sandboxes,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sandboxes.start()
        try:
            async with mcp_sessions.run():  # removes the MCP sessions' sandboxes on the way out
                yield
        finally:
            await sandboxes.close()

    app = FastAPI(
        title="ai-computer",
        version=__version__,
        description="Sandboxes for untrusted Python code, each an ipykernel in a hardened "
        "container. The API of the original AI Computer service.",
        lifespan=lifespan,
        docs_url=None,  # its pages load scripts from a CDN; /openapi.json needs a token
        redoc_url=None,
    )
    app.state.sandboxes = sandboxes
    app.state.metrics = metrics
    app.state.tokens = tokens

    # -- errors ------------------------------------------------------------------------------

    def error(status: int, message: str, kind: str) -> JSONResponse:
        metrics.errors[kind] += 1
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), f"http_{exc.status_code}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
            problems.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
        return error(422, "invalid request: " + "; ".join(problems), "invalid_request")

    @app.exception_handler(UnknownSandboxError)
    async def unknown_sandbox(request: Request, exc: UnknownSandboxError) -> JSONResponse:
        return error(404, str(exc), "unknown_sandbox")

    @app.exception_handler(QuotaError)
    async def quota(request: Request, exc: QuotaError) -> JSONResponse:
        return error(exc.status, str(exc), "quota")

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return error(400, str(exc), "bad_value")

    @app.exception_handler(SandboxStateError)
    async def wrong_state(request: Request, exc: SandboxStateError) -> JSONResponse:
        return error(409, str(exc), "sandbox_state")

    @app.exception_handler(SandboxError)
    async def sandbox_failed(request: Request, exc: SandboxError) -> JSONResponse:
        return error(503, str(exc), "sandbox")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s", request.url.path, exc_info=exc)
        return error(500, "internal error of the service (logged on the server)", "internal")

    # -- tokens, health, metrics ---------------------------------------------------------------

    @app.post("/dev/token")
    async def dev_token() -> dict[str, str]:
        """A new token for anyone who asks: only when started with --give-tokens-to-anyone."""
        if not settings.give_tokens_to_anyone:
            raise HTTPException(
                403,
                "this server hands out no tokens: use a token from its token file "
                "(or start it with --give-tokens-to-anyone)",
            )
        try:
            return {"access_token": tokens.add_new(), "token_type": "bearer"}
        except TokenLimitError as exc:
            raise HTTPException(429, str(exc)) from None

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness, without a token (it tells nothing about any sandbox)."""
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(who: Owner) -> str:
        return metrics.render(len(sandboxes))

    # -- sandboxes -----------------------------------------------------------------------------

    @app.post("/api/v1/sandbox/create")
    async def create(who: Owner, body: CreateRequest | None = None) -> dict[str, Any]:
        """A new sandbox, set up and ready (the server's limits unless the body says others)."""
        overrides = {} if body is None else body.model_dump(exclude_none=True)
        entry = await sandboxes.create(who, overrides)
        return describe(entry)

    @app.get("/api/v1/sandboxes")
    async def listing(who: Owner) -> dict[str, Any]:
        return {"sandboxes": [describe(entry) for entry in sandboxes.owned_by(who)]}

    @app.get("/api/v1/sandbox/{sandbox_id}/status")
    async def status(entry: SandboxEntry) -> dict[str, Any]:
        return describe(entry)

    @app.delete("/api/v1/sandbox/{sandbox_id}")
    async def delete(sandbox_id: str, who: Owner) -> dict[str, Any]:
        await sandboxes.remove(who, sandbox_id)
        return {"sandbox_id": sandbox_id, "success": True, "message": "sandbox removed"}

    def describe(entry: Entry) -> dict[str, Any]:
        client = entry.client
        return {
            "sandbox_id": client.sandbox_id,
            "status": entry.status,
            "memory_limit": format_size(client.memory_limit),
            "cpu_limit": client.cpu_limit,
            "disk_limit": format_size(client.disk_limit),
            "timeout": client.timeout,
            "runtime": client.runtime,
        }

    # -- execution -----------------------------------------------------------------------------

    async def timed(run: Awaitable[SandboxResponse]) -> SandboxResponse:
        started = time.monotonic()
        try:
            return await run
        finally:
            metrics.executions += 1
            metrics.execution_seconds += time.monotonic() - started

    def program(client: SandboxClient, body: ExecuteRequest) -> tuple[str, str]:
        """("code", code) or ("file", path): exactly one of the two must be given."""
        if (body.code is None) == (body.file_path is None):
            raise ValueError("give exactly one of `code` (Python source) and `file_path`")
        if body.code is not None:
            return "code", body.code
        assert body.file_path is not None
        return "file", client_path(body.file_path)

    @app.post("/api/v1/sandbox/{sandbox_id}/execute")
    async def execute(
        entry: SandboxEntry, body: ExecuteRequest, request: Request
    ) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            kind, what = program(client, body)
            timeout = _timeout(body.timeout)

            async def run() -> SandboxResponse:
                async with applied_environment(entry, body.environment) as failure:
                    if failure is not None:
                        return SandboxResponse(False, error=failure)
                    if kind == "file":
                        return await timed(client.code.execute_file(what, timeout))
                    return await timed(client.execute_code(what, timeout))

            response = await _unless_disconnected(request, run())
        return response_body(response, client.sandbox_id)

    @contextlib.asynccontextmanager
    async def applied_environment(
        entry: Entry, environment: dict[str, str] | None
    ) -> AsyncIterator[str | None]:
        """``environment`` set in the kernel for the block (None), or why it could not be.

        Executions with an environment take turns (each saves what it replaces); the values
        are put back even when the caller went away (shielded)."""
        if not environment:
            yield None
            return
        setting, restoring = environment_code(environment)
        client = entry.client
        async with entry.environment_lock:
            prepared = await client.execute_code(setting)
            if not prepared.success:
                yield f"setting the environment failed: {prepared.error}"
                return
            try:
                yield None
            finally:
                await asyncio.shield(client.execute_code(restoring))

    def stream(entry: Entry, body: ExecuteRequest, force_file: bool = False) -> StreamingResponse:
        kind, what = program(entry.client, body)
        if force_file and kind != "file":
            raise ValueError("this route runs a file: give `file_path`, not `code`")
        timeout = _timeout(body.timeout)

        async def events(client: SandboxClient) -> AsyncIterator[StreamEvent]:
            async with applied_environment(entry, body.environment) as failure:
                if failure is not None:
                    yield StreamEvent("error", failure)
                    yield _completed(False, failure)
                    return
                if kind == "file":
                    source = client.code.execute_file_stream(what, timeout)
                else:
                    source = client.execute_code_stream(what, timeout)
                async for event in source:
                    yield event

        if body.environment:
            environment_code(body.environment)  # a bad one is a 400 before the stream starts
        lines = _ndjson(sandboxes, entry, events, settings.keepalive_interval, metrics)
        return StreamingResponse(lines, media_type=_STREAM_MEDIA_TYPE)

    @app.post("/api/v1/sandbox/{sandbox_id}/execute/stream")
    async def execute_stream(entry: SandboxEntry, body: ExecuteRequest) -> StreamingResponse:
        return stream(entry, body)

    @app.post("/api/v1/sandbox/{sandbox_id}/execute/file/stream")
    async def execute_file_stream(entry: SandboxEntry, body: ExecuteRequest) -> StreamingResponse:
        return stream(entry, body, force_file=True)

    @app.post("/api/v1/sandbox/{sandbox_id}/execute/shell")
    async def shell(entry: SandboxEntry, body: ShellRequest, request: Request) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            # The original client sends `args: []` for "no args": a shell command line.
            args = body.args or None
            run = client.execute_shell(body.command, args, _timeout(body.timeout))
            response = await _unless_disconnected(request, run)
        return response_body(response, client.sandbox_id)

    @app.post("/api/v1/sandbox/{sandbox_id}/restart")
    async def restart(entry: SandboxEntry) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            response = await client.restart()
        return response_body(response, client.sandbox_id)

    @app.post("/api/v1/sandbox/{sandbox_id}/interrupt")
    async def interrupt(entry: SandboxEntry) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            await client.interrupt()
        return {"sandbox_id": client.sandbox_id, "success": True, "message": "interrupted"}

    @app.post("/api/v1/sandbox/{sandbox_id}/packages")
    async def packages(
        entry: SandboxEntry, body: PackagesRequest, request: Request
    ) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            run = client.install_packages(body.packages, body.timeout)
            response = await _unless_disconnected(request, run)
        return response_body(response, client.sandbox_id)

    # -- files ---------------------------------------------------------------------------------

    @app.post("/api/v1/sandbox/{sandbox_id}/files/upload")
    async def upload(
        entry: SandboxEntry,
        file: Annotated[UploadFile, File(description="the file's content")],
        path: Annotated[str, Form(description="a folder, or the file's path")] = "/workspace",
        name: Annotated[str | None, Form(description="the file's name in folder `path`")] = None,
    ) -> dict[str, Any]:
        """Write the file to ``path/filename``; when the part is named like a temporary file
        (``tmpab12cd_3``, the original client's ``upload_bytes``) and ``path`` is no folder, to
        ``path`` itself. Our clients send ``name`` and mean ``path/name``.

        The body is spooled by the framework (1 MiB in memory, the rest in a temporary file on
        the host, at most the upload limit), then streamed into the sandbox in 1 MiB chunks.
        """
        async with sandboxes.use(entry) as client:
            target = client_path(path)
            if name is not None:
                folder = target
            else:
                # aiohttp percent-encodes a part's file name; unquote it.
                part_name = unquote((file.filename or "").rsplit("/", 1)[-1])
                if _TEMPORARY_NAME.match(part_name) and not (await client.fs.list(target)).success:
                    # upload_bytes: `path` is the file; the part is named after a temp file.
                    folder, name = posixpath.split(target.rstrip("/"))
                    folder = folder or "."
                else:  # upload_file: `path` is the folder (made if need be)
                    folder, name = target, part_name
            response = await client.fs.upload_bytes(file.file, name, folder)
        if not response.success:
            raise HTTPException(400, response.error or "the upload failed")
        return {
            "filename": response.filename,
            "size": response.size,
            "path": response.path,
            "message": response.message,
            "success": True,
        }

    @app.get("/api/v1/sandbox/{sandbox_id}/files")
    async def download(entry: SandboxEntry, path: str) -> StreamingResponse:
        """The file's bytes, streamed (the path is decoded twice: the original client's
        quoting is undone once more)."""
        remote = client_path(path, unquote_again=True)
        name = posixpath.basename(sandbox_path(remote))  # ValueError: a 400 naming the path

        async def chunks() -> AsyncGenerator[bytes, None]:
            async with sandboxes.use(entry) as client:
                async for chunk in client.fs.download_stream(remote):
                    yield bytes(chunk)

        # The first chunk before the status: a file that cannot be read is a 404, not a 200
        # cut short. No Content-Length: the sandbox's code may change the file meanwhile.
        body = chunks()
        try:
            first = await anext(body, b"")
        except SandboxError as exc:
            await body.aclose()
            raise HTTPException(404, str(exc)) from None
        except BaseException:
            await body.aclose()
            raise

        async def rest() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                async for chunk in body:
                    yield chunk
            finally:
                await body.aclose()

        # Exactly this shape: the original client splits on "filename=" and strips quotes.
        headers = {"Content-Disposition": f'attachment; filename="{_header_safe(name)}"'}
        return StreamingResponse(rest(), media_type="application/octet-stream", headers=headers)

    @app.get("/api/v1/sandbox/{sandbox_id}/files/list")
    async def list_files(entry: SandboxEntry, path: str = "/workspace") -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            response = await client.fs.list(client_path(path))
        return response_body(response, client.sandbox_id)

    @app.get("/api/v1/sandbox/{sandbox_id}/files/stat")
    async def stat_file(entry: SandboxEntry, path: str) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            response = await client.fs.stat(client_path(path))
        return response_body(response, client.sandbox_id)

    @app.delete("/api/v1/sandbox/{sandbox_id}/files")
    async def remove_file(entry: SandboxEntry, path: str) -> dict[str, Any]:
        async with sandboxes.use(entry) as client:
            response = await client.fs.remove(client_path(path))
        return response_body(response, client.sandbox_id)

    # An ASGI object as the endpoint: Starlette serves every method through it.
    endpoint = _Authenticated(mcp_endpoint, tokens)
    app.add_route("/mcp", endpoint, include_in_schema=False)  # type: ignore[arg-type]
    # The last added runs first: the log sees every answer, the token is checked before
    # any body is read, then the body is bounded as it arrives.
    app.add_middleware(
        _BodyLimit, default_limit=settings.body_limit, upload_limit=settings.upload_limit
    )
    app.add_middleware(_RequireToken, tokens=tokens)
    app.add_middleware(_AccessLog, metrics=metrics)
    return app


async def _until_disconnected(request: Request) -> None:
    # The body is read: what comes next is the client's disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; cancelled (the code interrupted, as a cancelled SDK call is) when the
    client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        raise HTTPException(499, "the client closed the request; its work was stopped") from None


def _completed(success: bool, error: str | None) -> StreamEvent:
    summary = {"success": success, "error": error, "execution_count": None}
    return StreamEvent("completed", json.dumps(summary))


async def _ndjson(
    sandboxes: Sandboxes,
    entry: Entry,
    events: Callable[[SandboxClient], AsyncIterator[StreamEvent]],
    keepalive_interval: float,
    metrics: Metrics,
) -> AsyncIterator[bytes]:
    """The stream's lines: events as they happen, a keepalive after each silence, exactly one
    ``completed``. Cancelled (the client went away), the execution is stopped as the SDK stops
    a cancelled stream: its code gets a KeyboardInterrupt."""
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(64)

    async def pump() -> None:
        completed = False
        started = time.monotonic()
        try:
            async with sandboxes.use(entry) as client:
                async for event in events(client):
                    completed |= event.type == "completed"
                    await queue.put(event)
        except SandboxError as exc:
            await queue.put(StreamEvent("error", str(exc)))
            if not completed:
                await queue.put(_completed(False, str(exc)))
        except Exception as exc:
            log.error("stream failed", exc_info=exc)
            message = "internal error of the service (logged on the server)"
            await queue.put(StreamEvent("error", message))
            if not completed:
                await queue.put(_completed(False, message))
        finally:
            metrics.executions += 1
            metrics.execution_seconds += time.monotonic() - started
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), keepalive_interval)
            except TimeoutError:
                yield keepalive_line()
                continue
            if event is None:
                break
            for line in ndjson_lines(event):
                yield line
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _header_safe(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)


# -- middleware --------------------------------------------------------------------------------


class _Authenticated:
    """The MCP endpoint behind the service's bearer tokens: the MCP session is bound to the
    token's owner (``scope["user"]``), so another token cannot use a session id it learnt."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        owner = self.tokens.owner(authorization)
        if owner is None:
            await _send_json(send, 401, {"error": _UNAUTHORISED}, www_authenticate=True)
            return
        access = AccessToken(token=owner, client_id=owner, scopes=[])
        await self.app({**scope, "user": AuthenticatedUser(access)}, receive, send)


class _RequireToken:
    """Every route but ``_OPEN_PATHS`` needs a known bearer token, checked before any of the
    body is read (an unknown caller must not make the service spool an upload); the owner is
    left in ``scope["state"]`` for the routes."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = dict(scope.get("headers", [])).get(b"authorization", b"")
        owner = self.tokens.owner(authorization.decode("latin-1"))
        if owner is None:
            await _send_json(send, 401, {"error": _UNAUTHORISED}, www_authenticate=True)
            return
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class _BodyLimit:
    """Refuse a request body past its limit with 413, as it arrives (a declared
    ``Content-Length`` at once): uploads get ``upload_limit``, everything else
    ``default_limit``."""

    def __init__(self, app: ASGIApp, default_limit: int, upload_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.uploads = 0  # in flight (each spools up to upload_limit on the host's disk)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].endswith("/files/upload")
        if upload and self.uploads >= UPLOADS_IN_FLIGHT:
            message = f"at most {UPLOADS_IN_FLIGHT} uploads at once; try again when one ends"
            await _send_json(send, 503, {"error": message})
            return
        # Multipart framing adds a little to the file itself.
        limit = self.upload_limit + MIB if upload else self.default_limit
        what = "an upload" if upload else "a request body"
        message = f"{what} may be at most {format_size(limit)}"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _send_json(send, 413, {"error": message})
                    return
        received = 0
        exceeded = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message_in

        replaced = False

        async def watched_send(message_out: Message) -> None:
            # A parser that caught the exception answers 400: past the limit it is a 413.
            nonlocal replaced
            if exceeded:
                if not replaced and message_out["type"] == "http.response.start":
                    replaced = True
                    await _send_json(send, 413, {"error": message})
                return
            await send(message_out)

        self.uploads += upload
        try:
            await self.app(scope, bounded_receive, watched_send)
        except _BodyTooLarge:
            if not replaced:
                await _send_json(send, 413, {"error": message})
        finally:
            self.uploads -= upload


async def _send_json(
    send: Send, status: int, body: dict[str, Any], *, www_authenticate: bool = False
) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if www_authenticate:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _AccessLog:
    """One structured line per request: method, path, status, milliseconds. Never a header,
    a query string or a body (tokens, code and file names stay out of the log)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            self.metrics.requests[str(status)] += 1
            access_log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.monotonic() - started) * 1000, 1),
                    }
                )
            )
