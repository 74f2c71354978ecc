"""File operations confined to a sandbox's /workspace (``client.fs``).

Each operation runs ``sandbox_tool.py`` inside the container as the sandbox user, so a path or
symlink planted by sandbox code can only ever lead to the container's own files, and the tool
refuses those too (see its docstring). Transfers stream in 1 MiB chunks: neither side holds a
whole file in memory, and an interrupted upload leaves nothing half-written.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any, Protocol

from .container_exec import ExecResult
from .errors import SandboxError
from .models import FileOperationResponse, SandboxResponse

WORKSPACE = "/workspace"
CHUNK_SIZE = 1 << 20


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
    ) -> Awaitable[ExecResult]: ...


@cache
def tool_source() -> str:
    """The source of the in-sandbox file tool, passed to ``python3 -c``."""
    return resources.files("ai_computer").joinpath("sandbox_tool.py").read_text()


def sandbox_path(path: str, directory: str | None = None) -> str:
    """``path`` (relative to /workspace, or absolute) as an absolute path in the sandbox.

    Only the shape is checked here, for a clear early error; the tool inside is the authority.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"path {path!r} must be a non-empty string")
    joined = posixpath.join(directory or WORKSPACE, path)
    absolute = posixpath.normpath(posixpath.join(WORKSPACE, joined))
    if absolute != WORKSPACE and not absolute.startswith(WORKSPACE + "/"):
        raise ValueError(f"path {path!r} is outside the sandbox's {WORKSPACE}")
    return absolute


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


class FileSystem:
    """``client.fs``: read, write, list, remove, upload and download files in /workspace."""

    def __init__(self, run: ExecRunner) -> None:
        self._run = run

    async def _tool(self, operation: str, path: str, **options: Any) -> ExecResult:
        return await self._run(["python3", "-c", tool_source(), operation, path], **options)

    async def _json(self, operation: str, path: str) -> SandboxResponse:
        """Run a tool operation that answers JSON: its answer is the response's data."""
        try:
            remote = sandbox_path(path)
            result = await self._tool(operation, remote)
        except (ValueError, SandboxError) as exc:
            return SandboxResponse(False, error=str(exc))
        if result.exit_code != 0:
            return SandboxResponse(False, error=result.failure())
        return SandboxResponse(True, json.loads(result.stdout))

    # -- uploads -----------------------------------------------------------------------------

    async def _write(self, remote: str, source: IO[bytes]) -> FileOperationResponse:
        filename = posixpath.basename(remote)
        try:
            result = await self._tool("write", remote, stdin=_chunks(source))
        except SandboxError as exc:
            return FileOperationResponse(False, filename=filename, path=remote, error=str(exc))
        if result.exit_code != 0:
            error = result.failure()
            return FileOperationResponse(False, filename=filename, path=remote, error=error)
        written = json.loads(result.stdout)
        return FileOperationResponse(
            True, filename=filename, size=written["size"], path=written["path"],
            message=f"wrote {written['size']} bytes to {written['path']}",
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

    async def download_file(
        self, remote_path: str, local_path: str | os.PathLike[str] | None = None
    ) -> FileOperationResponse:
        """Copy a sandbox file to ``local_path`` (default: its name in the current directory).

        The local file appears only when complete (written beside it, then renamed).
        """
        try:
            remote = sandbox_path(remote_path)
        except ValueError as exc:
            return FileOperationResponse(False, error=str(exc))
        filename = posixpath.basename(remote)
        target = Path(local_path) if local_path is not None else Path.cwd() / filename
        if target.is_dir():
            target = target / filename
        try:
            handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            return FileOperationResponse(False, filename=filename, path=str(target), error=str(exc))
        try:
            with os.fdopen(handle, "wb") as sink:
                result = await self._tool("read", remote, on_stdout=sink.write)
            if result.exit_code != 0:
                error = result.failure()
                return FileOperationResponse(False, filename=filename, path=remote, error=error)
            os.replace(partial, target)
        except (SandboxError, OSError) as exc:
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
        self, remote_path: str, max_size: int = 1 << 30
    ) -> bytes | FileOperationResponse:
        """A sandbox file's content as bytes; on failure a ``FileOperationResponse``."""
        try:
            remote = sandbox_path(remote_path)
            result = await self._tool("read", remote, stdout_limit=max_size)
        except (ValueError, SandboxError) as exc:
            return FileOperationResponse(False, path=remote_path, error=str(exc))
        filename = posixpath.basename(remote)
        if result.exit_code != 0:
            error = result.failure()
            return FileOperationResponse(False, filename=filename, path=remote, error=error)
        if result.stdout_dropped:
            error = f"{remote} is larger than max_size={max_size} bytes; use download_file()"
            return FileOperationResponse(False, filename=filename, path=remote, error=error)
        return result.stdout

    async def read_file(self, path: str, encoding: str = "utf-8") -> SandboxResponse:
        """A sandbox text file's content: ``data["content"]``."""
        content = await self.download_bytes(path)
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
