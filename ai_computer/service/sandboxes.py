"""The service's sandboxes: who owns each, the quotas, idle reaping and removal of them all.

Each sandbox is one of the SDK's ``SandboxClient``s, so its limits, hardening and errors are
the SDK's. A sandbox is found only through its owner: another token's id is "no such sandbox".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import SandboxError
from ..limits import format_size
from ..sdk.client import SandboxClient
from ..sdk.pool import SandboxPool

log = logging.getLogger("ai_computer.service")

CLOSE_TIMEOUT = 20.0
"""Seconds the service waits for its sandboxes' removal when it stops (the owner's watchdog
removes what is left once the process is gone)."""


class QuotaError(SandboxError):
    """A sandbox cannot be created: a quota is reached. ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnknownSandboxError(SandboxError):
    """No sandbox with that id for this token (another token's sandbox is not told apart)."""


@dataclass
class Entry:
    """One sandbox of the service."""

    client: SandboxClient
    owner: str
    last_used: float = field(default_factory=time.monotonic)
    active: int = 0
    environment_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def status(self) -> str:
        return "running" if self.active else "ready"


class Sandboxes:
    """Every sandbox the service made, by id, with the quotas of ``max_sandboxes`` in all and
    ``per_token`` per owner; a sandbox unused for ``idle_timeout`` seconds is removed."""

    def __init__(
        self,
        options: dict[str, Any],
        *,
        max_sandboxes: int,
        per_token: int,
        idle_timeout: float | None,
        prestart: int = 0,
    ) -> None:
        # Checks the options (constructing a client starts nothing); they are also the most a
        # create request may ask for.
        self._ceiling = SandboxClient(**options)
        self.options = options
        self.max_sandboxes = max_sandboxes
        self.per_token = per_token
        self.idle_timeout = idle_timeout
        self._entries: dict[str, Entry] = {}
        self._starting: dict[str, int] = {}  # owner -> sandboxes being created
        self._pool = SandboxPool(prestart, **options) if prestart else None
        self._reaper: asyncio.Task[None] | None = None
        self.closed = False

    @staticmethod
    def upload_limit(options: dict[str, Any]) -> int:
        """The largest upload that fits: the sandboxes' disk limit."""
        return SandboxClient(**options).disk_limit

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> None:
        if self._pool is not None:
            await self._pool.start()
        if self.idle_timeout:
            self._reaper = asyncio.create_task(self._reap_idle(self.idle_timeout))

    async def create(self, owner: str, overrides: dict[str, Any]) -> Entry:
        """A new, set-up sandbox for ``owner`` with the service's options and ``overrides``.

        Raises ``QuotaError`` (503 for the service's limit, 429 for the token's), ``ValueError``
        for a bad limit, and the SDK's errors when the sandbox cannot start.
        """
        if self.closed:
            raise QuotaError("the service is shutting down", 503)
        client = SandboxClient(**{**self.options, **overrides})  # ValueError: out of range
        self._check_ceilings(client)
        starting = sum(self._starting.values())
        if len(self._entries) + starting >= self.max_sandboxes:
            raise QuotaError(
                f"the service runs its maximum of {self.max_sandboxes} sandboxes "
                "(--max-sandboxes); delete one or try later",
                503,
            )
        mine = sum(entry.owner == owner for entry in self._entries.values())
        if mine + self._starting.get(owner, 0) >= self.per_token:
            raise QuotaError(
                f"this token has its maximum of {self.per_token} sandboxes (--per-token); "
                "delete one first (DELETE /api/v1/sandbox/{id})",
                429,
            )
        self._starting[owner] = self._starting.get(owner, 0) + 1
        try:
            if self._pool is not None and not overrides:
                client = await self._pool.acquire()
            else:
                await client.setup()
        finally:
            self._starting[owner] -= 1
        entry = Entry(client, owner)
        if self.closed:  # shut down while it started
            await client.cleanup(wait=True)
            raise QuotaError("the service is shutting down", 503)
        self._entries[client.sandbox_id] = entry
        log.info("sandbox created", extra={"sandbox": client.sandbox_id, "owner": owner})
        return entry

    def _check_ceilings(self, client: SandboxClient) -> None:
        """The service's limits are the most a create request may ask for."""
        ceiling = self._ceiling
        asked: list[tuple[str, float, float, Callable[[Any], str]]] = [
            ("memory_limit", client.memory_limit, ceiling.memory_limit, format_size),
            ("disk_limit", client.disk_limit, ceiling.disk_limit, format_size),
            ("cpu_limit", client.cpu_limit, ceiling.cpu_limit, "{:g}".format),
        ]
        for name, value, most, shown in asked:
            if value > most:
                raise ValueError(
                    f"{name} {shown(value)} exceeds this server's {shown(most)} "
                    f"(its --{name.replace('_', '-')})"
                )
        if ceiling.timeout is not None and (
            client.timeout is None or client.timeout > ceiling.timeout
        ):
            raise ValueError(
                f"timeout {client.timeout} exceeds this server's {ceiling.timeout:g} s (--timeout)"
            )

    def get(self, owner: str, sandbox_id: str) -> Entry:
        entry = self._entries.get(sandbox_id)
        if entry is None or entry.owner != owner:
            raise UnknownSandboxError(f"no sandbox {sandbox_id!r} for this token")
        return entry

    def owned_by(self, owner: str) -> list[Entry]:
        return [entry for entry in self._entries.values() if entry.owner == owner]

    @contextlib.asynccontextmanager
    async def use(self, entry: Entry) -> AsyncIterator[SandboxClient]:
        """The sandbox's client for one request: it is not idle meanwhile."""
        entry.active += 1
        entry.last_used = time.monotonic()
        try:
            yield entry.client
        finally:
            entry.active -= 1
            entry.last_used = time.monotonic()

    async def remove(self, owner: str, sandbox_id: str) -> None:
        entry = self.get(owner, sandbox_id)
        del self._entries[sandbox_id]
        await entry.client.cleanup(wait=True)  # DELETE answers once nothing is left
        log.info("sandbox removed", extra={"sandbox": sandbox_id, "owner": owner})

    async def close(self) -> None:
        """Remove every sandbox (and the spares): what the service does when it stops."""
        self.closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        entries, self._entries = list(self._entries.values()), {}
        removals: list[Awaitable[object]] = [entry.client.cleanup(wait=True) for entry in entries]
        if self._pool is not None:
            removals.append(self._pool.close())
        try:
            await asyncio.wait_for(asyncio.gather(*removals, return_exceptions=True), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("sandbox removal did not finish; the watchdog removes what is left")

    async def _reap_idle(self, idle_timeout: float) -> None:
        while True:
            await asyncio.sleep(min(idle_timeout / 4, 5.0))
            now = time.monotonic()
            # Taken out in one pass with no await: nothing can start using them meanwhile.
            idle = [
                self._entries.pop(sandbox_id)
                for sandbox_id, entry in list(self._entries.items())
                if not entry.active and now - entry.last_used >= idle_timeout
            ]
            for entry in idle:
                log.info("idle sandbox removed", extra={"sandbox": entry.client.sandbox_id})
            results = await asyncio.gather(
                *(entry.client.cleanup(wait=True) for entry in idle), return_exceptions=True
            )
            for entry, result in zip(idle, results, strict=True):
                if isinstance(result, Exception):  # one failed removal must not stop the reaper
                    log.error(
                        "removing idle sandbox %s failed: %s", entry.client.sandbox_id, result
                    )
