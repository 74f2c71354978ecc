"""SandboxClient: the async SDK facade over one sandbox (a kernel in a hardened container).

Lifecycle: ``new`` -> ``setup()`` -> ``ready`` -> ``cleanup()`` -> ``closed``; calls the state
does not allow raise ``SandboxStateError``. The client speaks the Jupyter protocol to the
kernel through the same provisioner JupyterLab and nbclient use, so limits are enforced in one
place.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from jupyter_client.asynchronous.client import AsyncKernelClient

from . import limits
from .channels import (
    KernelProtocolError,
    MessageQueue,
    configure_context,
    disconnected,
    max_message_size,
    parent_id,
    rate_limited,
    receive,
)
from .container_exec import ExecHandle, ExecResult, run_in_container
from .engine import docker_client
from .errors import SandboxError, SandboxStartError, SandboxStateError
from .execution import ExecutionRecord
from .files import FileSystem, sandbox_path
from .image import engine_architecture
from .inside.relay import REFUSED as RELAY_REFUSED
from .kernel_startup import CHANGED_FILES_ARGUMENTS, CHANGED_FILES_EXPRESSION
from .kernelspec import SandboxKernelManager, sandbox_kernel_spec, shut_down_sandbox
from .models import FileOperationResponse, SandboxResponse, StreamEvent
from .packages import PackageError, check_specifiers, stage_packages, tar_chunks, unpack_argv
from .provisioner import ContainerExit, DockerSandboxProvisioner, describe_exit
from .sandboxes import collect_garbage_in_background, container_logs
from .shell import Shell

log = logging.getLogger(__name__)
T = TypeVar("T")

_QUEUE_SIZE = 10_000  # IOPub messages buffered for a slow reader; the kernel drops past its own HWM
_QUEUE_HEADROOM = 16 * limits.MIB  # bytes queued for a slow reader beyond the output cap
_EXIT_REPORT_DELAY = 3.0  # a container's exit is known well within this after its sockets close
_READY_PROBE_INTERVAL = 0.05
# Worker threads for one sandbox's file, shell and package commands: a sandbox that stops its
# commands ties up its own workers (until their timeouts), never another sandbox's or the loop's.
_EXEC_WORKERS = 4
_FILES_EXPRESSIONS = {"files": CHANGED_FILES_EXPRESSION}  # data["files"], from the shell reply


class _Broken:
    """Queued when the sandbox broke the protocol: ends the execution being followed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they have ended, whatever they raise."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


async def _race(
    *awaitables: Awaitable[Any], timeout: float | None = None
) -> list[asyncio.Future[Any] | None]:
    """Wait until the first of ``awaitables`` ends (or ``timeout`` passes); cancel the others.
    Returns, in order, the futures of those that ended and None for the others."""
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        done, _ = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
    return [future if future in done else None for future in futures]


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    CLOSED = "closed"


def describe_relay_exit(ended: ContainerExit, relay_memory_limit: int) -> str:
    """Why a sandbox's relay ended, as the reason the sandbox is broken."""
    if ended.reason:
        return f"it sent {ended.reason}"
    if ended.oom_killed:
        return (
            "it sent a message too big to hold (its relay was killed: memory limit "
            f"{limits.format_size(relay_memory_limit)} exceeded)"
        )
    return f"its relay stopped (exit code {ended.exit_code})"


