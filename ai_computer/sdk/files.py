"""File operations confined to a sandbox's /workspace (``client.fs``).

Each operation runs ``inside/file_tool.py`` inside the container as the sandbox user, so a path or
symlink planted by sandbox code can only ever lead to the container's own files, and the tool
refuses those too (see its docstring). Transfers stream in 1 MiB chunks: neither side holds a
whole file in memory, and an interrupted upload leaves nothing half-written.

What the tool reports is checked, never believed: a download is bounded by ``max_size`` (the
sandbox's disk limit unless the caller says otherwise) whatever size a file claims, and every
operation ends after ``idle_timeout`` seconds without progress (code in the sandbox can stop the
tool, which runs as its uid).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import posixpath
import tempfile
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from ..backends.base import ExecResult, StopTransfer
from ..backends.image import WORKSPACE
from ..errors import SandboxError, SandboxFileError
from ..inside import framed, source
from ..models import FileOperationResponse, SandboxResponse

CHUNK_SIZE = 1 << 20
DEFAULT_IDLE_TIMEOUT = 30.0
"""Seconds a file operation may go without progress before it is given up."""
_REPORT_LIMIT = 16 * 1024 * 1024  # the tool's JSON answer; a listing stops well below this


class ExecRunner(Protocol):
    """What the file system needs from its client: run a program in the sandbox."""

    def __call__(
        self,
        argv: list[str],
        *,
        stdin: Any = None,
        on_stdout: Callable[[bytes], object] | None = None,
        stdout_limit: int = ...,
        stderr_limit: int = ...,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        workdir: str = ...,
    ) -> Awaitable[ExecResult]: ...


def sandbox_path(path: str, directory: str | None = None) -> str:
    """``path`` (relative to /workspace, or absolute) as an absolute path in the sandbox.

    Only the shape is checked here, for a clear early error; the tool inside is the authority.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"path {path!r} must be a non-empty string")
    try:
        path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        message = f"path {path!r} is not a file name (a lone surrogate outside \\udc80-\\udcff)"
        raise ValueError(message) from None
    joined = posixpath.join(directory or WORKSPACE, path)
    absolute = posixpath.normpath(posixpath.join(WORKSPACE, joined))
    if absolute != WORKSPACE and not absolute.startswith(WORKSPACE + "/"):
        raise ValueError(f"path {path!r} is outside the sandbox's {WORKSPACE}")
    return absolute


def _checked_size(max_size: object) -> int:
    if type(max_size) is not int or max_size < 0:
        raise ValueError(f"max_size {max_size!r} must be a number of bytes (an int >= 0)")
    return max_size


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


def _encoded(path: str) -> str:
    """A sandbox path as the tool takes it: its bytes in hex (names need not be UTF-8)."""
    return path.encode("utf-8", "surrogateescape").hex()


def _failure(result: ExecResult, what: str) -> str:
    if result.timed_out:
        return f"{what} made no progress for too long and was given up"
    return result.failure()


def _kind(result: ExecResult) -> str:
    """How the tool says it failed (its report's ``kind``)."""
    if result.timed_out:
        return "timeout"
    try:
        report = json.loads(result.stderr)
    except ValueError:
        return "os_error"
    kind = report.get("kind") if isinstance(report, dict) else None
    return kind if isinstance(kind, str) and kind.isidentifier() else "os_error"


def _raise_failure(result: ExecResult, what: str, path: str) -> None:
    raise SandboxFileError(_failure(result, what), kind=_kind(result), path=path)


def _report(result: ExecResult) -> dict[str, Any] | None:
    """The tool's JSON answer, or None when it is not one (cut short, or not the tool's)."""
    try:
        report = json.loads(result.stdout)
    except (ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) and not result.stdout_dropped else None


def text_response(
    content: bytes | FileOperationResponse, path: str, encoding: str
) -> SandboxResponse:
    """``read_file``'s response from what ``download_bytes`` gave (local and remote)."""
    if isinstance(content, FileOperationResponse):
        return SandboxResponse(False, error=content.error)
    try:
        text = content.decode(encoding)
    except UnicodeDecodeError as exc:
        return SandboxResponse(
            False, error=f"{path!r} is not {encoding} text ({exc}); use download_bytes()"
        )
    return SandboxResponse(
        True, data={"content": text, "path": sandbox_path(path), "size": len(content)}
    )


