"""Running one piece of code in a sandbox's kernel: follow its output, enforce its time limit
(interrupt, then restart a kernel that ignores the interrupt), stop it when its caller goes
away (the same way), and recover from a kernel that died under it.

An :class:`Execution` runs in a task of its own that holds the sandbox's lock (``client.py``);
its caller only reads the events it queues. So a caller that is cancelled, or a stream that is
closed or dropped, never holds the sandbox: it asks the execution to stop, and the task
interrupts the code, restarting the kernel if it is not idle within the grace, before the next
execution may start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from .. import limits
from ..backends.base import ContainerExit, describe_exit
from ..models import StreamEvent
from .execution import ExecutionRecord
from .messages import parent_id
from .session import Broken, Session

CANCELLED = "the execution was cancelled by its caller"
UNREAD_AFTER = 2.0
"""Seconds a stream may go unread while another call on its client waits, before it is taken
for abandoned and stopped (a reader that forwards each event elsewhere takes far less)."""


class Stop:
    """Queued among a session's events to stop execution ``msg_id`` (its caller went away)."""

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id


class Execution:
    """One execution as its caller sees it: the events queued for it, and whether it ended.

    Events are kept until read; they are few (``ExecutionRecord`` bounds the output they carry).
    """

    def __init__(self, record: ExecutionRecord, *, stream: bool) -> None:
        self.record = record
        self.stream = stream
        self.msg_id: str | None = None
        self.task: asyncio.Task[None] | None = None
        """The task that runs it under the sandbox's lock (``SandboxClient._drive``)."""
        self.error: BaseException | None = None
        """What ended the execution's task instead of a result (the sandbox was cleaned up)."""
        self.finished = False
        self.stopped = False
        self.reader: asyncio.Task[object] | None = None
        """The task that last read the stream (None: not read yet)."""
        self.reading = False
        self.read_at = time.monotonic()
        self._events: deque[StreamEvent] = deque()
        self._changed = asyncio.Event()

    def put(self, event: StreamEvent) -> None:
        if self.stream:  # execute_code reads the record, not the events
            self._events.append(event)
            self._changed.set()

    def end(self, error: BaseException | None = None) -> None:
        self.error, self.finished = error, True
        self._changed.set()

    async def next(self) -> StreamEvent | None:
        """The next event, or None once the execution has ended and every event was read."""
        self.reader, self.reading = asyncio.current_task(), True
        try:
            while not self._events and not self.finished:
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.reading, self.read_at = False, time.monotonic()
        return self._events.popleft() if self._events else None

    async def ended(self) -> None:
        """Wait until the execution's task is done (the kernel idle, or restarted)."""
        while not self.finished:
            self._changed.clear()
            await self._changed.wait()

    def abandoned(self) -> bool:
        """Whether nobody reads this stream any more: its reader has ended, or is the task now
        starting something else on the client (one task reads one thing at a time), or has not
        asked for an event for ``UNREAD_AFTER`` seconds while another call waits."""
        if not self.stream or self.finished:
            return False
        if self.reader is None or self.reader.done() or self.reader is asyncio.current_task():
            return True
        return not self.reading and time.monotonic() - self.read_at > UNREAD_AFTER

    def sent(self, msg_id: str, session: Session) -> None:
        """The execution's request went out as ``msg_id`` (a stop asked before is passed on)."""
        self.msg_id = msg_id
        if self.stopped:
            session.events.put(Stop(msg_id))

    def stop(self, session: Session | None) -> None:
        """Ask for the execution to be interrupted (once); its task does the rest."""
        if self.finished or self.stopped:
            return
        self.stopped = True
        if self.msg_id is not None and session is not None:  # else it will not start
            session.events.put(Stop(self.msg_id))


