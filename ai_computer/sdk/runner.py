"""Running one piece of code in a sandbox's kernel: follow its output, enforce its time limit
(interrupt, then restart a kernel that ignores the interrupt), and recover from a kernel that
died under it. The caller (``client.py``) holds the sandbox's lock around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .. import limits
from ..backends.base import ContainerExit, describe_exit
from ..models import StreamEvent
from .execution import ExecutionRecord
from .messages import parent_id
from .session import Broken, Session


class Runner:
    """Runs code in one session's kernel, an execution at a time."""

    def __init__(self, session: Session, interrupt_grace: float) -> None:
        self.session = session
        self.interrupt_grace = interrupt_grace

    async def run(
        self, code: str, limit: float | None, record: ExecutionRecord
    ) -> AsyncIterator[StreamEvent]:
        """Execute ``code``, yielding its events as they come and filling ``record``. Past
        ``limit`` seconds it is interrupted; a failure ends the record, never raises."""
        session = self.session
        loop = asyncio.get_running_loop()
        msg_id = session.execute(code)
        deadline = None if limit is None else loop.time() + limit
        async for event in self._follow(msg_id, record, deadline):
            yield event
        if record.finished:
            await session.collect_reply(msg_id, record)
            if record.error is not None:
                await session.list_changed_files(record)
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
        events = self.session.events
        while not record.finished:
            try:
                async with asyncio.timeout_at(deadline):
                    item, size = await events.get()
            except TimeoutError:
                return
            for event in record.drop(events.take_dropped()):
                yield event
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
        self, msg_id: str, record: ExecutionRecord, limit: float
    ) -> AsyncIterator[StreamEvent]:
        """Interrupt an overrunning execution; kill and restart the kernel if it ignores that."""
        session = self.session
        timed_out = f"execution timed out after {limits.format_seconds(limit)}"
        await session.interrupt()
        loop = asyncio.get_running_loop()
        grace = ExecutionRecord(0)  # the interrupted cell's KeyboardInterrupt is not the story
        async for _ in self._follow(msg_id, grace, loop.time() + self.interrupt_grace):
            pass
        if grace.finished:
            await session.collect_reply(msg_id, record)
            await session.list_changed_files(record)
            for event in record.fail(timed_out):
                yield event
            return
        if grace.failure is not None:  # the kernel died while being interrupted (and was restarted)
            for event in record.fail(f"{timed_out}; {grace.failure}"):
                yield event
            return
        yield record.info(f"{timed_out}; the kernel ignored the interrupt and is being restarted")
        restarted = await session.restart()
        for event in record.fail(f"{timed_out}; {restarted}"):
            yield event

    async def _recover_from_death(
        self, ended: ContainerExit, record: ExecutionRecord
    ) -> list[StreamEvent]:
        cause = describe_exit(ended, self.session.memory_limit)
        restarted = await self.session.restart()
        return record.fail(f"{cause}; {restarted}")