class FileSystem:
    """``client.fs``: read, write, list, remove, upload and download files in /workspace.

    ``max_size`` is the default limit of a download (bytes); ``idle_timeout`` the seconds an
    operation may go without progress.
    """

    def __init__(
        self, run: ExecRunner, max_size: int, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        self._run = run
        self.max_size = max_size
        self.idle_timeout = idle_timeout

    async def _tool(
        self, operation: str, path: str, max_size: int | None = None, **options: Any
    ) -> ExecResult:
        argv = ["python3", "-I", "-S", "-c", source("file_tool.py"), operation, _encoded(path)]
        if max_size is not None:
            argv.append(str(max_size))
        return await self._run(argv, workdir="/", idle_timeout=self.idle_timeout, **options)

    async def call(self, operation: str, path: str) -> dict[str, Any]:
        """Run one of the tool's operations that answer JSON (``list``, ``stat``, ``remove``,
        ``mkdir``, ``disk``) on ``path`` and return its answer. Raises ``ValueError`` for a
        path outside /workspace, :class:`~ai_computer.errors.SandboxFileError` (with the
        tool's ``kind``) when the operation fails, ``SandboxError`` when the sandbox cannot be
        reached. For callers that need to tell failures apart (the Jupyter extension); the
        methods below answer responses."""
        remote = sandbox_path(path)
        result = await self._tool(operation, remote, stdout_limit=_REPORT_LIMIT)
        if result.exit_code != 0:
            _raise_failure(result, f"{operation} {remote}", remote)
        report = _report(result)
        if report is None:
            message = f"{operation} {remote}: unreadable answer"
            raise SandboxFileError(message, kind="unreadable", path=remote)
        return report

    async def _json(self, operation: str, path: str) -> SandboxResponse:
        """Run a tool operation that answers JSON: its answer is the response's data."""
        try:
            return SandboxResponse(True, await self.call(operation, path))
        except (ValueError, SandboxError) as exc:
            return SandboxResponse(False, error=str(exc))

    # -- uploads -----------------------------------------------------------------------------

    async def write_stream(self, remote: str, source: IO[bytes]) -> int:
        """Stream ``source`` (read in 1 MiB chunks, from a worker thread) into the sandbox file
        ``remote`` (absolute; parent folders are made), written beside it and renamed into
        place only once complete; return the bytes written. ``source.read`` may raise to give
        up: nothing is written then. Raises as :meth:`call` does."""
        remote = sandbox_path(remote)
        sent = 0

        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for chunk in _chunks(source):
                sent += len(chunk)
                yield chunk

        # The tool renames the file into place only once it has read the end mark of the
        # framing (see inside/file_tool.py, framed_chunks).
        result = await self._tool("write", remote, stdin=framed(chunks()))
        if result.exit_code != 0:
            _raise_failure(result, f"writing {remote}", remote)
        report = _report(result)
        if report is None or report.get("path") != remote or report.get("size") != sent:
            # Only a tampered tool says anything else: what it says cannot be believed.
            message = f"writing {remote}: the sandbox's answer does not match the {sent} bytes sent"
            raise SandboxFileError(message, kind="unreadable", path=remote)
        return sent

    async def _write(self, remote: str, source: IO[bytes]) -> FileOperationResponse:
        filename = posixpath.basename(remote)
        try:
            sent = await self.write_stream(remote, source)
        except (ValueError, SandboxError) as exc:
            return FileOperationResponse(False, filename=filename, path=remote, error=str(exc))
        return FileOperationResponse(
            True, filename=filename, size=sent, path=remote,
            message=f"wrote {sent} bytes to {remote}",
        )  # fmt: skip

    async def upload_file(
        self, file_path: str | os.PathLike[str], destination: str = WORKSPACE
    ) -> FileOperationResponse:
        """Copy a local file into the sandbox directory ``destination`` (streamed)."""
        local = Path(file_path)
        try:
            remote = sandbox_path(local.name, sandbox_path(destination))
            source = open(local, "rb")
        except (ValueError, OSError) as exc:
            return FileOperationResponse(False, filename=local.name, error=str(exc))
        with source:
            return await self._write(remote, source)

    async def upload_bytes(
        self, content: bytes | bytearray | IO[bytes], filename: str, destination: str = WORKSPACE
    ) -> FileOperationResponse:
        """Write ``content`` (bytes or a binary file object) to ``destination/filename``."""
        try:
            if "/" in filename or filename in ("", ".", ".."):
                raise ValueError(f"filename {filename!r} must be a plain file name")
            remote = sandbox_path(filename, sandbox_path(destination))
        except ValueError as exc:
            return FileOperationResponse(False, filename=filename, error=str(exc))
        if isinstance(content, bytes | bytearray):
            content = io.BytesIO(bytes(content))
        return await self._write(remote, content)

    async def write_file(
        self, path: str, content: str | bytes, encoding: str = "utf-8"
    ) -> SandboxResponse:
        """Write text or bytes to ``path``, creating parent folders."""
        data = content.encode(encoding) if isinstance(content, str) else bytes(content)
        try:
            remote = sandbox_path(path)
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        response = await self._write(remote, io.BytesIO(data))
        if not response.success:
            return SandboxResponse(False, error=response.error)
        return SandboxResponse(True, data={"path": response.path, "size": response.size})

    # -- downloads ---------------------------------------------------------------------------

    async def _read(
        self, remote_path: str, max_size: int | None, sink: Callable[[bytes], object]
    ) -> str:
        """Stream a sandbox file into ``sink``, stopping past ``max_size`` (default: the
        sandbox's disk limit); return its sandbox path. Raises as :meth:`call` does."""
        limit = self.max_size if max_size is None else _checked_size(max_size)
        remote = sandbox_path(remote_path)
        received = 0

        def bounded(data: bytes) -> None:
            nonlocal received
            received += len(data)
            if received > limit:
                raise StopTransfer
            sink(data)

        result = await self._tool("read", remote, limit, on_stdout=bounded)
        if received > limit:
            message = f"{remote} is larger than max_size={limit} bytes"
            raise SandboxFileError(message, kind="too_large", path=remote)
        if result.exit_code != 0:
            _raise_failure(result, f"reading {remote}", remote)
        return remote

    async def read_into(
        self, remote_path: str, sink: Callable[[bytes], object], max_size: int | None = None
    ) -> str:
        """Stream a sandbox file into ``sink`` (called on a worker thread, in chunks of up to
        1 MiB), at most ``max_size`` bytes (default: the disk limit); return its sandbox path.
        Raises as :meth:`call` does (``too_large`` past ``max_size``)."""
        return await self._read(remote_path, max_size, sink)

    async def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        max_size: int | None = None,
    ) -> FileOperationResponse:
        """Copy a sandbox file to ``local_path`` (default: its name in the current directory).

        The local file appears only when complete (written beside it, then renamed). A file
        over ``max_size`` bytes (default: the sandbox's disk limit) is refused.
        """
        try:
            filename = posixpath.basename(sandbox_path(remote_path))
        except ValueError as exc:
            return FileOperationResponse(False, error=str(exc))
        target = Path(local_path) if local_path is not None else Path.cwd() / filename
        if target.is_dir():
            target = target / filename
        try:
            handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            return FileOperationResponse(False, filename=filename, path=str(target), error=str(exc))
        remote = remote_path
        try:
            with os.fdopen(handle, "wb") as sink:
                remote = await self._read(remote_path, max_size, sink.write)
            os.replace(partial, target)
        except SandboxFileError as exc:
            return FileOperationResponse(False, filename=filename, path=exc.path, error=str(exc))
        except (ValueError, SandboxError, OSError) as exc:
            return FileOperationResponse(False, filename=filename, path=remote, error=str(exc))
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        size = target.stat().st_size
        return FileOperationResponse(
            True, filename=filename, size=size, path=str(target),
            message=f"downloaded {remote} ({size} bytes) to {target}",
        )  # fmt: skip

    async def download_bytes(
        self, remote_path: str, max_size: int | None = None
    ) -> bytes | FileOperationResponse:
        """A sandbox file's content as bytes; on failure a ``FileOperationResponse``.

        A file over ``max_size`` bytes (default: the sandbox's disk limit) is refused; the
        transfer stops there. At most twice its size is held while the bytes are assembled.
        """
        chunks: list[bytes] = []
        try:
            await self._read(remote_path, max_size, chunks.append)
        except SandboxFileError as exc:
            filename = posixpath.basename(exc.path or remote_path)
            return FileOperationResponse(False, filename=filename, path=exc.path, error=str(exc))
        except (ValueError, SandboxError) as exc:
            return FileOperationResponse(False, path=remote_path, error=str(exc))
        content = b"".join(chunks)
        chunks.clear()
        return content

    async def download_stream(
        self, remote_path: str, max_size: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """A sandbox file's content in chunks of up to 1 MiB, as they arrive (at most 4 held).

        Raises ``ValueError`` or ``SandboxError`` when the file cannot be read (before the
        first chunk, or partway: a file over ``max_size``, default the disk limit), a
        :class:`~ai_computer.errors.SandboxFileError` with the tool's ``kind`` when the tool
        refused. Closed early, the transfer stops; a reader that takes no chunk for
        ``idle_timeout`` seconds ends it too (``SandboxFileError`` ``timeout``, raised once it
        reads again), so that no worker thread waits on it for ever.
        """
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(4)
        closed = threading.Event()
        stalled = threading.Event()
        idle_limit = self.idle_timeout

        def sink(data: bytes) -> None:  # on the sandbox's worker thread
            # The reader must take a chunk within the idle timeout, as the sandbox must send
            # one: a reader that stays but stops reading would hold this thread for ever.
            future = asyncio.run_coroutine_threadsafe(chunks.put(data), loop)
            waited = 0.0
            while True:
                try:
                    future.result(0.5)
                    return
                except concurrent.futures.TimeoutError:
                    waited += 0.5
                    if closed.is_set() or waited >= idle_limit:
                        future.cancel()
                        if not closed.is_set():
                            stalled.set()
                        raise StopTransfer from None

        async def transfer() -> str:
            try:
                return await self._read(remote_path, max_size, sink)
            except SandboxError as exc:
                if not stalled.is_set():
                    raise
                remote = sandbox_path(remote_path)
                message = f"{remote}: the download's reader took nothing for {idle_limit:g} s"
                raise SandboxFileError(message, kind="timeout", path=remote) from exc
            finally:
                if not closed.is_set():  # its reader is there to make room for the end mark
                    await chunks.put(None)

        task = asyncio.create_task(transfer())
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            await task  # raises the transfer's failure
        finally:
            closed.set()  # before the cancel: the transfer then waits for no reader
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:  # the transfer's failure was raised above, or is moot now
                pass

    async def read_file(self, path: str, encoding: str = "utf-8") -> SandboxResponse:
        """A sandbox text file's content: ``data["content"]``."""
        return text_response(await self.download_bytes(path), path, encoding)

    # -- the tree ----------------------------------------------------------------------------

    async def list(self, path: str = WORKSPACE) -> SandboxResponse:
        """The entries of a sandbox directory: ``data["entries"]`` (name, path, type, size)."""
        return await self._json("list", path)

    async def remove(self, path: str) -> SandboxResponse:
        """Remove a file, a symlink (never its target) or a directory tree."""
        return await self._json("remove", path)

    async def stat(self, path: str) -> SandboxResponse:
        """A regular file's ``data`` (``path``, ``size``); fails for anything else."""
        return await self._json("stat", path)

    async def mkdir(self, path: str) -> SandboxResponse:
        """Make the folder ``path`` and its parents; fails if something is there already."""
        return await self._json("mkdir", path)

    async def disk_usage(self) -> SandboxResponse:
        """How full /workspace is: ``data`` has ``used`` and ``size`` (bytes)."""
        return await self._json("disk", WORKSPACE)
