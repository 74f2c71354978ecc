"""The one pool of spares (``kernel/spares.py``) as pure logic, with stand-ins for sandboxes
(the real ones are in ``tests/sdk/test_pool.py`` and ``test_provisioner.py``)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from ai_computer.kernel.spares import REFILL_DELAY, Spares


@dataclass
class Spare:
    number: int
    started: bool = False
    alive: bool = True
    removed: bool = False


@dataclass
class Engine:
    """Makes stand-ins; each start waits for ``go`` and may fail."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    made: list[Spare] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def make(self) -> Spare:
        self.made.append(Spare(next(self.counter)))
        return self.made[-1]

    async def launch(self, spare: Spare) -> None:
        await self.go.wait()
        if self.failures:
            self.failures -= 1
            spare.removed = True  # a failed launch removes what it made
            raise RuntimeError(f"spare {spare.number} could not start")
        spare.started = True

    async def usable(self, spare: Spare) -> bool:
        return spare.alive

    async def discard(self, spare: Spare) -> None:
        spare.removed = True

    def spares(self, size: int) -> Spares[Spare]:
        return Spares(size, self.make, self.launch, self.usable, self.discard)


async def test_take_without_waiting_starts_nothing_and_finds_nothing() -> None:
    engine = Engine()
    spares = engine.spares(2)
    assert await spares.take(wait=False) is None
    assert engine.made == []  # prestart refills after its own kernel's start, not before


async def test_taking_hands_out_started_spares_once_and_refills() -> None:
    engine = Engine()
    engine.go.set()
    spares = engine.spares(2)
    await spares.wait_full()
    assert spares.idle == 2
    first = await spares.take(wait=True)
    second = await spares.take(wait=True)
    assert first is not None and second is not None and first is not second
    assert first.started and second.started
    await spares.wait_full()
    assert spares.idle == 2 and len(engine.made) == 4
    await spares.close()
    assert [spare.removed for spare in engine.made] == [False, False, True, True]


async def test_a_replacement_starts_a_moment_after_a_spare_is_handed_out() -> None:
    engine = Engine()
    engine.go.set()
    spares = engine.spares(1)
    await spares.wait_full()
    assert await spares.take(wait=True) is engine.made[0]
    assert len(engine.made) == 1  # the caller's first requests do not share the CPUs with it
    async with asyncio.timeout(REFILL_DELAY + 5):
        while spares.idle < 1:
            await asyncio.sleep(0.01)
    assert len(engine.made) == 2
    await spares.close()


async def test_a_spare_that_died_idle_is_removed_not_handed_out() -> None:
    engine = Engine()
    engine.go.set()
    spares = engine.spares(1)
    await spares.wait_full()
    engine.made[0].alive = False
    taken = await spares.take(wait=True)
    assert taken is engine.made[1] and engine.made[0].removed
    await spares.close()


async def test_a_start_failure_reaches_the_waiting_caller_once() -> None:
    engine = Engine(failures=1)
    spares = engine.spares(1)
    waiting = asyncio.create_task(spares.take(wait=True))
    await asyncio.sleep(0)
    engine.go.set()
    with pytest.raises(RuntimeError, match="spare 0 could not start"):
        await waiting
    taken = await spares.take(wait=True)  # the next caller tries again
    assert taken is not None and taken.started
    await spares.close()


async def test_closing_cancels_a_refill_that_is_due() -> None:
    engine = Engine()
    engine.go.set()
    spares = engine.spares(1)
    await spares.wait_full()
    await spares.take(wait=True)
    await spares.close()
    await asyncio.sleep(REFILL_DELAY + 0.1)
    assert len(engine.made) == 1  # nothing started after the pool was closed


async def test_closing_removes_spares_still_starting_and_refuses_more() -> None:
    engine = Engine()
    spares = engine.spares(2)
    spares.fill()
    await spares.close()
    assert len(engine.made) == 2
    assert await spares.take(wait=True) is None
    spares.fill()
    assert len(engine.made) == 2


async def test_abandoning_returns_every_unclaimed_spare() -> None:
    engine = Engine()
    spares = engine.spares(2)
    spares.fill()
    assert sorted(spare.number for spare in spares.abandon()) == [0, 1]
    assert spares.idle == 0
    engine.go.set()
    await asyncio.sleep(0.01)  # the abandoned starts finish: nothing comes back to the pool
    assert spares.idle == 0
