"""Sandboxes started ahead of need: one pool, used by the SDK's ``SandboxPool`` and by
kernelspecs' ``prestart``.

A sandbox takes about half a second to start (storage, two containers and a kernel). A
:class:`Spares` keeps ``size`` of them started and idle: ``take()`` hands one out at once (or
waits for the next to finish starting) and starts a replacement in the background
(``REFILL_DELAY`` later). A spare is a whole sandbox no code has run in; it goes to one caller
only, for good, and one whose kernel died while idle is removed, never handed out.

For Jupyter, ``DockerSandboxProvisioner.prestart = N`` keeps N spares of each kernelspec
configuration in the process (:func:`take` / :func:`replenish` below): the first launch starts
them, each later launch takes one, and spares left when the process exits are removed then (or
by ``ai-computer gc`` if the process was killed: they carry its owner labels).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .provisioner import DockerSandboxProvisioner

log = logging.getLogger(__name__)

T = TypeVar("T")

REFILL_DELAY = 0.25
"""Seconds after handing a spare out before its replacement starts."""


class Spares(Generic[T]):
    """Up to ``size`` sandboxes started ahead of need, in one event loop.

    ``make`` builds a sandbox without starting it (cheap, synchronous: so that one still starting
    is known, and can be removed at exit); ``launch`` starts it and must remove what it made when
    it fails; ``usable`` tells whether an idle one may still be handed out; ``discard`` removes
    one. A failed start is kept for the next caller that waits (``take(wait=True)`` raises it);
    the one after tries again.
    """

    def __init__(
        self,
        size: int,
        make: Callable[[], T],
        launch: Callable[[T], Awaitable[object]],
        usable: Callable[[T], Awaitable[bool]],
        discard: Callable[[T], Awaitable[object]],
    ) -> None:
        self.size = size
        self._make, self._launch, self._usable, self._discard = make, launch, usable, discard
        self._ready: deque[T] = deque()
        self._starting: dict[asyncio.Task[T], T] = {}
        self._failure: BaseException | None = None
        self._refill: asyncio.TimerHandle | None = None  # a fill() due (see take)
        self.closed = False

    @property
    def idle(self) -> int:
        """How many spares are started and waiting."""
        return len(self._ready)

    def fill(self) -> None:
        """Start spares in the background until ``size`` are ready or starting."""
        while not self.closed and len(self._ready) + len(self._starting) < self.size:
            spare = self._make()
            task = asyncio.create_task(self._start(spare))
            self._starting[task] = spare
            task.add_done_callback(self._started)

    async def wait_full(self) -> None:
        """Fill, and wait until every spare has started; raise the first start failure."""
        self.fill()
        while self._starting:
            await asyncio.wait(set(self._starting))
            self._raise_failure()

    async def take(self, *, wait: bool) -> T | None:
        """A started, usable spare (a replacement starts ``REFILL_DELAY`` later). Without
        ``wait``, None when none is ready; with it, wait for one (raising a start failure
        instead, if one happened). None once closed."""
        while not self.closed:
            if wait:  # prestart refills after its kernel's own start (spares would slow it)
                self.fill()
            if self._ready:
                spare = self._ready.popleft()
                if wait:
                    # Not at once: a start takes the machine's cores for a moment, and the
                    # caller's first requests to this spare should not wait behind it.
                    # One fill() fills every place, so one due at a time is enough.
                    if self._refill is None:
                        loop = asyncio.get_running_loop()
                        self._refill = loop.call_later(REFILL_DELAY, self._refill_now)
                if await self._usable(spare):
                    return spare
                await self._discard(spare)  # it died while idle: never hand that out
                continue
            if not wait:
                self._failure = None  # logged when it happened; nobody waits to be told
                return None
            await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
            if not self._ready:
                self._raise_failure()
        return None

    async def close(self) -> None:
        """Stop starting spares and remove every one not handed out. Idempotent."""
        self.closed = True
        self._cancel_refills()
        starting, self._starting = list(self._starting), {}
        for task in starting:
            task.cancel()
        idle, self._ready = list(self._ready), deque()
        # A start that was cancelled or failed removed what it made; one that finished first
        # left a sandbox to remove.
        ended = await asyncio.gather(*starting, return_exceptions=True)
        idle += [spare for spare in ended if not isinstance(spare, BaseException)]
        await asyncio.gather(*(self._discard(spare) for spare in idle))

    def abandon(self) -> list[T]:
        """Forget every spare not handed out, started or not, and return them: for removal when
        the loop that started them is gone (at exit)."""
        self._cancel_refills()
        unclaimed = [*self._ready, *self._starting.values()]
        self._ready.clear()
        self._starting.clear()
        return unclaimed

    def _refill_now(self) -> None:
        self._refill = None
        self.fill()

    def _cancel_refills(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None

    async def _start(self, spare: T) -> T:
        await self._launch(spare)
        return spare

    def _started(self, task: asyncio.Task[T]) -> None:
        if self._starting.pop(task, None) is None or task.cancelled():
            return  # closed or abandoned meanwhile
        failure = task.exception()
        if failure is not None:  # it removed what it made
            log.warning("a spare sandbox failed to start: %s", failure)
            self._failure = failure
            return
        self._ready.append(task.result())

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


# -- prestart: spares for the provisioner, per configuration --------------------------------

_PRESTARTED: dict[tuple[int, str], Spares[DockerSandboxProvisioner]] = {}


def _settings(provisioner: DockerSandboxProvisioner) -> dict[str, object]:
    """What a spare must share with a kernel to stand in for it: all but ``prestart`` and
    ``notebook_dir`` (a spare starts without the notebook's folder; a kernel that takes one
    copies its folder in afterwards, see notebook_dir.py)."""
    names = sorted(set(provisioner.trait_names(config=True)) - {"prestart", "notebook_dir"})
    return {name: getattr(provisioner, name) for name in names}


def _spares_for(provisioner: DockerSandboxProvisioner) -> Spares[DockerSandboxProvisioner]:
    spec = provisioner.kernel_spec
    described = {
        **_settings(provisioner),
        "argv": list(spec.argv) if spec else None,
        "env": dict(spec.env) if spec else None,
        "name": getattr(spec, "name", None),
    }
    key = (id(asyncio.get_running_loop()), json.dumps(described, sort_keys=True, default=str))
    found = _PRESTARTED.get(key)
    if found is None:
        # What a spare is made from, not the provisioner itself (it holds its kernel manager).
        kind, kernel_spec, log, settings = (
            type(provisioner),
            provisioner.kernel_spec,
            provisioner.log,
            _settings(provisioner),
        )

        def make() -> DockerSandboxProvisioner:
            return kind(kernel_id=str(uuid.uuid4()), kernel_spec=kernel_spec, log=log, **settings)

        found = _PRESTARTED[key] = Spares(provisioner.prestart, make, _launch, _running, _removed)
    found.size = provisioner.prestart
    return found


async def _launch(spare: DockerSandboxProvisioner) -> None:
    try:
        arguments = await spare.pre_launch()
        await spare.launch_kernel(arguments.pop("cmd"), **arguments)
    except BaseException:
        await spare.cleanup()
        raise


async def _running(spare: DockerSandboxProvisioner) -> bool:
    return await spare.poll() is None


async def _removed(spare: DockerSandboxProvisioner) -> None:
    await spare.cleanup()


async def take(provisioner: DockerSandboxProvisioner) -> DockerSandboxProvisioner | None:
    """A launched spare with the provisioner's configuration, or None if none is ready."""
    return await _spares_for(provisioner).take(wait=False)


def replenish(provisioner: DockerSandboxProvisioner) -> None:
    """Start spares in the background until ``provisioner.prestart`` are ready or starting."""
    _spares_for(provisioner).fill()


@atexit.register
def remove_spares() -> None:
    """Remove every spare not handed out (at exit; the loop that started them is gone)."""
    for spares in list(_PRESTARTED.values()):
        for spare in spares.abandon():
            with contextlib.suppress(Exception):
                spare.backend.remove(spare.sandbox_id, spare.runtime_root)
