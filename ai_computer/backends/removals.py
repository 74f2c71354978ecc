"""Removals that need not hold up their caller: a sandbox whose kernel is already dead is
removed by a worker thread while ``cleanup()`` returns.

Nothing is left by handing a removal over:

- the workers are a ``ThreadPoolExecutor``'s, which the interpreter joins at exit after running
  every removal already queued, so a script that ends right after ``cleanup()`` still waits for
  them (at exit, not in the call);
- a process killed before then (``kill -9``) leaves them to its watchdog (``reaper.py``), which
  removes everything labelled with its owner;
- ``wait()`` waits for those of given sandboxes (tests, and callers that promise "removed").

Blocking: ``wait`` is for worker threads in async code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any

log = logging.getLogger(__name__)

_WORKERS = 4
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pending: dict[str, set[Future[Any]]] = {}


def _forget_after_fork() -> None:
    # A forked child has none of the parent's worker threads (its executor would take work and
    # never run it) and none of its sandboxes' removals to wait for.
    global _executor, _lock
    _executor, _lock = None, threading.Lock()
    _pending.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _run(
    sandbox_id: str,
    earlier: list[Future[Any]],
    this: list[Future[Any]],
    remove: Callable[..., Any],
    *args: Any,
) -> Any:
    # One sandbox's removals run in order: two at once would each find the other's container
    # "being removed" and its volumes still in use. The earlier ones were queued first, so they
    # run (or ran) already: no deadlock.
    for future in earlier:
        with contextlib.suppress(Exception):
            future.result()
    try:
        left = remove(*args)
    except Exception as exc:  # the watchdog and `ai-computer gc` remain: log, never raise
        log.warning("removing sandbox %s in the background failed: %s", sandbox_id, exc)
        return None
    finally:
        with _lock:  # before the future is done, so that pending() never lists it after
            futures = _pending.get(sandbox_id, set())
            futures.difference_update(this)
            if not futures:
                _pending.pop(sandbox_id, None)
    if left:
        log.warning("removing sandbox %s left %s", sandbox_id, ", ".join(map(str, left)))
    return left


def submit(sandbox_id: str, remove: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``remove(*args)`` for ``sandbox_id`` in a worker thread, after the removals of the
    same sandbox handed over before; failures and leftovers are logged."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="ai-computer-remove")
        futures = _pending.setdefault(sandbox_id, set())
        this: list[Future[Any]] = []  # filled before _run can take the lock
        future = _executor.submit(_run, sandbox_id, list(futures), this, remove, *args)
        this.append(future)
        futures.add(future)
    return future


def pending() -> list[str]:
    """The sandboxes whose removal has been handed over and has not finished."""
    with _lock:
        return sorted(_pending)


def wait(sandbox_ids: Iterable[str] | None = None, timeout: float | None = None) -> bool:
    """Wait until the removals of ``sandbox_ids`` (default: all) have finished; False if some
    had not within ``timeout`` seconds."""
    with _lock:
        wanted = (
            _pending if sandbox_ids is None else {i: _pending.get(i, set()) for i in sandbox_ids}
        )
        futures = [future for group in wanted.values() for future in group]
    if not futures:
        return True
    _, not_done = wait_all(futures, timeout=timeout)
    return not not_done
