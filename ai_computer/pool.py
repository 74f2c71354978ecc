"""Sandboxes started ahead of need, for callers that cannot wait half a second per sandbox.

A ``SandboxPool`` keeps ``size`` sandboxes set up and idle. ``acquire()`` hands one out at once
(or waits for the next to finish starting) and starts a replacement in the background. A sandbox
serves one caller only and is removed when that caller is done: nothing of one caller's code,
variables or files can reach the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from .client import SandboxClient
from .errors import SandboxStateError

MAX_SIZE = 16
"""Most sandboxes a pool keeps idle."""


class SandboxPool:
    """Idle, ready sandboxes with the same options, handed out one caller each.

    ``options`` are those of ``SandboxClient`` (``memory_limit``, ``cpu_limit``, ``timeout``,
    ...), checked here. Use ``async with SandboxPool(size=2, memory_limit="1G") as pool:``, then
    ``async with pool.sandbox() as client:`` (removed afterwards), or ``await pool.acquire()``
    and ``await client.cleanup()`` yourself.
    """

    def __init__(self, size: int = 2, **options: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise ValueError(f"pool size {size!r} is out of range (allowed: 1 to {MAX_SIZE})")
        SandboxClient(**options)  # checks the options now: constructing a client starts nothing
        self.size = size
        self._options = options
        self._ready: deque[SandboxClient] = deque()
        self._starting: set[asyncio.Task[SandboxClient]] = set()
        self._failure: BaseException | None = None
        self._closed = False

    @property
    def idle(self) -> int:
        """How many sandboxes are set up and waiting."""
        return len(self._ready)

    async def start(self) -> None:
        """Start filling the pool and wait until it is full (or a sandbox failed to start)."""
        self._require_open()
        self._fill()
        while self._starting:
            await asyncio.wait(set(self._starting))
            self._raise_failure()

    async def acquire(self) -> SandboxClient:
        """A set-up sandbox for one caller, who must ``cleanup()`` it; a replacement starts."""
        while True:
            self._require_open()
            self._fill()
            if self._ready:
                client = self._ready.popleft()
                self._fill()
                if await client._is_usable():
                    return client
                await client.cleanup()  # its kernel died while idle: never hand that out
                continue
            await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
            if not self._ready:
                self._raise_failure()

    @contextlib.asynccontextmanager
    async def sandbox(self) -> AsyncIterator[SandboxClient]:
        """``async with pool.sandbox() as client:`` a sandbox of the pool, removed afterwards."""
        client = await self.acquire()
        try:
            yield client
        finally:
            await client.cleanup()

    async def close(self) -> None:
        """Remove the idle sandboxes and stop starting new ones. Idempotent."""
        self._closed = True
        starting, self._starting = list(self._starting), set()
        for task in starting:
            task.cancel()
        idle, self._ready = list(self._ready), deque()
        # A start that was cancelled or failed removed what it made; one that finished first
        # left a sandbox to remove.
        ended = await asyncio.gather(*starting, return_exceptions=True)
        idle += [client for client in ended if isinstance(client, SandboxClient)]
        await asyncio.gather(*(client.cleanup() for client in idle))

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _require_open(self) -> None:
        if self._closed:
            raise SandboxStateError("the pool was closed; create a new SandboxPool")

    def _fill(self) -> None:
        while len(self._ready) + len(self._starting) < self.size:
            task = asyncio.create_task(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._started)

    async def _start_one(self) -> SandboxClient:
        client = SandboxClient(**self._options)
        await client.setup()  # on failure it removes what it made
        return client

    def _started(self, task: asyncio.Task[SandboxClient]) -> None:
        if task not in self._starting:
            return  # cancelled by close()
        self._starting.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            self._failure = failure  # the next caller waiting is told; a later one tries again
            return
        self._ready.append(task.result())

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
