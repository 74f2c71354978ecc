"""Jupyter Server extension: the files of a sandbox kernel's /workspace over authenticated REST,
for JupyterLab's "Sandbox files" panel. Paths are sandbox paths (relative to /workspace, or
absolute inside it); ``host_path`` and ``host_dir`` are paths of the server's file browser
(relative to its ``root_dir``)::

    (F = <base_url>ai-computer/sandboxes/<kernel_id>/files)
    GET    F?path=P              P's entries (name, type, size, modified) and the disk
    DELETE F?path=P              remove a file or a folder
    GET    F/content?path=P      download (streamed)
    PUT    F/content?path=P      upload the raw body (streamed)
    POST   F/folder?path=P       make a folder
    POST   F/from-host           {"host_path", "directory"}: a host file into the sandbox
    POST   F/to-host             {"path", "host_dir", "on_conflict": "fail|replace|rename"}

Every operation inside the sandbox is the SDK's (``sdk/files.py``): the file tool runs in the
kernel's container as the sandbox's user and opens each path component without following
links, so no path or link planted by sandbox code reaches a host file; the same size limits
and errors apply (``SandboxFileError.kind`` becomes the status: 404 not found, 400 refused,
403 read-only, 409 exists, 413 too large, 507 disk full). Host paths are resolved (links
too) and must stay inside ``root_dir``; hidden ones (as typed, or as resolved: a visible link
to ``.env``) are refused unless the contents manager allows them, as Jupyter's own file
browser does. Transfers run on worker threads of their own, apart from the short operations,
and a download whose client stops reading is given up after the idle timeout.

Requests need the server's token or login cookie, with the XSRF token for cookie-authenticated
changes, like Jupyter's own APIs, and the permissions ``kernels`` (read for GET, write
otherwise) plus ``contents`` for the two copies. An upload is at most the sandbox's disk
limit (413 before any body is read when ``Content-Length`` says more); its body streams into
the sandbox as it arrives (a few 64 KiB chunks held), and an upload cut short leaves nothing.
Downloads stream with ``Content-Length`` and are served as attachments, never rendered (a
page made in the sandbox must not run with the server's origin).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import os
import posixpath
import stat
import tempfile
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from ..backends.base import ExecHandle, ExecResult
from ..backends.image import WORKSPACE
from ..errors import SandboxError, SandboxFileError
from ..kernel.provisioner import DockerSandboxProvisioner
from ..sdk.files import FileSystem, sandbox_path

SETTINGS_KEY = "ai_computer_sandbox_files"
_WORKERS = 8  # short file operations (listings, deletes, the meter's disk) of all sandboxes
_TRANSFER_WORKERS = 8  # transfers at once: each holds one for its length, apart from the above
_QUEUED_CHUNKS = 8  # of an upload's body, held between the request and the sandbox
_IDLE_TIMEOUT = 30.0  # seconds an upload's body may stall before it is given up
_STATUS = {
    "not_found": 404,
    "read_only": 403,
    "permission": 403,
    "exists": 409,
    "too_large": 413,
    "no_space": 507,
    "timeout": 504,
    "unreadable": 502,
    "os_error": 500,
}  # every other kind (outside, symlink, not_regular, sparse, ...) is a refused request: 400
ON_CONFLICT = ("fail", "replace", "rename")


class SandboxFiles:
    """The file systems of the server's sandbox kernels, on worker threads of their own: one
    pool for short operations, another for transfers, so that slow or stalled transfers
    (each bounded by the idle timeout) never delay a listing, a delete or the disk meter."""

    def __init__(self, max_workers: int = _WORKERS, max_transfers: int = _TRANSFER_WORKERS) -> None:
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="ai-computer-files")
        self._transfers = ThreadPoolExecutor(
            max_transfers, thread_name_prefix="ai-computer-transfers"
        )

    def of(self, provisioner: DockerSandboxProvisioner, *, transfer: bool = False) -> FileSystem:
        """The sandbox's ``FileSystem`` (the SDK's), bounded by its disk limit; ``transfer``:
        on the transfers' threads (an upload or a download, which lasts as long as its file)."""
        executor = self._transfers if transfer else self._executor

        async def run(argv: list[str], **options: Any) -> ExecResult:
            # Read at each call: a restart makes a new kernel instance.
            instance = provisioner.container_id
            if instance is None:
                raise SandboxError("the sandbox's kernel is not running (is it restarting?)")
            handle = ExecHandle()
            work = partial(
                provisioner.backend.run,
                instance,
                argv,
                user=provisioner.sandbox_user,
                handle=handle,
                **options,
            )
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, work)
            except asyncio.CancelledError:  # the request went away: free the worker at once
                handle.abort()
                raise

        return FileSystem(run, max_size=int(provisioner.disk_limit))

    async def disk(self, provisioner: DockerSandboxProvisioner) -> dict[str, int | None]:
        """``{"used", "limit"}`` of /workspace in bytes (``used`` None if it cannot be read)."""
        response = await self.of(provisioner).disk_usage()
        used = response.data.get("used") if response.success and response.data else None
        return {
            "used": used if isinstance(used, int) else None,
            "limit": int(provisioner.disk_limit),
        }


