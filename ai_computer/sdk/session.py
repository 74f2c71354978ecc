"""One sandbox's live kernel, as the SDK holds it: the kernel manager, the client's channels,
the reader that drains IOPub, the watchers of the kernel's and relay's exits, the handshake and
the restart.

A :class:`Session` exists only while its sandbox is started (``Session.start`` either returns a
working one or has removed everything it made), so nothing here is optional. Every byte read
from the kernel is hostile input: it goes through ``messages.receive``, and a sandbox that
breaks the protocol is marked broken until ``restart()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient

from .. import limits
from ..backends.base import Backend, ContainerExit, describe_exit
from ..errors import SandboxStartError
from ..inside.relay import REFUSED as RELAY_REFUSED
from ..kernel.kernelspec import sandbox_kernel_spec
from ..kernel.manager import SandboxKernelManager, shut_down_sandbox
from ..kernel.provisioner import DockerSandboxProvisioner
from ..kernel.startup import CHANGED_FILES_EXPRESSION, changed_files_arguments
from .execution import ExecutionRecord
from .messages import (
    LINGER_MS,
    KernelProtocolError,
    MessageQueue,
    configure_context,
    disconnected,
    parent_id,
    rate_limited,
    receive,
)

log = logging.getLogger(__name__)

_QUEUE_SIZE = 10_000  # IOPub messages buffered for a slow reader; the kernel drops past its own HWM
_QUEUE_HEADROOM = 16 * limits.MIB  # bytes queued for a slow reader beyond the output cap
_EXIT_REPORT_DELAY = 3.0  # an instance's exit is known well within this after its sockets close
_READY_PROBE_INTERVAL = 0.05
FILES_EXPRESSIONS = {"files": CHANGED_FILES_EXPRESSION}
"""The user expressions of every execution: ``data["files"]``, from the shell reply."""


class Broken:
    """Queued when the sandbox broke the protocol: ends the execution being followed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they have ended, whatever they raise (the caller's own
    cancellation still propagates)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


