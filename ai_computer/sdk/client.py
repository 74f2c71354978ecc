"""SandboxClient: the async SDK facade over one sandbox (a kernel in a hardened container).

Lifecycle: ``new`` -> ``setup()`` -> ``ready`` -> ``cleanup()`` -> ``closed``; calls the state
does not allow raise ``SandboxStateError``. The client speaks the Jupyter protocol to the
kernel through the same provisioner JupyterLab and nbclient use, so limits are enforced in one
place. The live kernel is a ``Session`` (``session.py``) and running code is ``runner.py``'s;
the sandbox's engine is reached only through the session's backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import tempfile
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from .. import limits
from ..backends import removals
from ..backends.base import ExecHandle, ExecResult
from ..backends.image import WORKSPACE
from ..errors import SandboxError, SandboxStartError, SandboxStateError
from ..kernel.manager import collect_garbage_in_background, shut_down_sandbox
from ..models import FileOperationResponse, SandboxResponse, StreamEvent
from .execution import ExecutionRecord
from .files import FileSystem, sandbox_path
from .messages import max_message_size
from .packages import PackageError, check_specifiers, stage_packages, tar_chunks, unpack_argv
from .runner import UNREAD_AFTER, Execution, Runner
from .session import Session
from .shell import Shell

T = TypeVar("T")

# Worker threads for one sandbox's file, shell and package commands: a sandbox that stops its
# commands ties up its own workers (until their timeouts), never another sandbox's or the loop's.
_EXEC_WORKERS = 4


log = logging.getLogger(__name__)


class _DroppedClient:
    """What a ``SandboxClient`` leaves for its finalizer: enough to remove its sandbox if it is
    garbage-collected without ``cleanup()``, and nothing that refers back to the client."""

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self.session: Session | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def collect(self) -> None:
        """Called by the finalizer (any thread, no await): close the client's sockets on its
        loop, and remove its sandbox in a thread of its own, so nothing here blocks."""
        session, self.session = self.session, None
        if session is None:
            return
        log.warning(
            "a SandboxClient (sandbox %s) was garbage-collected without cleanup(); removing its "
            "sandbox. Call `await client.cleanup()` or use `async with SandboxClient() as client:`",
            self.sandbox_id,
        )
        # First, whatever happens next. Not a daemon: a program that ends soon after still
        # waits for the removal (a second or so); at interpreter exit the owner's watchdog
        # removes the sandbox anyway.
        remove = partial(session.backend.remove, self.sandbox_id, session.provisioner.runtime_root)
        threading.Thread(target=_quietly, args=(remove,), name="ai-computer-dropped").start()
        loop = self.loop
        try:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(session.abandon)
                return
        except RuntimeError:  # closed meanwhile
            pass
        with contextlib.suppress(Exception):  # its loop is gone: nothing runs on it any more
            session.abandon()


def _sent(execution: Execution, session: Session, msg_id: str) -> None:
    execution.sent(msg_id, session)


def _quietly(function: Callable[[], object]) -> None:
    try:
        function()
    except Exception as exc:  # housekeeping: `ai-computer gc` is the fallback
        log.warning("removing a dropped sandbox failed: %s", exc)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    CLOSED = "closed"


class SandboxClient:
    """An isolated Python sandbox: an ipykernel in a resource-limited Docker container.

    >>> async with SandboxClient(memory_limit="1G", cpu_limit=2, timeout=300) as client:
    ...     response = await client.execute_code("print('hi')")
    ...     response.data["output"]
    'hi\\n'

    Limits are checked here: out-of-range values raise ``ValueError``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """``SandboxClient(base_url=..., token=...)`` (the original client's constructor, also
        with ``base_url`` first and positional) makes a ``RemoteSandboxClient`` instead: the
        same calls, on a sandbox of an ``ai-computer serve`` server."""
        base_url = kwargs.pop("base_url", None)
        if args and isinstance(args[0], str) and args[0].startswith(("http://", "https://")):
            base_url, args = args[0], args[1:]
            if args:  # the original's second positional argument is the token
                kwargs.setdefault("token", args[0])
                args = args[1:]
        if base_url is None:
            return super().__new__(cls)
        from .remote import RemoteSandboxClient

        allowed = {"token", "memory_limit", "cpu_limit", "timeout", "disk_limit"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown or args:
            raise TypeError(
                f"a remote SandboxClient takes base_url, token, memory_limit, cpu_limit, "
                f"timeout and disk_limit by name; not {', '.join(unknown) or 'positional limits'}"
            )
        return RemoteSandboxClient(base_url, **kwargs)

    def __init__(
        self,
        memory_limit: str | int = "512M",
        cpu_limit: float = limits.DEFAULT_CPU_LIMIT,
        timeout: float | None = limits.DEFAULT_TIMEOUT,
        *,
        image: str | None = None,
        output_limit: str | int = limits.DEFAULT_OUTPUT_LIMIT,
        pids_limit: int = limits.DEFAULT_PIDS_LIMIT,
        environment: dict[str, str] | None = None,
        startup_timeout: float = limits.DEFAULT_STARTUP_TIMEOUT,
        interrupt_grace: float = 3.0,
        disk_limit: str | int = limits.DEFAULT_DISK_LIMIT,
        runtime: str = "runc",
        base_url: None = None,
        token: None = None,
    ) -> None:
        if token is not None:
            raise TypeError("token is for a remote sandbox: give base_url too (the server's URL)")
        self.memory_limit = limits.parse_memory_limit(memory_limit)
        self.disk_limit = limits.parse_disk_limit(disk_limit)
        self.runtime = limits.parse_runtime(runtime)
        if self.runtime == "gvisor" and pids_limit > limits.GVISOR_MAX_PIDS:
            raise ValueError(
                f"pids_limit {pids_limit} is too high under gVisor "
                f"(at most {limits.GVISOR_MAX_PIDS}: its own threads count too)"
            )
        self.cpu_limit = limits.parse_cpu_limit(cpu_limit)
        self.timeout = limits.parse_timeout(timeout)
        self.output_limit = limits.parse_size(output_limit, name="output_limit")
        self.startup_timeout = (
            limits.parse_timeout(startup_timeout, name="startup_timeout")
            or limits.DEFAULT_STARTUP_TIMEOUT
        )
        self.interrupt_grace = limits.parse_timeout(interrupt_grace, name="interrupt_grace") or 3.0
        self._provisioner_config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "cpu_limit": self.cpu_limit,
            "pids_limit": pids_limit,
            "environment": dict(environment or {}),
            "disk_limit": self.disk_limit,
            "runtime": self.runtime,
            # The relay refuses what this client would refuse anyway (room for the headers).
            "message_limit": max_message_size(self.output_limit) + limits.MIB,
            "remove_in_background": True,  # cleanup() returns once the kernel is dead
        }
        if image is not None:
            self._provisioner_config["image"] = image
        self.sandbox_id = str(uuid.uuid4())
        self._state = _State.NEW
        self._session: Session | None = None
        self._runner: Runner | None = None
        self._lock = asyncio.Lock()
        self._executions: set[Execution] = set()  # those whose task has not ended
        self._dropped = _DroppedClient(self.sandbox_id)
        self._finalizer = weakref.finalize(self, self._dropped.collect)
        self._executor: ThreadPoolExecutor | None = None
        self._running_execs: set[ExecHandle] = set()
        self.fs = FileSystem(self._exec, max_size=self.disk_limit)
        """File operations confined to /workspace."""
        self.shell = Shell(self._exec, self.timeout, self.output_limit)
        """Programs run inside the sandbox."""
        self.code = CodeRunner(self)
        """Code execution, as in the original SDK's ``client.code``."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``ready`` or ``closed``."""
        return self._state.value

    async def setup(self) -> SandboxResponse:
        """Start the sandbox and wait until its kernel answers.

        Raises ``SandboxError`` (``DockerUnavailableError``, ``ImageNotFoundError``,
        ``SandboxStartError``) when it cannot start; nothing is left behind then.
        """
        if self._state is not _State.NEW:
            raise SandboxStateError(f"setup() was already called (the sandbox is {self.state})")
        self._state = _State.STARTING
        try:
            self._session = await Session.start(
                self.sandbox_id,
                self._provisioner_config,
                output_limit=self.output_limit,
                memory_limit=self.memory_limit,
                startup_timeout=self.startup_timeout,
                reply_timeout=self.interrupt_grace,
            )
        except BaseException as exc:
            collect_garbage_in_background()  # (see below)
            self._state = _State.CLOSED  # Session.start removed what it made
            self._shut_workers()
            if isinstance(exc, SandboxError | asyncio.CancelledError | KeyboardInterrupt):
                raise
            raise SandboxStartError(f"the sandbox failed to start: {exc}") from exc
        if self._state is _State.CLOSED:  # cleanup() was called while it started
            session, self._session = self._session, None
            await session.close()
            raise SandboxStateError("the sandbox was cleaned up while it was starting")
        # Sandboxes left by crashed processes (once per process), after this start: the engine
        # calls would slow it down.
        collect_garbage_in_background()
        self._runner = Runner(self._session, self.interrupt_grace)
        self._dropped.session, self._dropped.loop = self._session, asyncio.get_running_loop()
        self._state = _State.READY
        return SandboxResponse(success=True, data=self._describe())

    async def wait_for_ready(self, timeout: float | None = None) -> SandboxResponse:
        """Set the sandbox up if needed, then check that its kernel answers."""
        if self._state is _State.NEW:
            return await self.setup()
        session = self._live()
        async with self._turn():
            await session.handshake(timeout or self.startup_timeout)
        return SandboxResponse(success=True, data=self._describe())

    async def cleanup(self, *, wait: bool = False) -> SandboxResponse:
        """Stop the sandbox and remove its container, workspace and runtime files. Idempotent.

        It returns once the kernel is dead; the engine's removal of what is left finishes in a
        worker thread (before this process exits, or its watchdog removes it). ``wait=True``
        returns only when everything is removed.
        """
        if self._state is _State.CLOSED:
            if wait:
                await self._removed()
            return SandboxResponse(success=True, data={"sandbox_id": self.sandbox_id})
        self._state = _State.CLOSED
        self._finalizer.detach()
        self._shut_workers()
        running = [execution.task for execution in self._executions if execution.task]
        for task in running:  # they end with "the sandbox was cleaned up during the call"
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            # With wait, removed in the call itself (queued behind other sandboxes' removals
            # in the workers it would only take longer).
            session.provisioner.remove_in_background = not wait
            await session.close()
        else:  # cleaned up while starting: whatever the start made is removed by label
            await shut_down_sandbox(None, self.sandbox_id)
        if wait:
            await self._removed()
        return SandboxResponse(success=True, data={"sandbox_id": self.sandbox_id})

    async def _removed(self) -> None:
        await asyncio.to_thread(removals.wait, [self.sandbox_id])

    async def __aenter__(self) -> SandboxClient:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()

    async def _is_usable(self) -> bool:
        """Ready, not broken, its kernel and relay running (for pools: checked before reuse)."""
        if self._state is not _State.READY or self._session is None:
            return False
        return await self._session.usable()

    def _describe(self) -> dict[str, Any]:
        return {
            "sandbox_id": self.sandbox_id,
            "status": self.state,
            "memory_limit": limits.format_size(self.memory_limit),
            "cpu_limit": self.cpu_limit,
            "timeout": self.timeout,
            "runtime": self.runtime,
        }

    def _live(self, *, broken_too: bool = False) -> Session:
        """The started session, or the state error that says why there is none to use (a
        broken one only with ``broken_too``: restart() is the way back from it)."""
        if self._state is _State.NEW:
            raise SandboxStateError(
                "the sandbox is not set up: call `await client.setup()` first "
                "or use `async with SandboxClient() as client:`"
            )
        if self._state is _State.CLOSED:
            raise SandboxStateError(
                "the sandbox was cleaned up; create a new SandboxClient to run more code"
            )
        if self._state is _State.STARTING or self._session is None:
            raise SandboxStateError("the sandbox is still starting: await setup() first")
        if self._session.broken is not None and not broken_too:
            raise SandboxStateError(
                f"the sandbox is broken ({self._session.broken}); call restart() or cleanup()"
            )
        return self._session

    def _shut_workers(self) -> None:
        for handle in list(self._running_execs):
            handle.abort()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- execution ---------------------------------------------------------------------------

    async def execute_code(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        """Run ``code`` in the sandbox; collect its output.

        ``data`` holds ``output`` (stdout), ``stderr``, ``result`` (text/plain of the last
        expression), ``display`` (MIME bundles), ``error`` (``ename``, ``evalue``,
        ``traceback``) and ``execution_count``. ``timeout`` (seconds) overrides the client's
        default; ``None`` means no limit for this call.

        Cancelled (``asyncio.wait_for``, a task's ``cancel()``), it raises at once and the
        code gets a ``KeyboardInterrupt``; a kernel that is not idle within
        ``interrupt_grace`` is restarted. The next call runs once that is done.
        """
        execution = self._start_execution(code, timeout, stream=False)
        try:
            await execution.ended()
        except asyncio.CancelledError:
            execution.stop(self._session)
            raise
        if execution.error is not None:
            raise execution.error
        return execution.record.response()

    async def execute_code_stream(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        """Run ``code`` and yield its output as it happens, ending with one ``completed`` event.

        A stream that is closed (``aclose()``, or dropped and collected) or cancelled stops its
        code as a cancelled ``execute_code`` does. One that is left unread (a ``break`` with the
        stream kept) is stopped the same way when the task that read it makes another call on
        this client, or when another call has waited ``UNREAD_AFTER`` seconds behind it without
        it being read: the sandbox is never held by a stream nobody reads.
        """
        execution = self._start_execution(code, timeout, stream=True)
        try:
            while (event := await execution.next()) is not None:
                yield event
            if execution.error is not None:
                raise execution.error
            yield execution.record.completed_event()
        finally:
            execution.stop(self._session)

    def _start_execution(self, code: str, timeout: limits.Timeout, *, stream: bool) -> Execution:
        """Check the call, stop an unread stream, and start the execution's task."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        limit = limits.call_timeout(timeout, self.timeout)
        session = self._live()
        self._stop_abandoned_streams(session)
        execution = Execution(ExecutionRecord(self.output_limit), stream=stream)
        self._executions.add(execution)
        execution.task = asyncio.create_task(self._drive(execution, code, limit))
        return execution

    def _stop_abandoned_streams(self, session: Session | None) -> None:
        """Stop the streams nobody reads any more: they must not hold the sandbox."""
        for earlier in list(self._executions):
            if earlier.abandoned():
                earlier.stop(session)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The sandbox's lock. A stream nobody reads is stopped first, and again whenever the
        wait goes on for ``UNREAD_AFTER`` seconds (its reader may have gone quiet since)."""
        self._stop_abandoned_streams(self._session)
        while True:
            try:
                await asyncio.wait_for(self._lock.acquire(), UNREAD_AFTER)
                break
            except TimeoutError:
                self._stop_abandoned_streams(self._session)
        try:
            yield
        finally:
            self._lock.release()

    async def _drive(self, execution: Execution, code: str, limit: float | None) -> None:
        """The execution's task: run it under the sandbox's lock, queueing its events."""
        error: BaseException | None = None
        try:
            async with self._turn():
                if execution.stopped:  # its caller left while it waited for its turn
                    return
                session = self._live()
                await session.connection_settled()
                self._live()  # the cut, if any, may have left it broken
                assert self._runner is not None

                sent = partial(_sent, execution, session)
                async for event in self._runner.run(code, limit, execution.record, sent):
                    execution.put(event)
        except asyncio.CancelledError:  # cleanup() ends the executions still running
            error = SandboxStateError("the sandbox was cleaned up during the call")
        except Exception as exc:
            error = exc
        finally:
            self._executions.discard(execution)
            execution.end(error)

    # -- control -----------------------------------------------------------------------------

    async def interrupt(self) -> None:
        """Send the running execution a KeyboardInterrupt (SIGINT)."""
        await self._live().interrupt()

    async def restart(self) -> SandboxResponse:
        """Restart the kernel: variables are lost, files in /workspace are kept.

        Also the way back from a broken sandbox. ``data["message"]`` says what was kept.
        """
        session = self._live(broken_too=True)
        async with self._turn():
            message = await session.restart()
        if session.broken is not None:
            return SandboxResponse(success=False, error=message)
        return SandboxResponse(success=True, data={**self._describe(), "message": message})

    # -- files, shell, packages --------------------------------------------------------------

    async def _exec(self, argv: list[str], **options: Any) -> ExecResult:
        """Run a program inside the sandbox (``Backend.run``), on this sandbox's own worker
        threads. Cancelled, it closes the program's stream at once: the worker is free again
        (the program itself is left to its own limits)."""
        session = self._live()
        provisioner = session.provisioner
        instance = provisioner.container_id
        if instance is None:
            raise SandboxError("the sandbox has no running container (is it restarting?)")
        user = provisioner.sandbox_user
        handle = ExecHandle()
        self._running_execs.add(handle)
        try:
            return await self._in_worker(
                session.backend.run, instance, argv, user=user, handle=handle, **options
            )
        except asyncio.CancelledError:
            handle.abort()
            raise
        finally:
            self._running_execs.discard(handle)

    async def _in_worker(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work on this sandbox's own worker threads (never the loop's default
        executor, which every sandbox of the process shares)."""
        if self._executor is None:
            prefix = f"ai-computer-exec-{self.sandbox_id[:8]}"
            self._executor = ThreadPoolExecutor(_EXEC_WORKERS, thread_name_prefix=prefix)
        run = partial(function, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._state is _State.CLOSED and task is not None and not task.cancelling():
                # Not this caller's cancellation: cleanup() cancelled work still queued.
                raise SandboxStateError("the sandbox was cleaned up during the call") from None
            raise

    async def execute_shell(
        self,
        command: str,
        args: list[str] | None = None,
        timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT,
    ) -> SandboxResponse:
        """Run a program in the sandbox: ``data`` has ``stdout``, ``stderr``, ``exit_code``.
        ``timeout`` overrides the client's; ``None`` means no limit for this call."""
        return await self.shell.execute(command, args, timeout)

    async def upload_file(
        self, file_path: str | os.PathLike[str], destination: str = WORKSPACE
    ) -> FileOperationResponse:
        """Copy a local file into the sandbox folder ``destination``."""
        return await self.fs.upload_file(file_path, destination)

    async def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        max_size: int | None = None,
    ) -> FileOperationResponse:
        """Copy a sandbox file to ``local_path`` (at most ``max_size``, by default the disk
        limit)."""
        return await self.fs.download_file(remote_path, local_path, max_size)

    async def upload_bytes(
        self, content: bytes | IO[bytes], filename: str, destination: str = WORKSPACE
    ) -> FileOperationResponse:
        """Write bytes (or a binary file object) to ``destination/filename`` in the sandbox."""
        return await self.fs.upload_bytes(content, filename, destination)

    async def download_bytes(
        self, remote_path: str, max_size: int | None = None
    ) -> bytes | FileOperationResponse:
        """A sandbox file's bytes (at most ``max_size``, by default the disk limit); a
        ``FileOperationResponse`` on failure."""
        return await self.fs.download_bytes(remote_path, max_size)

    async def install_packages(
        self, packages: list[str], timeout: float | None = None
    ) -> SandboxResponse:
        """Install packages (``["tabulate", "requests==2.32.3"]``) for this sandbox's session.

        The sandbox keeps no network: wheels are downloaded on the host for the image's Python
        and unpacked inside. They import at once and survive kernel restarts. pip's reason comes
        back in ``error`` when a package cannot be had.
        """
        specifiers = check_specifiers(packages)
        backend = self._live().backend
        with tempfile.TemporaryDirectory(prefix="ai-computer-packages-") as folder:
            staging = Path(folder) / "site"
            try:
                architecture = await self._in_worker(backend.architecture)
                wheels = await self._in_worker(
                    stage_packages, specifiers, architecture, staging, self.disk_limit
                )
            except (PackageError, SandboxError) as exc:
                return SandboxResponse(False, data={"packages": specifiers}, error=str(exc))
            data: dict[str, Any] = {"packages": specifiers, "installed": wheels}
            if not wheels:
                return SandboxResponse(True, data={**data, "message": "already in the image"})
            result = await self._exec(
                unpack_argv(), stdin=tar_chunks(staging), timeout=timeout, idle_timeout=60.0
            )
        if result.exit_code != 0:
            return SandboxResponse(False, data=data, error=result.failure())
        return SandboxResponse(True, data=data)


class CodeRunner:
    """``client.code``: ``execute``, ``execute_stream`` and ``execute_file``."""

    def __init__(self, client: SandboxClient) -> None:
        self._client = client

    async def execute(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        """Same as ``SandboxClient.execute_code``."""
        return await self._client.execute_code(code, timeout)

    def execute_stream(
        self, code: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        """Same as ``SandboxClient.execute_code_stream``."""
        return self._client.execute_code_stream(code, timeout)

    async def execute_file(
        self, path: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> SandboxResponse:
        """Run a ``.py`` file that is in the sandbox, as ``__main__``, in the kernel."""
        code = await self._file_code(path)
        if isinstance(code, SandboxResponse):
            return code
        return await self._client.execute_code(code, timeout)

    async def execute_file_stream(
        self, path: str, timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT
    ) -> AsyncIterator[StreamEvent]:
        """``execute_file`` as a stream; a file that cannot run yields ``error``, then
        ``completed``."""
        code = await self._file_code(path)
        if isinstance(code, SandboxResponse):
            message = code.error or "the file cannot be run"
            yield StreamEvent("error", message)
            summary = {"success": False, "error": message, "execution_count": None}
            yield StreamEvent("completed", json.dumps(summary))
            return
        async for event in self._client.execute_code_stream(code, timeout):
            yield event

    async def _file_code(self, path: str) -> str | SandboxResponse:
        """The code that runs ``path`` as ``__main__``, or the response saying why it can't."""
        try:
            remote = sandbox_path(path)
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        if not remote.endswith(".py"):
            return SandboxResponse(False, error=f"{remote} is not a Python file (.py)")
        if not (await self._client.fs.stat(remote)).success:
            return SandboxResponse(False, error=f"{remote}: no such file in the sandbox")
        # The trailing ';' keeps IPython from echoing the module's globals as a result.
        return f"__import__('runpy').run_path({remote!r}, run_name='__main__');"