class SandboxClient:
    """An isolated Python sandbox: an ipykernel in a resource-limited Docker container.

    >>> async with SandboxClient(memory_limit="1G", cpu_limit=2, timeout=300) as client:
    ...     response = await client.execute_code("print('hi')")
    ...     response.data["output"]
    'hi\\n'

    Limits are checked here: out-of-range values raise ``ValueError``.
    """

    def __init__(
        self,
        memory_limit: str | int = "512M",
        cpu_limit: float = limits.DEFAULT_CPU_LIMIT,
        timeout: float | None = limits.DEFAULT_TIMEOUT,
        *,
        image: str | None = None,
        output_limit: str | int = limits.DEFAULT_OUTPUT_LIMIT,
        pids_limit: int = 256,
        environment: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
        interrupt_grace: float = 3.0,
        disk_limit: str | int = limits.DEFAULT_DISK_LIMIT,
    ) -> None:
        self.memory_limit = limits.parse_memory_limit(memory_limit)
        self.disk_limit = limits.parse_disk_limit(disk_limit)
        self.cpu_limit = limits.parse_cpu_limit(cpu_limit)
        self.timeout = limits.parse_timeout(timeout)
        self.output_limit = limits.parse_size(output_limit, name="output_limit")
        self.startup_timeout = limits.parse_timeout(startup_timeout, name="startup_timeout") or 60.0
        self.interrupt_grace = limits.parse_timeout(interrupt_grace, name="interrupt_grace") or 3.0
        self._provisioner_config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "cpu_limit": self.cpu_limit,
            "pids_limit": pids_limit,
            "environment": dict(environment or {}),
            "disk_limit": self.disk_limit,
            # The relay refuses what this client would refuse anyway (room for the headers).
            "message_limit": max_message_size(self.output_limit) + limits.MIB,
        }
        if image is not None:
            self._provisioner_config["image"] = image
        self.sandbox_id = str(uuid.uuid4())
        self._state = _State.NEW
        self._km: SandboxKernelManager | None = None
        self._kc: AsyncKernelClient | None = None
        self._events = MessageQueue(self.output_limit + _QUEUE_HEADROOM, _QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._exit_watchers: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._broken: str | None = None
        self._cut_settled: asyncio.Future[None] | None = None
        self._warn_tampering = rate_limited(log.warning)
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

    @property
    def _provisioner(self) -> DockerSandboxProvisioner:
        assert self._km is not None and isinstance(self._km.provisioner, DockerSandboxProvisioner)
        return self._km.provisioner

    async def setup(self) -> SandboxResponse:
        """Start the sandbox and wait until its kernel answers.

        Raises ``SandboxError`` (``DockerUnavailableError``, ``ImageNotFoundError``,
        ``SandboxStartError``) when it cannot start; nothing is left behind then.
        """
        if self._state is not _State.NEW:
            raise SandboxStateError(f"setup() was already called (the sandbox is {self.state})")
        self._state = _State.STARTING
        try:
            await self._start()
        except BaseException as exc:
            await self._teardown()
            self._state = _State.CLOSED
            if isinstance(exc, SandboxError | asyncio.CancelledError | KeyboardInterrupt):
                raise
            raise SandboxStartError(f"the sandbox failed to start: {exc}") from exc
        self._state = _State.READY
        return SandboxResponse(success=True, data=self._describe())

    async def wait_for_ready(self, timeout: float | None = None) -> SandboxResponse:
        """Set the sandbox up if needed, then check that its kernel answers."""
        if self._state is _State.NEW:
            return await self.setup()
        self._require_ready()
        async with self._lock:
            await self._wait_for_kernel(timeout or self.startup_timeout)
        return SandboxResponse(success=True, data=self._describe())

    async def cleanup(self) -> SandboxResponse:
        """Stop the sandbox and remove its container, workspace and runtime files. Idempotent."""
        if self._state is _State.CLOSED:
            return SandboxResponse(success=True, data={"sandbox_id": self.sandbox_id})
        self._state = _State.CLOSED
        await self._teardown()
        return SandboxResponse(success=True, data={"sandbox_id": self.sandbox_id})

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
        if self._state is not _State.READY or self._broken is not None:
            return False
        return await self._provisioner.poll() is None

    def _describe(self) -> dict[str, Any]:
        return {
            "sandbox_id": self.sandbox_id,
            "status": self.state,
            "memory_limit": limits.format_size(self.memory_limit),
            "cpu_limit": self.cpu_limit,
            "timeout": self.timeout,
        }

    def _require_ready(self) -> None:
        if self._state is _State.NEW:
            raise SandboxStateError(
                "the sandbox is not set up: call `await client.setup()` first "
                "or use `async with SandboxClient() as client:`"
            )
        if self._state is _State.CLOSED:
            raise SandboxStateError(
                "the sandbox was cleaned up; create a new SandboxClient to run more code"
            )
        if self._state is _State.STARTING:
            raise SandboxStateError("the sandbox is still starting: await setup() first")
        if self._broken is not None:
            raise SandboxStateError(
                f"the sandbox is broken ({self._broken}); call restart() or cleanup()"
            )

    async def _start(self) -> None:
        spec = sandbox_kernel_spec(self._provisioner_config)
        collect_garbage_in_background()  # sandboxes left by crashed processes (once per process)
        self._km = SandboxKernelManager(spec)
        await self._km.start_kernel(
            kernel_id=self.sandbox_id, extra_arguments=CHANGED_FILES_ARGUMENTS
        )
        self._connect()
        self._watch_exit()
        await self._wait_for_kernel(self.startup_timeout)

    async def _teardown(self) -> None:
        for handle in list(self._running_execs):
            handle.abort()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await _cancel(self._exit_watchers)
        self._exit_watchers = []
        await self._disconnect()
        await shut_down_sandbox(self._km, self.sandbox_id)

    # -- kernel plumbing ---------------------------------------------------------------------

    async def _pump_iopub(self) -> None:
        """Move IOPub messages into the event queue (one reader, so nothing is read twice).

        It never waits for the reader (the queue drops what does not fit), so the kernel's
        socket is always drained. Once the sandbox broke the protocol, nothing more is queued.
        """
        assert self._kc is not None
        channel = self._kc.iopub_channel
        while True:
            try:
                msg, size = await receive(channel, self._events.max_bytes)
            except KernelProtocolError as exc:
                self._mark_broken(f"it sent {exc}")
                continue
            if self._broken is None:
                self._events.put_message(msg, size)
            # A receive that finds a message waiting does not yield: without this, a burst of
            # big messages would be measured and decoded back to back, stalling the loop.
            await asyncio.sleep(0)

    def _mark_broken(self, reason: str) -> None:
        """The sandbox tampered with its kernel's messages: stop trusting it until restart()."""
        self._warn_tampering(f"sandbox {self.sandbox_id}: {reason}")
        if self._broken is None:
            self._broken = reason
            self._events.put(_Broken(reason))

    async def _disconnect(self) -> None:
        """Stop the reader tasks and close the client's channels."""
        await _cancel(self._tasks)
        self._tasks = []
        if self._kc is not None:
            self._kc.stop_channels()

    def _connect(self) -> None:
        """Open the client's channels, with bounded sockets (see channels.py)."""
        assert self._km is not None
        self._kc = self._km.client()
        configure_context(self._kc.context, self.output_limit)  # before any socket is made
        self._kc.start_channels(hb=False, stdin=False)
        self._cut_settled = None
        self._tasks.append(asyncio.create_task(self._pump_iopub()))
        self._tasks.append(asyncio.create_task(self._watch_connections()))

    async def _watch_connections(self) -> None:
        """A connection cut while the kernel's container runs means the sandbox sent something
        the client refused (a message over the size cap): the sandbox is then broken."""
        assert self._kc is not None
        kc = self._kc
        await _race(disconnected(kc.iopub_channel), disconnected(kc.shell_channel))
        # Nothing may be sent on a cut connection (libzmq can block the sender for good):
        # requests wait until the cut is explained.
        settled = self._cut_settled = asyncio.get_running_loop().create_future()
        try:
            # A dying kernel or relay cuts connections too: that is reported by the exit
            # watchers.
            provisioner = self._provisioner
            exits = await _race(
                provisioner.exited(), provisioner.relay_exited(), timeout=_EXIT_REPORT_DELAY
            )
            if exits == [None, None]:
                self._mark_broken(
                    "its kernel's connection was cut (a message over the size limit?)"
                )
        finally:
            settled.set_result(None)

    async def _connection_settled(self) -> None:
        """Wait until a cut connection, if any, is explained (then the state says what is
        allowed); at most ``_EXIT_REPORT_DELAY``."""
        if self._cut_settled is not None:
            await asyncio.shield(self._cut_settled)

    def _watch_exit(self) -> None:
        """Post the current container's exit into the event queue when it happens; a relay's
        exit marks the sandbox broken (the kernel can no longer be reached)."""
        provisioner = self._provisioner
        relay_id = provisioner.relay_id

        async def watch() -> None:
            ended = await provisioner.exited()
            self._events.put(ended)

        async def watch_relay() -> None:
            ended = await provisioner.relay_exited()
            # A refusal or a memory kill is the sandbox's doing. A relay stopped from outside
            # (an engine shutting down sends SIGTERM; or lost with the engine) is not: when the
            # kernel goes too, its exit is reported by the other watcher and the kernel
            # restarted; only a kernel left unreachable makes the sandbox broken.
            refused = ended.oom_killed or ended.exit_code == RELAY_REFUSED
            if not refused:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(provisioner.exited(), _EXIT_REPORT_DELAY)
                    return
            if ended.container_id == provisioner.relay_id == relay_id:
                memory = int(provisioner.relay_memory_limit)
                self._mark_broken(describe_relay_exit(ended, memory))

        for task in self._exit_watchers:
            task.cancel()
        self._exit_watchers = [asyncio.create_task(watch()), asyncio.create_task(watch_relay())]

    def _is_current(self, ended: ContainerExit) -> bool:
        return ended.container_id == self._provisioner.container_id

    async def _wait_for_kernel(self, timeout: float) -> None:
        """Handshake: a kernel_info reply on shell and an IOPub message prove both channels work."""
        assert self._kc is not None
        kc = self._kc
        request_ids = {kc.kernel_info()}
        try:
            async with asyncio.timeout(timeout):
                while True:  # shell: the first request is queued by ZMQ until the socket connects
                    shell_reply, exit_wait = await _race(
                        receive(kc.shell_channel, self._events.max_bytes),
                        self._provisioner.exited(),
                    )
                    if exit_wait is not None:
                        await self._raise_start_failure(
                            describe_exit(exit_wait.result(), self.memory_limit)
                        )
                    assert shell_reply is not None  # no timeout: one of the two ended
                    reply, _ = shell_reply.result()
                    if parent_id(reply) in request_ids:
                        break
                while True:  # iopub: subscriptions take effect a moment after connecting
                    request_ids.add(kc.kernel_info())
                    if await self._iopub_answered(request_ids):
                        return
        except TimeoutError:
            await self._raise_start_failure(f"the kernel did not answer within {timeout:g} s")

    async def _iopub_answered(self, request_ids: set[str]) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_READY_PROBE_INTERVAL):
                while True:
                    item, _ = await self._events.get()
                    if isinstance(item, _Broken):
                        await self._raise_start_failure(f"the kernel {item.reason}")
                    if isinstance(item, ContainerExit):
                        if self._is_current(item):
                            await self._raise_start_failure(describe_exit(item, self.memory_limit))
                        continue
                    if item.get("msg_type") == "iopub_welcome":
                        return True
                    if parent_id(item) in request_ids:
                        return True
        return False

    async def _raise_start_failure(self, reason: str) -> None:
        logs = await asyncio.to_thread(container_logs, self._provisioner.container_id)
        message = f"the sandbox kernel failed to start: {reason}"
        if logs:
            message += f"; container log:\n{logs}"
        raise SandboxStartError(message)

    # -- execution ---------------------------------------------------------------------------

    async def execute_code(self, code: str, timeout: float | None = None) -> SandboxResponse:
        """Run ``code`` in the sandbox; collect its output.

        ``data`` holds ``output`` (stdout), ``stderr``, ``result`` (text/plain of the last
        expression), ``display`` (MIME bundles), ``error`` (``ename``, ``evalue``,
        ``traceback``) and ``execution_count``. ``timeout`` overrides the client's default.
        """
        record = ExecutionRecord(self.output_limit)
        async for _ in self._run(code, timeout, record):
            pass
        return record.response()

    async def execute_code_stream(
        self, code: str, timeout: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Run ``code`` and yield its output as it happens, ending with one ``completed`` event."""
        record = ExecutionRecord(self.output_limit)
        async for event in self._run(code, timeout, record):
            yield event
        yield record.completed_event()

    async def _run(
        self, code: str, timeout: float | None, record: ExecutionRecord
    ) -> AsyncIterator[StreamEvent]:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        limit = self.timeout if timeout is None else limits.parse_timeout(timeout)
        self._require_ready()
        async with self._lock:
            await self._connection_settled()
            self._require_ready()
            assert self._kc is not None
            loop = asyncio.get_running_loop()
            msg_id = self._kc.execute(code, allow_stdin=False, user_expressions=_FILES_EXPRESSIONS)
            deadline = None if limit is None else loop.time() + limit
            self._events.current = msg_id
            async for event in self._follow(msg_id, record, deadline):
                yield event
            if record.finished:
                await self._collect_reply(msg_id, record)
                if record.error is not None:
                    await self._list_changed_files(record)
                return
            if record.failure is None:  # the deadline passed
                assert limit is not None
                async for event in self._stop_overrun(msg_id, record, limit):
                    yield event

    async def _follow(
        self, msg_id: str, record: ExecutionRecord, deadline: float | None
    ) -> AsyncIterator[StreamEvent]:
        """Yield the events of execution ``msg_id`` until it goes idle, its kernel dies, or the
        deadline passes (then return with ``record.finished`` False and no failure)."""
        while not record.finished:
            try:
                async with asyncio.timeout_at(deadline):
                    item, size = await self._events.get()
            except TimeoutError:
                return
            for event in record.drop(self._events.take_dropped()):
                yield event
            if isinstance(item, _Broken):
                for event in record.fail(
                    f"the sandbox is broken: {item.reason}; call restart() or cleanup()"
                ):
                    yield event
                return
            if isinstance(item, ContainerExit):
                if self._is_current(item):
                    for event in await self._recover_from_death(item, record):
                        yield event
                    return
                continue
            if parent_id(item) != msg_id:
                continue  # late output of an earlier execution, or noise
            for event in record.apply(item["msg_type"], item["content"], size):  # see receive()
                yield event

    async def _stop_overrun(
        self, msg_id: str, record: ExecutionRecord, limit: float
    ) -> AsyncIterator[StreamEvent]:
        """Interrupt an overrunning execution; kill and restart the kernel if it ignores that."""
        timed_out = f"execution timed out after {limits.format_seconds(limit)}"
        await self._km_interrupt()
        loop = asyncio.get_running_loop()
        grace = ExecutionRecord(0)  # the interrupted cell's KeyboardInterrupt is not the story
        async for _ in self._follow(msg_id, grace, loop.time() + self.interrupt_grace):
            pass
        if grace.finished:
            await self._collect_reply(msg_id, record)
            await self._list_changed_files(record)
            for event in record.fail(timed_out):
                yield event
            return
        if grace.failure is not None:  # the kernel died while being interrupted (and was restarted)
            for event in record.fail(f"{timed_out}; {grace.failure}"):
                yield event
            return
        yield record.info(f"{timed_out}; the kernel ignored the interrupt and is being restarted")
        restarted = await self._restart_kernel()
        for event in record.fail(f"{timed_out}; {restarted}"):
            yield event

    async def _recover_from_death(
        self, ended: ContainerExit, record: ExecutionRecord
    ) -> list[StreamEvent]:
        cause = describe_exit(ended, self.memory_limit)
        restarted = await self._restart_kernel()
        return record.fail(f"{cause}; {restarted}")

    async def _restart_kernel(self) -> str:
        """Replace the kernel (files in /workspace stay); return how that went, for messages."""
        assert self._km is not None
        try:
            # New sockets: libzmq does not reconnect a connection it cut, and nothing queued
            # for the old kernel (or forged by it) may reach the new one's callers. The old ones
            # close first: left open they reconnect to the new sockets (same path) and, under
            # the same identity, shut the new ones out of the kernel's ROUTER for good.
            await self._disconnect()
            await self._km.restart_kernel(now=True)
            self._events.clear()
            self._connect()
            self._broken = None  # a new kernel, new connections: nothing of the old one remains
            self._watch_exit()
            await self._wait_for_kernel(self.startup_timeout)
        except Exception as exc:
            self._broken = f"the kernel could not be restarted: {exc}"
            return self._broken
        if self._provisioner.workspace_reset:
            return (
                "restarted (variables lost; /workspace was emptied: its volume was unmounted, "
                "e.g. by a restart of the Docker engine)"
            )
        return "restarted (variables lost, files in /workspace kept)"

    async def _list_changed_files(self, record: ExecutionRecord) -> None:
        """Fill ``data["files"]`` after code that raised (or was interrupted): ipykernel skips
        ``user_expressions`` then. A silent execution does not restart the changed-files clock
        (IPython runs no pre_run_cell hooks for it), so it lists what the failed code changed."""
        if self._kc is None or self._broken is not None:
            return
        msg_id = self._kc.execute(
            "", silent=True, allow_stdin=False, user_expressions=_FILES_EXPRESSIONS
        )
        await self._collect_reply(msg_id, record)

    async def _collect_reply(self, msg_id: str, record: ExecutionRecord) -> None:
        """Read the shell reply of ``msg_id`` (it precedes idle) so replies never pile up."""
        assert self._kc is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interrupt_grace):
                while True:
                    try:
                        reply, _ = await receive(self._kc.shell_channel, self._events.max_bytes)
                    except KernelProtocolError as exc:
                        self._mark_broken(f"it sent {exc}")
                        return
                    if parent_id(reply) == msg_id:
                        record.apply_reply(reply.get("content"))
                        return

    async def _km_interrupt(self) -> None:
        assert self._km is not None
        with contextlib.suppress(RuntimeError):  # no kernel running: nothing to interrupt
            await self._km.interrupt_kernel()

    # -- control -----------------------------------------------------------------------------

    async def interrupt(self) -> None:
        """Send the running execution a KeyboardInterrupt (SIGINT)."""
        self._require_ready()
        await self._km_interrupt()

    async def restart(self) -> SandboxResponse:
        """Restart the kernel: variables are lost, files in /workspace are kept.

        Also the way back from a broken sandbox. ``data["message"]`` says what was kept.
        """
        if self._state is not _State.READY:
            self._require_ready()
        async with self._lock:
            message = await self._restart_kernel()
        if self._broken is not None:
            return SandboxResponse(success=False, error=message)
        return SandboxResponse(success=True, data={**self._describe(), "message": message})

    # -- files, shell, packages --------------------------------------------------------------

    async def _exec(self, argv: list[str], **options: Any) -> ExecResult:
        """Run a program in the sandbox's container (see ``container_exec``), on this sandbox's
        own worker threads. Cancelled, it closes the program's stream at once: the worker is
        free again (the program itself is left to its own limits)."""
        self._require_ready()
        container_id = self._provisioner.container_id
        if container_id is None:
            raise SandboxError("the sandbox has no running container (is it restarting?)")
        user = self._provisioner.sandbox_user
        handle = ExecHandle()
        self._running_execs.add(handle)
        try:
            return await self._in_worker(
                run_in_container, container_id, argv, user=user, handle=handle, **options
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
        self, command: str, args: list[str] | None = None, timeout: float | None = None
    ) -> SandboxResponse:
        """Run a program in the sandbox: ``data`` has ``stdout``, ``stderr``, ``exit_code``."""
        return await self.shell.execute(command, args, timeout)

    async def upload_file(
        self, file_path: str | os.PathLike[str], destination: str = "/workspace"
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
        self, content: bytes | IO[bytes], filename: str, destination: str = "/workspace"
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
        self._require_ready()
        with tempfile.TemporaryDirectory(prefix="ai-computer-packages-") as folder:
            staging = Path(folder) / "site"
            try:
                architecture = await self._in_worker(lambda: engine_architecture(docker_client()))
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

    async def execute(self, code: str, timeout: float | None = None) -> SandboxResponse:
        """Same as ``SandboxClient.execute_code``."""
        return await self._client.execute_code(code, timeout)

    def execute_stream(self, code: str, timeout: float | None = None) -> AsyncIterator[StreamEvent]:
        """Same as ``SandboxClient.execute_code_stream``."""
        return self._client.execute_code_stream(code, timeout)

    async def execute_file(self, path: str, timeout: float | None = None) -> SandboxResponse:
        """Run a ``.py`` file that is in the sandbox, as ``__main__``, in the kernel."""
        try:
            remote = sandbox_path(path)
        except ValueError as exc:
            return SandboxResponse(False, error=str(exc))
        if not remote.endswith(".py"):
            return SandboxResponse(False, error=f"{remote} is not a Python file (.py)")
        if not (await self._client.fs.stat(remote)).success:
            return SandboxResponse(False, error=f"{remote}: no such file in the sandbox")
        # The trailing ';' keeps IPython from echoing the module's globals as a result.
        code = f"__import__('runpy').run_path({remote!r}, run_name='__main__');"
        return await self._client.execute_code(code, timeout)
