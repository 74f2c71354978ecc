"""Jupyter Server extension: what each running sandbox kernel uses, over authenticated REST.

::

    GET <base_url>ai-computer/sandboxes              {"sandboxes": [report, ...]}
    GET <base_url>ai-computer/sandboxes/<kernel_id>  report; 404 when it is no sandbox kernel
    ... <base_url>ai-computer/sandboxes/<kernel_id>/files[/...]   its files (sandbox_files.py)

A report (sizes in bytes, CPU in cores, times in seconds)::

    {"kernel_id", "kernel_name", "execution_state", "running",
     "memory": {"used", "limit"}, "cpu": {"used", "limit"},
     "disk": {"used", "limit"}: /workspace (used is null when it cannot be read),
     "started": ISO time the current kernel started, "uptime",
     "oom_killed": whether the kernel's last end (and so its last restart) was the memory limit,
     "last_exit": null or {"container_id", "exit_code", "oom_killed", "signal", "reason"},
     "error": null or why usage could not be read}

The JupyterLab status-bar meter reads these, the "Sandbox files" panel the files. Requests
need the server's token or login, like the kernels API, and the same permission (``kernels``,
``read``).

The extension is enabled on install (``jupyter-config/jupyter_server_config.d/ai_computer.json``
in the wheel's data). jupyter_server is an optional dependency (the ``lab`` extra): only this
module needs it. Docker statistics are read in worker threads: the server's loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..backends.base import Backend, ContainerUsage, describe_exit
from ..errors import SandboxError
from ..kernel.provisioner import DockerSandboxProvisioner
from . import sandbox_files

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

T = TypeVar("T")
_SETTINGS_KEY = "ai_computer_usage_reader"
# The kernels API's permission: whoever may see kernels may see what they use.
_AUTH_RESOURCE = "kernels"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds this extension (it reads this name)."""
    return [{"module": "ai_computer.jupyter.server_extension"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Register the REST handlers (called by jupyter_server at start)."""
    web_app = serverapp.web_app
    files = sandbox_files.SandboxFiles()
    web_app.settings[_SETTINGS_KEY] = UsageReader(files)
    web_app.settings[sandbox_files.SETTINGS_KEY] = files
    base = url_path_join(web_app.settings["base_url"], "ai-computer", "sandboxes")
    kernel = url_path_join(base, r"(?P<kernel_id>[A-Za-z0-9_-]+)")
    web_app.add_handlers(  # type: ignore[no-untyped-call]
        ".*$",
        [
            (base, SandboxesHandler),
            (kernel, SandboxHandler),
            (url_path_join(kernel, "files"), sandbox_files.FilesHandler),
            (url_path_join(kernel, "files", "content"), sandbox_files.ContentHandler),
            (url_path_join(kernel, "files", "folder"), sandbox_files.FolderHandler),
            (url_path_join(kernel, "files", "from-host"), sandbox_files.FromHostHandler),
            (url_path_join(kernel, "files", "to-host"), sandbox_files.ToHostHandler),
        ],
    )
    serverapp.log.info("ai-computer: sandbox usage at %s", base)


class UsageReader:
    """Reads containers' usage in its own worker threads (a reading waits about a second for
    the engine), and how full their /workspace is (the file tool, on the files' threads), one
    reading of each per container at a time, shared by concurrent requests."""

    def __init__(self, files: sandbox_files.SandboxFiles, max_workers: int = 4) -> None:
        # Its own threads: second-long waits must not starve the server's default executor.
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="ai-computer-usage")
        self._files = files
        self._pending: dict[tuple[str, str], asyncio.Future[Any]] = {}

    def _shared(self, key: tuple[str, str], start: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(start())

            def forget(done: asyncio.Future[Any]) -> None:
                if self._pending.get(key) is done:
                    del self._pending[key]

            pending.add_done_callback(forget)
        # Shielded: a client that goes away must not cancel a reading others wait for.
        return asyncio.shield(pending)

    async def read(self, backend: Backend, container_id: str) -> ContainerUsage | None:
        """The container's usage, or None when it is gone."""
        loop = asyncio.get_running_loop()

        def start() -> Awaitable[ContainerUsage | None]:
            return loop.run_in_executor(self._executor, backend.usage, container_id)

        return await self._shared(("usage", container_id), start)

    async def disk(self, provisioner: DockerSandboxProvisioner) -> dict[str, int | None]:
        """How full the sandbox's /workspace is: ``{"used", "limit"}``."""
        key = ("disk", provisioner.container_id or "")
        return await self._shared(key, lambda: self._files.disk(provisioner))


async def sandbox_report(kernel_id: str, kernel: Any, reader: UsageReader) -> dict[str, Any] | None:
    """The report of one kernel (see the module docstring); None when it is no sandbox."""
    provisioner = getattr(kernel, "provisioner", None)
    if not isinstance(provisioner, DockerSandboxProvisioner):
        return None
    # Records how a container that has just died ended, before the restarter gets to it.
    await provisioner.poll()
    memory_limit = int(provisioner.memory_limit)
    usage: ContainerUsage | None = None
    error: str | None = None
    disk: dict[str, int | None] = {"used": None, "limit": int(provisioner.disk_limit)}
    if provisioner.container_id is not None:
        read_usage = reader.read(provisioner.backend, provisioner.container_id)
        usage_read, disk_read = await asyncio.gather(
            read_usage, reader.disk(provisioner), return_exceptions=True
        )
        if isinstance(usage_read, SandboxError):  # e.g. the Docker engine went away
            error = str(usage_read)
        elif isinstance(usage_read, BaseException):
            raise usage_read
        else:
            usage = usage_read
        if isinstance(disk_read, dict):
            disk = disk_read
    live = usage if usage is not None and usage.running else None
    started = live.started_at if live is not None else None
    ended = provisioner.last_exit
    return {
        "kernel_id": kernel_id,
        "kernel_name": getattr(kernel, "kernel_name", None),
        "execution_state": getattr(kernel, "execution_state", None),
        "running": live is not None,
        "memory": {"used": live.memory_used if live else None, "limit": memory_limit},
        "cpu": {"used": live.cpu_used if live else None, "limit": provisioner.cpu_limit},
        "disk": disk if live else {**disk, "used": None},
        "started": started.isoformat() if started else None,
        "uptime": (datetime.now(UTC) - started).total_seconds() if started else None,
        "oom_killed": bool(ended and ended.oom_killed),
        "last_exit": None
        if ended is None
        else {
            "container_id": ended.container_id[:12],
            "exit_code": ended.exit_code,
            "oom_killed": ended.oom_killed,
            "signal": ended.signal_name,
            "reason": describe_exit(ended, memory_limit),
        },
        "error": error,
    }


class _SandboxAPIHandler(APIHandler):
    auth_resource = _AUTH_RESOURCE

    async def report(self, kernel_id: str) -> dict[str, Any] | None:
        """The kernel's report; None when it is no sandbox, or not (or no longer) running."""
        try:
            kernel = self.kernel_manager.get_kernel(kernel_id)
        except KeyError:  # unknown, or shut down since it was listed
            return None
        reader: UsageReader = self.settings[_SETTINGS_KEY]
        return await sandbox_report(kernel_id, kernel, reader)


class SandboxesHandler(_SandboxAPIHandler):
    """``GET ai-computer/sandboxes``: a report for every running sandbox kernel."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Answer ``{"sandboxes": [report, ...]}``."""
        ids = list(self.kernel_manager.list_kernel_ids())
        reports = await asyncio.gather(*(self.report(kernel_id) for kernel_id in ids))
        self.finish(json.dumps({"sandboxes": [r for r in reports if r is not None]}))


class SandboxHandler(_SandboxAPIHandler):
    """``GET ai-computer/sandboxes/<kernel_id>``: one sandbox kernel's report."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        """Answer the kernel's report, or 404."""
        report = await self.report(kernel_id)
        if report is None:
            raise web.HTTPError(404, f"no sandbox kernel {kernel_id}")
        self.finish(json.dumps(report))
