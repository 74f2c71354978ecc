"""The SDK's remote mode: ``SandboxClient(base_url=..., token=...)`` talks to ``ai-computer serve``.

The calls and the responses are those of the local client (``client.py``), so an agent moves
from a local engine to a shared server by changing one argument. What differs:

- limits are sent at create (the server may refuse them, e.g. past its quotas);
- a per-call ``timeout=None`` ("no limit") becomes the server's longest, 24 hours;
- ``shell.execute(command, [])`` runs ``command`` as a shell line, as the original client's
  protocol says (locally ``[]`` means "no arguments");
- closing a stream early (``aclose()``, a ``break`` and collection) drops its HTTP response,
  and the server stops the code as a cancelled local stream does.

Needs httpx (the ``server`` extra).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from .. import limits
from ..backends.image import WORKSPACE
from ..errors import SandboxError, SandboxStartError, SandboxStateError
from ..models import FileOperationResponse, SandboxResponse, StreamEvent
from .files import sandbox_path, text_response
from .packages import check_specifiers
from .wire import sandbox_response

_LONGEST = 86400.0  # the server's longest per-call timeout (seconds)
_CHUNK = 1 << 20


class RemoteError(SandboxError):
    """The server refused a request or could not be reached. ``status`` is the HTTP status
    (``None`` when there was no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteStateError(RemoteError, SandboxStateError):
    """The server says the sandbox cannot do that now (HTTP 409: broken, cleaned up, ...)."""


def _refusal(status: int, text: str) -> RemoteError:
    kind = RemoteStateError if status == 409 else RemoteError
    return kind(_reason(status, text), status)


def _seconds(timeout: limits.Timeout) -> float | None:
    """A call's timeout as the server takes it: ``None`` there means "the sandbox's"."""
    if timeout is limits.USE_CLIENT_DEFAULT:
        return None
    value = limits.parse_timeout(timeout)
    return _LONGEST if value is None else min(value, _LONGEST)


class RemoteSandboxClient:
    """A sandbox on an ``ai-computer serve`` server; made by ``SandboxClient(base_url=...)``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        memory_limit: str | int | None = None,
        cpu_limit: float | None = None,
        timeout: float | None = None,
        *,
        disk_limit: str | int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        import httpx  # the server extra: loaded only by remote clients

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._limits: dict[str, Any] = {}
        if memory_limit is not None:
            self._limits["memory_limit"] = limits.format_size(
                limits.parse_memory_limit(memory_limit)
            )
        if cpu_limit is not None:
            self._limits["cpu_limit"] = limits.parse_cpu_limit(cpu_limit)
        if timeout is not None:
            self._limits["timeout"] = limits.parse_timeout(timeout)
        if disk_limit is not None:
            self._limits["disk_limit"] = limits.format_size(limits.parse_disk_limit(disk_limit))
        self.sandbox_id: str | None = None
        self.memory_limit: int | None = None
        self.cpu_limit: float | None = None
        self.timeout: float | None = None
        self.disk_limit: int | None = None
        self._state = "new"
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=connect_timeout, write=120.0),
            follow_redirects=False,
        )
        self._httpx = httpx
        self.fs = RemoteFileSystem(self)
        """File operations confined to /workspace."""
        self.shell = RemoteShell(self)
        """Programs run inside the sandbox."""
        self.code = RemoteCodeRunner(self)
        """Code execution, as in the original SDK's ``client.code``."""

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _url(self, route: str = "") -> str:
        if self._state == "new" or self.sandbox_id is None:
            raise SandboxStateError(
                "the sandbox is not set up: call `await client.setup()` first "
                "or use `async with SandboxClient(base_url=...) as client:`"
            )
        if self._state == "closed":
            raise SandboxStateError(
                "the sandbox was cleaned up; create a new SandboxClient to run more code"
            )
        return f"{self.base_url}/api/v1/sandbox/{self.sandbox_id}{route}"

    async def _request(self, method: str, url: str, **options: Any) -> Any:
        """The JSON answer of a request; ``RemoteError`` naming the server's reason if not 200."""
        request = self._http.build_request(method, url, headers=self._headers(), **options)
        answer = await self._send(request)
        if answer.status_code != 200:
            raise _refusal(answer.status_code, answer.text)
        try:
            return answer.json()
        except ValueError as exc:
            raise RemoteError(f"the server's answer is not JSON: {answer.text[:200]!r}") from exc

    async def _send(self, request: Any, *, stream: bool = False) -> Any:
        """httpx's ``send``; its errors become ``RemoteError`` (the one place they are
        translated)."""
        try:
            return await self._http.send(request, stream=stream)
        except self._httpx.HTTPError as exc:
            raise RemoteError(f"the server at {self.base_url} did not answer: {exc}") from exc

    async def _lines(self, answer: Any) -> AsyncIterator[str]:
        try:
            async for line in answer.aiter_lines():
                yield line
        except self._httpx.HTTPError as exc:
            raise RemoteError(f"the stream from {self.base_url} broke off: {exc}") from exc

    async def _bytes(self, answer: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.aiter_bytes(_CHUNK):
                yield chunk
        except self._httpx.HTTPError as exc:
            raise RemoteError(f"the download from {self.base_url} broke off: {exc}") from exc

    async def _call(self, method: str, route: str, **options: Any) -> SandboxResponse:
        return sandbox_response(await self._request(method, self._url(route), **options))

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``new``, ``ready`` or ``closed``."""
        return self._state

    async def setup(self) -> SandboxResponse:
        """Create the sandbox on the server (with this client's limits) and wait until ready."""
        if self._state != "new":
            raise SandboxStateError(f"setup() was already called (the sandbox is {self._state})")
        try:
            if self.token is None:
                answer = await self._request("POST", f"{self.base_url}/dev/token")
                self.token = str(answer["access_token"])
            created = await self._request(
                "POST", f"{self.base_url}/api/v1/sandbox/create", json=self._limits or None
            )
        except RemoteError as exc:
            await self._http.aclose()
            self._state = "closed"
            raise SandboxStartError(f"the server could not create a sandbox: {exc}") from exc
        self.sandbox_id = str(created["sandbox_id"])
        self.memory_limit = limits.parse_memory_limit(created["memory_limit"])
        self.cpu_limit = float(created["cpu_limit"])
        self.timeout = created.get("timeout")
        self.disk_limit = limits.parse_disk_limit(created["disk_limit"])
        self._state = "ready"
        return SandboxResponse(True, data={**created, "status": "ready"})

    async def wait_for_ready(self, timeout: float | None = None) -> SandboxResponse:
        """Set the sandbox up if needed, then ask the server for its state."""
        if self._state == "new":
            return await self.setup()
        status = await self._request("GET", self._url("/status"))
        return SandboxResponse(True, data=status)

    async def cleanup(self, *, wait: bool = False) -> SandboxResponse:
        """Remove the sandbox on the server, which answers once it is removed (so ``wait``,
        there for the local client's signature, changes nothing). Idempotent."""
        if self._state == "closed":
            return SandboxResponse(True, data={"sandbox_id": self.sandbox_id})
        url = self._url() if self._state == "ready" else None
        self._state = "closed"
        try:
            if url is not None:
                await self._request("DELETE", url)
        except RemoteError as exc:
            if exc.status != 404:  # gone already (idle reaping): nothing is left
                return SandboxResponse(False, error=str(exc))
        finally:
            await self._http.aclose()
        return SandboxResponse(True, data={"sandbox_id": self.sandbox_id})

    async def __aenter__(self) -> RemoteSandboxClient:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()

    # -- execution ---------------------------------------------------------------------------

    async def execute_code(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        """As the local ``execute_code``; cancelled, the request is dropped and the server
        interrupts the code."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        body = {"code": code, "timeout": _seconds(timeout)}
        return await self._call("POST", "/execute", json=body)

    async def execute_code_stream(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        """As the local stream: events as they happen, ending with one ``completed``."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        async for event in self._stream("/execute/stream", {"code": code}, timeout):
            yield event

    async def _stream(
        self, route: str, body: dict[str, Any], timeout: limits.Timeout
    ) -> AsyncIterator[StreamEvent]:
        request = self._http.build_request(
            "POST",
            self._url(route),
            headers=self._headers(),
            json={**body, "timeout": _seconds(timeout)},
        )
        answer = await self._send(request, stream=True)
        try:
            if answer.status_code != 200:
                text = (await answer.aread()).decode("utf-8", "replace")
                raise _refusal(answer.status_code, text)
            async for line in self._lines(answer):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    raise RemoteError(
                        f"the server sent an unreadable event: {line[:200]!r}"
                    ) from exc
                if not isinstance(event, dict):
                    raise RemoteError(f"the server sent an unreadable event: {line[:200]!r}")
                if event.get("type") == "keepalive":
                    continue
                yield StreamEvent(str(event.get("type")), str(event.get("data", "")))
                if event.get("type") == "completed":
                    return
            raise RemoteError("the server ended the stream before its `completed` event")
        finally:
            await answer.aclose()  # early: the server sees the disconnect and stops the code

    async def interrupt(self) -> None:
        """Send the running execution a KeyboardInterrupt."""
        await self._request("POST", self._url("/interrupt"))

    async def restart(self) -> SandboxResponse:
        """Restart the kernel: variables are lost, files in /workspace are kept."""
        return await self._call("POST", "/restart")

    async def execute_shell(
        self,
        command: str,
        args: list[str] | None = None,
        timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT,
    ) -> SandboxResponse:
        """Run a program in the sandbox: ``data`` has ``stdout``, ``stderr``, ``exit_code``."""
        return await self.shell.execute(command, args, timeout)

    async def install_packages(
        self, packages: list[str], timeout: float | None = None
    ) -> SandboxResponse:
        """Install packages for this sandbox's session (downloaded by the server's host)."""
        check_specifiers(packages)  # the local client's ValueError for a bad one
        return await self._call(
            "POST", "/packages", json={"packages": packages, "timeout": timeout}
        )

    # -- files (the shortcuts of the local client) -------------------------------------------

    async def upload_file(
        self, file_path: str | os.PathLike[str], destination: str = WORKSPACE
    ) -> FileOperationResponse:
        return await self.fs.upload_file(file_path, destination)

    async def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        max_size: int | None = None,
    ) -> FileOperationResponse:
        return await self.fs.download_file(remote_path, local_path, max_size)

    async def upload_bytes(
        self, content: bytes | IO[bytes], filename: str, destination: str = WORKSPACE
    ) -> FileOperationResponse:
        return await self.fs.upload_bytes(content, filename, destination)

    async def download_bytes(
        self, remote_path: str, max_size: int | None = None
    ) -> bytes | FileOperationResponse:
        return await self.fs.download_bytes(remote_path, max_size)


def _reason(status: int, text: str) -> str:
    """The server's message (``{"error": ...}``), or the status and the start of the body."""
    try:
        message = json.loads(text).get("error")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"HTTP {status}: {text[:500]}"


class RemoteShell:
    """``client.shell`` of a remote sandbox."""

    def __init__(self, client: RemoteSandboxClient) -> None:
        self._client = client

    async def execute(
        self,
        command: str,
        args: list[str] | None = None,
        timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT,
    ) -> SandboxResponse:
        body = {"command": command, "args": list(args or []), "timeout": _seconds(timeout)}
        return await self._client._call("POST", "/execute/shell", json=body)


class RemoteCodeRunner:
    """``client.code`` of a remote sandbox."""

    def __init__(self, client: RemoteSandboxClient) -> None:
        self._client = client

    async def execute(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        return await self._client.execute_code(code, timeout)

    def execute_stream(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        return self._client.execute_code_stream(code, timeout)

    async def execute_file(
        self, path: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        try:
            remote = sandbox_path(path)
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        body = {"file_path": remote, "timeout": _seconds(timeout)}
        return await self._client._call("POST", "/execute", json=body)

    def execute_file_stream(
        self, path: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        # A path outside /workspace is refused by the server, as locally.
        return self._client._stream("/execute/file/stream", {"file_path": path}, timeout)


class RemoteFileSystem:
    """``client.fs`` of a remote sandbox: transfers stream in 1 MiB chunks both ways."""

    def __init__(self, client: RemoteSandboxClient) -> None:
        self._client = client

    async def _upload(self, source: IO[bytes], folder: str, name: str) -> FileOperationResponse:
        client = self._client
        try:
            answer = await client._request(
                "POST",
                client._url("/files/upload"),
                files={"file": (quote(name), source)},
                data={"path": folder, "name": name},  # `name`: our extension, unambiguous
            )
        except (RemoteError, SandboxStateError) as exc:
            return FileOperationResponse(False, filename=name, error=str(exc))
        return FileOperationResponse(
            True,
            filename=answer.get("filename"),
            size=answer.get("size"),
            path=answer.get("path"),
            message=answer.get("message"),
        )

    async def upload_file(
        self, file_path: str | os.PathLike[str], destination: str = WORKSPACE
    ) -> FileOperationResponse:
        local = Path(file_path)
        try:
            folder = sandbox_path(destination)
            source = open(local, "rb")
        except (ValueError, OSError) as exc:
            return FileOperationResponse(False, filename=local.name, error=str(exc))
        with source:
            return await self._upload(source, folder, local.name)

    async def upload_bytes(
        self, content: bytes | bytearray | IO[bytes], filename: str, destination: str = WORKSPACE
    ) -> FileOperationResponse:
        if not isinstance(filename, str) or "/" in filename or filename in ("", ".", ".."):
            return FileOperationResponse(
                False, filename=str(filename), error=f"filename {filename!r} must be a plain name"
            )
        try:
            folder = sandbox_path(destination)
        except ValueError as exc:
            return FileOperationResponse(False, filename=filename, error=str(exc))
        if isinstance(content, bytes | bytearray):
            content = io.BytesIO(bytes(content))
        return await self._upload(content, folder, filename)

    async def write_file(
        self, path: str, content: str | bytes, encoding: str = "utf-8"
    ) -> SandboxResponse:
        data = content.encode(encoding) if isinstance(content, str) else bytes(content)
        try:
            folder, name = posixpath.split(sandbox_path(path))
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        response = await self._upload(io.BytesIO(data), folder, name)
        if not response.success:
            return SandboxResponse(False, error=response.error)
        return SandboxResponse(True, data={"path": response.path, "size": response.size})

    async def download_stream(
        self, remote_path: str, max_size: int | None = None
    ) -> AsyncIterator[bytes]:
        """A sandbox file's content in chunks as they arrive; past ``max_size`` (default: the
        sandbox's disk limit) the transfer stops with ``SandboxError``."""
        client = self._client
        limit = client.disk_limit if max_size is None else max_size
        remote = sandbox_path(remote_path)  # ValueError, as locally
        # quote() once here, httpx once more: the server decodes twice (the original client's way).
        request = client._http.build_request(
            "GET",
            client._url("/files"),
            headers=client._headers(),
            params={"path": quote(remote)},
        )
        answer = await client._send(request, stream=True)
        try:
            if answer.status_code != 200:
                text = (await answer.aread()).decode("utf-8", "replace")
                raise _refusal(answer.status_code, text)
            received = 0
            async for chunk in client._bytes(answer):
                received += len(chunk)
                if limit is not None and received > limit:
                    raise SandboxError(f"{remote_path} is larger than max_size={limit} bytes")
                yield chunk
        finally:
            await answer.aclose()

    async def download_bytes(
        self, remote_path: str, max_size: int | None = None
    ) -> bytes | FileOperationResponse:
        chunks: list[bytes] = []
        try:
            async for chunk in self.download_stream(remote_path, max_size):
                chunks.append(chunk)
        except (SandboxError, ValueError) as exc:
            return FileOperationResponse(False, path=remote_path, error=str(exc))
        return b"".join(chunks)

    async def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        max_size: int | None = None,
    ) -> FileOperationResponse:
        try:
            filename = posixpath.basename(sandbox_path(remote_path))
        except ValueError as exc:
            return FileOperationResponse(False, error=str(exc))
        target = Path(local_path) if local_path is not None else Path.cwd() / filename
        if target.is_dir():
            target = target / filename
        handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as sink:
                async for chunk in self.download_stream(remote_path, max_size):
                    sink.write(chunk)
            os.replace(partial, target)
        except (SandboxError, OSError) as exc:
            return FileOperationResponse(False, filename=filename, error=str(exc))
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        size = target.stat().st_size
        return FileOperationResponse(
            True,
            filename=filename,
            size=size,
            path=str(target),
            message=f"downloaded {remote_path} ({size} bytes) to {target}",
        )

    async def read_file(self, path: str, encoding: str = "utf-8") -> SandboxResponse:
        return text_response(await self.download_bytes(path), path, encoding)

    async def _json(self, method: str, route: str, path: str) -> SandboxResponse:
        try:
            remote = sandbox_path(path)
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        return await self._client._call(method, route, params={"path": remote})

    async def list(self, path: str = WORKSPACE) -> SandboxResponse:
        return await self._json("GET", "/files/list", path)

    async def remove(self, path: str) -> SandboxResponse:
        return await self._json("DELETE", "/files", path)

    async def stat(self, path: str) -> SandboxResponse:
        return await self._json("GET", "/files/stat", path)