async def race(
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


class Session:
    """A started sandbox kernel and the client's connection to it."""

    def __init__(
        self,
        sandbox_id: str,
        km: SandboxKernelManager,
        *,
        output_limit: int,
        memory_limit: int,
        startup_timeout: float,
        reply_timeout: float,
    ) -> None:
        self.sandbox_id = sandbox_id
        self.km = km
        self.memory_limit = memory_limit
        self.startup_timeout = startup_timeout
        self.reply_timeout = reply_timeout
        self.events = MessageQueue(output_limit + _QUEUE_HEADROOM, _QUEUE_SIZE)
        """IOPub messages, instance exits and ``Broken`` marks, in arrival order."""
        self.broken: str | None = None
        """Why the sandbox is not trusted until a restart (None: it is not broken)."""
        self._output_limit = output_limit
        self._kc: AsyncKernelClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exit_watchers: list[asyncio.Task[None]] = []
        self._cut_settled: asyncio.Future[None] | None = None
        self._warn_tampering = rate_limited(log.warning)

    @classmethod
    async def start(
        cls,
        sandbox_id: str,
        provisioner_config: dict[str, Any],
        *,
        output_limit: int,
        memory_limit: int,
        startup_timeout: float,
        reply_timeout: float,
    ) -> Session:
        """Start the sandbox and wait until its kernel answers on both channels. On any failure
        (or cancellation) everything it made is removed before the error propagates."""
        km = SandboxKernelManager(sandbox_kernel_spec(provisioner_config))
        km.context.setsockopt(zmq.LINGER, LINGER_MS)  # its control socket, made at start
        session = cls(
            sandbox_id,
            km,
            output_limit=output_limit,
            memory_limit=memory_limit,
            startup_timeout=startup_timeout,
            reply_timeout=reply_timeout,
        )
        try:
            await km.start_kernel(kernel_id=sandbox_id, extra_arguments=changed_files_arguments())
            session._connect()
            session._watch_exit()
            await session.handshake(startup_timeout)
        except BaseException:
            await session.close()
            raise
        return session

    # -- what the client reads ---------------------------------------------------------------

    @property
    def kc(self) -> AsyncKernelClient:
        """The client's channels to the current kernel."""
        assert self._kc is not None, "a started session always has its channels"
        return self._kc

    @property
    def provisioner(self) -> DockerSandboxProvisioner:
        """The sandbox's provisioner (the same one Jupyter uses)."""
        provisioner = self.km.provisioner
        assert isinstance(provisioner, DockerSandboxProvisioner)
        return provisioner

    @property
    def backend(self) -> Backend:
        """Where the sandbox runs: programs inside, logs, the engine's architecture."""
        return self.provisioner.backend

    async def usable(self) -> bool:
        """Not broken, and its kernel and relay run (for pools: checked before reuse)."""
        return self.broken is None and await self.provisioner.poll() is None

    def is_current(self, ended: ContainerExit) -> bool:
        """Whether ``ended`` is the exit of the current kernel (not of one replaced since)."""
        return ended.container_id == self.provisioner.container_id

    async def connection_settled(self) -> None:
        """Wait until a cut connection, if any, is explained (then ``broken`` says whether the
        sandbox may be used); at most ``_EXIT_REPORT_DELAY``. Nothing may be sent on a cut
        connection: libzmq can block the sender for good."""
        if self._cut_settled is not None:
            await asyncio.shield(self._cut_settled)

    # -- requests ------------------------------------------------------------------------------

    def execute(self, code: str, *, silent: bool = False) -> str:
        """Send an execute request (stdin off, the changed-files expression on); its msg_id."""
        msg_id = str(
            self.kc.execute(
                code, silent=silent, allow_stdin=False, user_expressions=FILES_EXPRESSIONS
            )
        )
        if not silent:  # dropped output is counted for the user's execution, not a listing
            self.events.current = msg_id
        return msg_id

    async def collect_reply(self, msg_id: str, record: ExecutionRecord) -> None:
        """Read the shell reply of ``msg_id`` (it precedes idle) so replies never pile up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.reply_timeout):
                while True:
                    try:
                        reply, _ = await receive(self.kc.shell_channel, self.events.max_bytes)
                    except KernelProtocolError as exc:
                        self.mark_broken(f"it sent {exc}")
                        return
                    if parent_id(reply) == msg_id:
                        record.apply_reply(reply.get("content"))
                        return

    async def list_changed_files(self, record: ExecutionRecord) -> None:
        """Fill ``data["files"]`` after code that raised (or was interrupted): ipykernel skips
        ``user_expressions`` then. A silent execution does not restart the changed-files clock
        (IPython runs no pre_run_cell hooks for it), so it lists what the failed code changed."""
        if self.broken is not None:
            return
        await self.collect_reply(self.execute("", silent=True), record)

    async def interrupt(self) -> None:
        """SIGINT to the kernel; nothing when no kernel runs."""
        with contextlib.suppress(RuntimeError):
            await self.km.interrupt_kernel()

    async def restart(self) -> str:
        """Replace the kernel (files in /workspace stay); return how that went, for messages.
        A failure leaves the session broken."""
        try:
            # New sockets: libzmq does not reconnect a connection it cut, and nothing queued
            # for the old kernel (or forged by it) may reach the new one's callers. The old ones
            # close first: left open they reconnect to the new sockets (same path) and, under
            # the same identity, shut the new ones out of the kernel's ROUTER for good.
            await self._disconnect()
            self.provisioner.hold_for_restart()  # while the kill goes on (the relay holds)
            await self.km.restart_kernel(now=True)
            self.events.clear()
            self._connect()
            self.broken = None  # a new kernel, new connections: nothing of the old one remains
            self._watch_exit()
            await self.handshake(self.startup_timeout)
        except Exception as exc:
            self.broken = f"the kernel could not be restarted: {exc}"
            return self.broken
        if self.provisioner.workspace_reset:
            return (
                "restarted (variables lost; /workspace was emptied: its volume was unmounted, "
                "e.g. by a restart of the Docker engine)"
            )
        return "restarted (variables lost, files in /workspace kept)"

    def abandon(self) -> None:
        """Stop the readers and watchers and close the channels at once, without waiting (for a
        client that was dropped: its sandbox is removed by label elsewhere)."""
        for task in [*self._tasks, *self._exit_watchers]:
            task.cancel()
        self._tasks, self._exit_watchers = [], []
        if self._kc is not None:
            self._kc.stop_channels()
        # The manager's control socket and context, which a shutdown would have closed.
        self.km._close_control_socket()
        if self.km.context is not None and not self.km.context.closed:
            self.km.context.destroy(linger=0)

    async def close(self) -> None:
        """Stop the readers and watchers, close the channels, shut the kernel down and remove
        the sandbox. Idempotent."""
        await cancel_all(self._exit_watchers)
        self._exit_watchers = []
        await self._disconnect()
        await shut_down_sandbox(self.km, self.sandbox_id)

    def mark_broken(self, reason: str) -> None:
        """The sandbox tampered with its kernel's messages: stop trusting it until restart()."""
        self._warn_tampering(f"sandbox {self.sandbox_id}: {reason}")
        if self.broken is None:
            self.broken = reason
            self.events.put(Broken(reason))

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> None:
        """Open the client's channels, with bounded sockets (see messages.py)."""
        self._kc = self.km.client()
        configure_context(self._kc.context, self._output_limit)  # before any socket is made
        self._kc.start_channels(hb=False, stdin=False)
        self._cut_settled = None
        self._tasks.append(asyncio.create_task(self._pump_iopub()))
        self._tasks.append(asyncio.create_task(self._watch_connections()))

    async def _disconnect(self) -> None:
        """Stop the reader tasks and close the client's channels."""
        await cancel_all(self._tasks)
        self._tasks = []
        if self._kc is not None:
            self._kc.stop_channels()

    async def _pump_iopub(self) -> None:
        """Move IOPub messages into the event queue (one reader, so nothing is read twice).

        It never waits for the reader (the queue drops what does not fit), so the kernel's
        socket is always drained. Once the sandbox broke the protocol, nothing more is queued.
        """
        channel = self.kc.iopub_channel
        while True:
            try:
                msg, size = await receive(channel, self.events.max_bytes)
            except KernelProtocolError as exc:
                self.mark_broken(f"it sent {exc}")
                continue
            if self.broken is None:
                self.events.put_message(msg, size)
            # A receive that finds a message waiting does not yield: without this, a burst of
            # big messages would be measured and decoded back to back, stalling the loop.
            await asyncio.sleep(0)

    async def _watch_connections(self) -> None:
        """A connection cut while the kernel runs means the sandbox sent something the client
        refused (a message over the size cap): the sandbox is then broken."""
        kc = self.kc
        await race(disconnected(kc.iopub_channel), disconnected(kc.shell_channel))
        settled = self._cut_settled = asyncio.get_running_loop().create_future()
        try:
            # A dying kernel or relay cuts connections too: the exit watchers report that.
            provisioner = self.provisioner
            exits = await race(
                provisioner.exited(), provisioner.relay_exited(), timeout=_EXIT_REPORT_DELAY
            )
            if exits == [None, None]:
                self.mark_broken("its kernel's connection was cut (a message over the size limit?)")
        finally:
            settled.set_result(None)

    def _watch_exit(self) -> None:
        """Post the current kernel's exit into the event queue when it happens; a relay's exit
        marks the sandbox broken (the kernel can no longer be reached)."""
        provisioner = self.provisioner
        relay_id = provisioner.relay_id

        async def watch() -> None:
            self.events.put(await provisioner.exited())

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
                self.mark_broken(describe_relay_exit(ended, memory))

        for task in self._exit_watchers:
            task.cancel()
        self._exit_watchers = [asyncio.create_task(watch()), asyncio.create_task(watch_relay())]

    async def handshake(self, timeout: float) -> None:
        """Handshake: a kernel_info reply on shell and an IOPub message prove both channels work."""
        kc = self.kc
        request_ids = {kc.kernel_info()}
        try:
            async with asyncio.timeout(timeout):
                while True:  # shell: the first request is queued by ZMQ until the socket connects
                    shell_reply, exit_wait = await race(
                        receive(kc.shell_channel, self.events.max_bytes),
                        self.provisioner.exited(),
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
                    item, _ = await self.events.get()
                    if isinstance(item, Broken):
                        await self._raise_start_failure(f"the kernel {item.reason}")
                    if not isinstance(item, dict | ContainerExit):
                        continue  # a late stop of an execution that has ended (runner.Stop)
                    if isinstance(item, ContainerExit):
                        if self.is_current(item):
                            await self._raise_start_failure(describe_exit(item, self.memory_limit))
                        continue
                    if item.get("msg_type") == "iopub_welcome":
                        return True
                    if parent_id(item) in request_ids:
                        return True
        return False

    async def _raise_start_failure(self, reason: str) -> None:
        instance = self.provisioner.container_id
        logs = await asyncio.to_thread(self.backend.logs, instance)
        message = f"the sandbox kernel failed to start: {reason}"
        if logs:
            message += f"; container log:\n{logs}"
        raise SandboxStartError(message, reason=reason, container_log=logs)