class Runner:
    """Runs code in one session's kernel, an execution at a time."""

    def __init__(self, session: Session, interrupt_grace: float) -> None:
        self.session = session
        self.interrupt_grace = interrupt_grace
        self._stopped: str | None = None  # the msg_id whose Stop ended the last _follow

    async def run(
        self,
        code: str,
        limit: float | None,
        record: ExecutionRecord,
        on_sent: Callable[[str], None] = lambda msg_id: None,
    ) -> AsyncIterator[StreamEvent]:
        """Execute ``code``, yielding its events as they come and filling ``record``. Past
        ``limit`` seconds, or when a ``Stop`` for it arrives, it is interrupted; a failure ends
        the record, never raises. ``on_sent`` is told the request's msg_id."""
        session = self.session
        loop = asyncio.get_running_loop()
        msg_id = session.execute(code)
        on_sent(msg_id)
        deadline = None if limit is None else loop.time() + limit
        async for event in self._follow(msg_id, record, deadline):
            yield event
        if record.finished:
            await session.collect_reply(msg_id, record)
            if record.error is not None:
                await session.list_changed_files(record)
            return
        if record.failure is None:  # the deadline passed, or its caller went away
            if self._stopped == msg_id:
                reason = CANCELLED
            else:
                assert limit is not None
                reason = f"execution timed out after {limits.format_seconds(limit)}"
            async for event in self._stop_overrun(msg_id, record, reason):
                yield event

    async def _follow(
        self,
        msg_id: str,
        record: ExecutionRecord,
        deadline: float | None,
        *,
        stoppable: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Yield the events of execution ``msg_id`` until it goes idle, its kernel dies, the
        deadline passes or (``stoppable``) a ``Stop`` for it arrives; in the last two cases
        return with ``record.finished`` False and no failure."""
        events = self.session.events
        while not record.finished:
            try:
                async with asyncio.timeout_at(deadline):
                    item, size = await events.get()
            except TimeoutError:
                return
            for event in record.drop(events.take_dropped()):
                yield event
            if isinstance(item, Stop):
                if stoppable and item.msg_id == msg_id:
                    self._stopped = msg_id
                    return
                continue
            if isinstance(item, Broken):
                for event in record.fail(
                    f"the sandbox is broken: {item.reason}; call restart() or cleanup()"
                ):
                    yield event
                return
            if isinstance(item, ContainerExit):
                if self.session.is_current(item):
                    for event in await self._recover_from_death(item, record):
                        yield event
                    return
                continue
            if parent_id(item) != msg_id:
                continue  # late output of an earlier execution, or noise
            for event in record.apply(item["msg_type"], item["content"], size):  # see receive()
                yield event

    async def _stop_overrun(
        self, msg_id: str, record: ExecutionRecord, reason: str
    ) -> AsyncIterator[StreamEvent]:
        """Interrupt an execution (``reason`` says why); kill and restart the kernel if it
        ignores that."""
        session = self.session
        await session.interrupt()
        loop = asyncio.get_running_loop()
        grace = ExecutionRecord(0)  # the interrupted cell's KeyboardInterrupt is not the story
        until = loop.time() + self.interrupt_grace
        async for _ in self._follow(msg_id, grace, until, stoppable=False):
            pass
        if grace.finished:
            await session.collect_reply(msg_id, record)
            await session.list_changed_files(record)
            for event in record.fail(reason):
                yield event
            return
        if grace.failure is not None:  # the kernel died while being interrupted (and was restarted)
            for event in record.fail(f"{reason}; {grace.failure}"):
                yield event
            return
        yield record.info(f"{reason}; the kernel ignored the interrupt and is being restarted")
        restarted = await session.restart()
        for event in record.fail(f"{reason}; {restarted}"):
            yield event

    async def _recover_from_death(
        self, ended: ContainerExit, record: ExecutionRecord
    ) -> list[StreamEvent]:
        cause = describe_exit(ended, self.session.memory_limit)
        restarted = await self.session.restart()
        return record.fail(f"{cause}; {restarted}")
