"""Sandboxes started ahead of need, for callers that cannot wait half a second per sandbox.

A ``SandboxPool`` keeps ``size`` sandboxes set up and idle. ``acquire()`` hands one out at once
(or waits for the next to finish starting) and starts a replacement in the background. A sandbox
serves one caller only and is removed when that caller is done: nothing of one caller's code,
variables or files can reach the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..errors import SandboxStateError
from ..kernel.spares import Spares
from .client import SandboxClient

MAX_SIZE = 16
"""Most sandboxes a pool keeps idle."""
_CLOSED = "the pool was closed; create a new SandboxPool"


async def _cleaned_up(client: SandboxClient) -> None:
    await client.cleanup()


class SandboxPool:
    """Idle, ready sandboxes with the same options, handed out one caller each.

    ``options`` are those of ``SandboxClient`` (``memory_limit``, ``cpu_limit``, ``timeout``,
    ...), checked here. Use ``async with SandboxPool(size=2, memory_limit="1G") as pool:``, then
    ``async with pool.sandbox() as client:`` (removed afterwards), or ``await pool.acquire()``
    and ``await client.cleanup()`` yourself. The spares are ``kernel/spares.py``'s, as Jupyter's
    ``prestart`` keeps them.
    """

    def __init__(self, size: int = 2, **options: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise ValueError(f"pool size {size!r} is out of range (allowed: 1 to {MAX_SIZE})")
        SandboxClient(**options)  # checks the options now: constructing a client starts nothing
        self.size = size
        self._spares: Spares[SandboxClient] = Spares(
            size,
            lambda: SandboxClient(**options),
            SandboxClient.setup,  # on failure it removes what it made
            SandboxClient._is_usable,
            _cleaned_up,
        )
        self._closed = False

    @property
    def idle(self) -> int:
        """How many sandboxes are set up and waiting."""
        return self._spares.idle

    async def start(self) -> None:
        """Start filling the pool and wait until it is full (or a sandbox failed to start)."""
        self._require_open()
        await self._spares.wait_full()

    async def acquire(self) -> SandboxClient:
        """A set-up sandbox for one caller, who must ``cleanup()`` it; a replacement starts."""
        self._require_open()
        client = await self._spares.take(wait=True)
        if client is None:  # the pool was closed meanwhile
            raise SandboxStateError(_CLOSED)
        return client

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
        await self._spares.close()

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _require_open(self) -> None:
        if self._closed:
            raise SandboxStateError(_CLOSED)