def status_of(error: Exception) -> int:
    """The HTTP status of a failed file operation."""
    if isinstance(error, SandboxFileError):
        return _STATUS.get(error.kind, 400)
    if isinstance(error, ValueError):
        return 400
    return 503  # the sandbox cannot be reached now (restarting, engine gone)


def host_path(root_dir: str, api_path: str, *, allow_hidden: bool) -> str:
    """A file browser path as a host path (links resolved); ``web.HTTPError`` unless it stays
    inside ``root_dir`` and, unless ``allow_hidden``, no part of it is hidden, neither as
    typed nor as resolved below ``root_dir``."""
    if not isinstance(api_path, str) or "\0" in api_path:
        raise web.HTTPError(400, "host path must be a string")
    parts = [part for part in api_path.strip("/").split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise web.HTTPError(400, f"host path {api_path!r} must not contain '.' or '..'")
    if not allow_hidden and any(part.startswith(".") for part in parts):
        raise web.HTTPError(403, f"host path {api_path!r} is hidden")
    root = os.path.realpath(root_dir)
    real = os.path.realpath(os.path.join(root, *parts))
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise web.HTTPError(403, f"host path {api_path!r} leads out of the server's root folder")
    # Checked again as resolved: a visible link may lead to a hidden file (data.txt -> .env).
    below = os.path.relpath(real, root).split(os.sep) if real != root else []
    if not allow_hidden and any(part.startswith(".") for part in below):
        raise web.HTTPError(403, f"host path {api_path!r} leads to a hidden file or folder")
    return real


def _free_name(directory: str, name: str) -> str:
    """``name``, or the first of ``stem-Copy1.ext``, ``stem-Copy2.ext``... that does not exist
    (JupyterLab's own naming of copies)."""
    stem, dot, extension = name.partition(".") if not name.startswith(".") else (name, "", "")
    for number in range(1000):
        candidate = name if number == 0 else f"{stem}-Copy{number}{dot}{extension}"
        if not os.path.lexists(os.path.join(directory, candidate)):
            return candidate
    raise web.HTTPError(409, f"no free name for {name!r} in the host folder")


def _host_failure(error: OSError, where: str) -> web.HTTPError:
    """A failed write into the server's file browser as a status: 409 when something is in
    the way (a folder of that name), 403 when the host refuses, 507 when its disk is full,
    400 otherwise (a name too long for the host)."""
    if isinstance(error, (IsADirectoryError, FileExistsError)) or error.errno == errno.ENOTEMPTY:
        status = 409
    elif isinstance(error, PermissionError):
        status = 403
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        status = 507
    else:
        status = 400
    return web.HTTPError(status, f"host path {where!r}: {error.strerror or error}")


class _FilesHandler(APIHandler):
    """What every endpoint does first: find the sandbox of the kernel."""

    auth_resource = "kernels"

    @property
    def sandbox_files(self) -> SandboxFiles:
        files: SandboxFiles = self.settings[SETTINGS_KEY]
        return files

    def provisioner(self, kernel_id: str) -> DockerSandboxProvisioner:
        """The kernel's sandbox provisioner; 404 when the kernel is unknown or no sandbox."""
        try:
            kernel = self.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            raise web.HTTPError(404, f"no sandbox kernel {kernel_id}") from None
        provisioner = getattr(kernel, "provisioner", None)
        if not isinstance(provisioner, DockerSandboxProvisioner):
            raise web.HTTPError(404, f"kernel {kernel_id} is not a sandbox kernel") from None
        return provisioner

    def sandbox_argument(self, name: str = "path", default: str | None = None) -> str:
        """A sandbox path from the query, checked (400 when it leaves /workspace)."""
        value = self.get_query_argument(name, default)
        if value is None:
            raise web.HTTPError(400, f"the query argument {name!r} is missing")
        return self.checked(value)

    def checked(self, path: str) -> str:
        try:
            return sandbox_path(path)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None

    def failed(self, error: Exception) -> web.HTTPError:
        return web.HTTPError(status_of(error), str(error))

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return body

    async def may(self, action: str, resource: str) -> None:
        """403 unless the current user may ``action`` the ``resource``."""
        user = self.current_user
        allowed = user is not None and self.authorizer.is_authorized(self, user, action, resource)
        if asyncio.iscoroutine(allowed):
            allowed = await allowed
        if not allowed:
            raise web.HTTPError(403, f"not authorized to {action} {resource}")


class FilesHandler(_FilesHandler):
    """``GET`` a folder's entries (and the disk), ``DELETE`` a file or a folder."""

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        """Answer ``{"path", "entries": [{name, path, type, size, modified}], "truncated",
        "disk": {"used", "limit"}}``."""
        await self.may("read", "kernels")
        provisioner = self.provisioner(kernel_id)
        path = self.sandbox_argument(default=WORKSPACE)
        disk = asyncio.ensure_future(self.sandbox_files.disk(provisioner))  # meanwhile
        try:
            listing = await self.sandbox_files.of(provisioner).call("list", path)
        except (ValueError, SandboxError) as exc:
            disk.cancel()
            raise self.failed(exc) from None
        self.finish(json.dumps({**listing, "disk": await disk}))

    @web.authenticated
    async def delete(self, kernel_id: str) -> None:
        """Remove the file, link or folder (with what it holds); answer ``{"path", "removed"}``."""
        await self.may("write", "kernels")
        provisioner = self.provisioner(kernel_id)
        path = self.sandbox_argument()
        if path == WORKSPACE:
            raise web.HTTPError(400, f"{WORKSPACE} itself cannot be removed")
        try:
            report = await self.sandbox_files.of(provisioner).call("remove", path)
        except (ValueError, SandboxError) as exc:
            raise self.failed(exc) from None
        self.finish(json.dumps(report))


class FolderHandler(_FilesHandler):
    """``POST``: make a folder."""

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        """Make the folder (409 if something is there); answer 201 ``{"path", "created"}``."""
        await self.may("write", "kernels")
        provisioner = self.provisioner(kernel_id)
        path = self.sandbox_argument()
        try:
            report = await self.sandbox_files.of(provisioner).call("mkdir", path)
        except (ValueError, SandboxError) as exc:
            raise self.failed(exc) from None
        self.set_status(201)
        self.finish(json.dumps(report))


class _BodyReader:
    """An upload's body as a binary file for ``FileSystem.write_stream``, which reads it on
    a worker thread while Tornado's ``data_received`` feeds it on the loop; a few chunks are
    held at most (each ``feed`` waits for room). ``read`` raises when the request was cut
    short or stalled, so that the file tool never sees the end mark: nothing is written."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED_CHUNKS)
        self._closed = False

    async def feed(self, chunk: bytes | None) -> None:
        """The next chunk of the body, or None at its end."""
        if not self._closed:
            await self._queue.put(chunk)

    def close(self) -> None:
        """The transfer is over (done or failed): drop what is queued, take nothing more."""
        self._closed = True
        while not self._queue.empty():
            self._queue.get_nowait()

    def read(self, size: int = -1) -> bytes:
        """The next chunk (on the worker thread); b"" at the end of the body."""
        future = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
        waited = 0.0
        while True:
            try:
                chunk = future.result(0.5)
                break
            except concurrent.futures.TimeoutError:
                waited += 0.5
                if self._closed or waited >= _IDLE_TIMEOUT:
                    future.cancel()
                    raise ConnectionError("the upload stopped before its end") from None
        if chunk is None:
            return b""
        return chunk


def _upload_done(reader: _BodyReader, upload: asyncio.Task[int]) -> None:
    """An upload's transfer ended: its body is no longer taken, and its failure is retrieved
    here too (a request that ended before ``put`` never awaits it)."""
    reader.close()
    if not upload.cancelled():
        upload.exception()


@web.stream_request_body
class ContentHandler(_FilesHandler):
    """``GET`` a file's bytes (download), ``PUT`` the request body into a file (upload). Both
    stream; an upload's checks (token, XSRF, permission, kernel, size) are made before its
    body is read."""

    _reader: _BodyReader | None = None
    _upload: asyncio.Task[int] | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        """Before the body: jupyter_server's checks (token or cookie, XSRF), then for a PUT
        the permission, the kernel, the size, and the transfer into the sandbox begins."""
        await super().prepare()
        if self.request.method != "PUT" or self._finished:
            return
        if self.current_user is None:
            raise web.HTTPError(403)
        await self.may("write", "kernels")
        kernel_id = self.path_kwargs["kernel_id"]
        provisioner = self.provisioner(kernel_id)
        path = self.sandbox_argument()
        limit = int(provisioner.disk_limit)
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise web.HTTPError(
                413, f"the upload ({declared} bytes) is larger than the sandbox's disk ({limit})"
            )
        if isinstance(self.request.connection, HTTP1Connection):  # streamed bodies: always
            self.request.connection.set_max_body_size(limit)
        reader = self._reader = _BodyReader(asyncio.get_running_loop())
        files = self.sandbox_files.of(provisioner, transfer=True)
        self._upload = asyncio.ensure_future(files.write_stream(path, reader))  # type: ignore[arg-type]
        self._upload.add_done_callback(partial(_upload_done, reader))

    async def data_received(self, chunk: bytes) -> None:
        """A chunk of an upload's body (Tornado waits for this before reading more)."""
        if self._reader is not None:
            await self._reader.feed(chunk)

    def on_connection_close(self) -> None:
        """The client went away: an upload under way is given up (nothing is written)."""
        if self._reader is not None:
            self._reader.close()
        super().on_connection_close()

    def on_finish(self) -> None:
        if self._upload is not None and not self._upload.done():
            self._upload.cancel()
        super().on_finish()

    @web.authenticated
    async def put(self, kernel_id: str) -> None:
        """The body has come: answer 201 ``{"path", "size"}`` once the file is in place."""
        assert self._reader is not None and self._upload is not None
        await self._reader.feed(None)
        try:
            size = await self._upload
        except (ValueError, SandboxError) as exc:
            raise self.failed(exc) from None
        except Exception as exc:  # the body stopped (ConnectionError), or another failure
            raise web.HTTPError(400, f"the upload failed: {exc}") from None
        self.set_status(201)
        self.finish(json.dumps({"path": self.sandbox_argument(), "size": size}))

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        """Send the file as an attachment, streamed, with its ``Content-Length``."""
        await self.may("read", "kernels")
        provisioner = self.provisioner(kernel_id)
        path = self.sandbox_argument()
        files = self.sandbox_files.of(provisioner)
        try:
            size = (await files.call("stat", path))["size"]
            if not isinstance(size, int) or size < 0:
                raise SandboxFileError(f"{path}: unreadable size", kind="unreadable", path=path)
            # No more than the size announced: a file that grew since fails the transfer.
            transfer = self.sandbox_files.of(provisioner, transfer=True)
            chunks = transfer.download_stream(path, max_size=size)
        except (ValueError, SandboxError) as exc:
            raise self.failed(exc) from None
        try:
            first = await anext(chunks, b"")
        except (ValueError, SandboxError) as exc:
            await chunks.aclose()
            raise self.failed(exc) from None
        # Names that are not UTF-8 (surrogate escapes) go as their raw bytes, percent-encoded.
        name = quote(posixpath.basename(path), safe="", errors="surrogateescape")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{name}")
        self.set_header("Content-Length", str(size))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")
        self.set_header("Cache-Control", "no-store")
        try:
            await self._send(first, chunks)
        finally:
            await chunks.aclose()

    async def _send(self, first: bytes, chunks: AsyncGenerator[bytes, None]) -> None:
        try:
            # Chunks come as bytearrays (received in place); Tornado takes bytes.
            if first:
                self.write(bytes(first))
                await self.flush()
            async for chunk in chunks:
                self.write(bytes(chunk))
                await self.flush()  # waits until the client has taken it: memory stays bounded
        except StreamClosedError:  # the client went away: the transfer stops with it
            return
        except (ValueError, SandboxError) as exc:
            # Too late for an error status: end the connection, so that the client sees a
            # download shorter than its Content-Length, never a complete-looking one.
            self.log.warning("ai-computer: download failed midway: %s", exc)
            if isinstance(self.request.connection, HTTP1Connection):
                self.request.connection.close()
            return
        # APIHandler.finish labels the response JSON unless told: an empty file's headers
        # are only sent here.
        self.finish(set_content_type="application/octet-stream")


class _HostFilesHandler(_FilesHandler):
    """The copies between the sandbox and the server's file browser (its ``root_dir``)."""

    def _host_path(self, api_path: Any) -> str:
        root = getattr(self.contents_manager, "root_dir", None)
        if not isinstance(root, str):
            raise web.HTTPError(400, "the server's file browser is not a folder on this host")
        return host_path(root, api_path, allow_hidden=self._allow_hidden)

    @property
    def _allow_hidden(self) -> bool:
        return bool(getattr(self.contents_manager, "allow_hidden", False))


class FromHostHandler(_HostFilesHandler):
    """``POST``: copy a file of the server's file browser into the sandbox."""

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        """Body ``{"host_path", "directory"}`` (the sandbox folder, default /workspace; an
        existing file of that name is replaced); answer 201 ``{"path", "size"}``."""
        await self.may("write", "kernels")
        await self.may("read", "contents")
        provisioner = self.provisioner(kernel_id)
        body = self.json_body()
        source = self._host_path(body.get("host_path"))
        directory = self.checked(str(body.get("directory") or WORKSPACE))
        name = posixpath.basename(str(body.get("host_path")).rstrip("/"))  # a link's own name
        target = self.checked(posixpath.join(directory, name))
        limit = int(provisioner.disk_limit)
        try:
            descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise web.HTTPError(404, f"no host file {body.get('host_path')!r}") from None
        except OSError as exc:
            raise web.HTTPError(
                400, f"host file {body.get('host_path')!r}: {exc.strerror}"
            ) from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise web.HTTPError(400, f"host path {body.get('host_path')!r} is not a file")
        if info.st_size > limit:
            os.close(descriptor)
            raise web.HTTPError(
                413, f"{name} ({info.st_size} bytes) is larger than the sandbox's disk ({limit})"
            )
        with os.fdopen(descriptor, "rb") as handle:
            os.set_blocking(handle.fileno(), True)
            try:
                files = self.sandbox_files.of(provisioner, transfer=True)
                size = await files.write_stream(target, handle)
            except (ValueError, SandboxError) as exc:
                raise self.failed(exc) from None
        self.set_status(201)
        self.finish(json.dumps({"path": target, "size": size}))


class ToHostHandler(_HostFilesHandler):
    """``POST``: copy a sandbox file into a folder of the server's file browser."""

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        """Body ``{"path", "host_dir", "on_conflict"}``. A file of that name in the host
        folder is kept (409) unless ``on_conflict`` is ``replace`` (written over) or
        ``rename`` (the copy gets a free name, ``name-Copy1.ext``); answer 201
        ``{"host_path", "size"}``. The file appears only when complete."""
        await self.may("read", "kernels")
        await self.may("write", "contents")
        provisioner = self.provisioner(kernel_id)
        body = self.json_body()
        path = self.checked(str(body.get("path") or ""))
        on_conflict = body.get("on_conflict", "fail")
        if on_conflict not in ON_CONFLICT:
            raise web.HTTPError(400, f"on_conflict {on_conflict!r} is not one of {ON_CONFLICT}")
        host_dir_api = str(body.get("host_dir") or "")
        folder = self._host_path(host_dir_api)
        if not os.path.isdir(folder):
            raise web.HTTPError(404, f"no host folder {host_dir_api!r}")
        name = posixpath.basename(path)
        if not name or (name.startswith(".") and not self._allow_hidden):
            raise web.HTTPError(400, f"{name!r} is not a name the file browser shows")
        try:
            os.fsencode(name)
        except UnicodeEncodeError:
            raise web.HTTPError(400, f"{name!r} is not a file name on this host") from None
        # A short prefix: the temporary name must fit in a name's 255 bytes whatever the
        # name's own length (a name too long for the host fails below, as a 400).
        prefix = "." + os.fsdecode(os.fsencode(name)[:64]) + "."
        try:
            handle, partial_path = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=folder)
        except OSError as exc:
            raise _host_failure(exc, host_dir_api) from None
        try:
            with os.fdopen(handle, "wb") as sink:
                try:
                    files = self.sandbox_files.of(provisioner, transfer=True)
                    await files.read_into(path, sink.write)
                except (ValueError, SandboxError) as exc:
                    raise self.failed(exc) from None
                size = sink.tell()
            final = self._place(partial_path, folder, name, on_conflict)
        except OSError as exc:  # the host folder's own failure (a full disk, a folder there)
            raise _host_failure(exc, posixpath.join(host_dir_api, name)) from None
        finally:
            if os.path.exists(partial_path):
                os.unlink(partial_path)
        relative = (
            posixpath.join(host_dir_api.strip("/"), final) if host_dir_api.strip("/") else final
        )
        self.set_status(201)
        self.finish(json.dumps({"host_path": relative, "size": size}))

    def _place(self, partial_path: str, folder: str, name: str, on_conflict: str) -> str:
        """Rename the complete copy into place as ``on_conflict`` says; return its name."""
        if on_conflict == "replace":
            os.replace(partial_path, os.path.join(folder, name))
            return name
        final = name if on_conflict == "fail" else _free_name(folder, name)
        claimed = os.path.join(folder, final)
        try:
            # Claimed first, so that nothing that appears meanwhile is written over.
            os.close(os.open(claimed, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise web.HTTPError(409, f"{final} exists in the host folder") from None
        try:
            os.replace(partial_path, claimed)
        except OSError:
            os.unlink(claimed)  # the empty placeholder must not stay behind
            raise
        return final
