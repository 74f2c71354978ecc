"""Sandboxes die with their owner: a small watchdog process per owner, started with its first
sandbox, removes what the owner leaves when it dies, by ``kill -9`` too.

The owner holds the write end of a pipe whose read end is the watchdog's stdin. Nothing else
holds it (the descriptor is not inherited, and a forked child closes its copy), so the watchdog
reads end-of-file exactly when the owner is gone, however it ended. It then removes every
sandbox labelled with the owner's identity (``labels.OWNER_LABEL``) and exits. Along the pipe
the owner sends the runtime roots it used, so their directories go too.

The watchdog runs in a session of its own (a Ctrl-C or a signal to the owner's process group
does not reach it) with no terminal output, from ``/``. Killed together with its owner (a
whole cgroup stopped by systemd, say), it leaves the sandboxes to ``ai-computer gc``, which the
next sandbox start of any process runs too.

This module is also the watchdog's program: ``python -m ai_computer.backends.reaper LABEL``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

from .labels import OWNER_LABEL, current_owner

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pipes: dict[int, int] = {}  # owner pid -> the write end of its watchdog's pipe
_roots: dict[int, set[str]] = {}  # owner pid -> the runtime roots told to its watchdog


def watch(runtime_root: str) -> None:
    """Make sure this process has its watchdog (started on first use) and that it knows
    ``runtime_root``. Blocking (it starts a process once): call from a worker thread."""
    pid = os.getpid()
    with _lock:
        try:
            write = _pipes.get(pid)
            if write is None:
                write = _start()
                _pipes[pid], _roots[pid] = write, set()
            if runtime_root not in _roots[pid]:
                os.write(write, runtime_root.encode() + b"\n")
                _roots[pid].add(runtime_root)
        except OSError as exc:  # never fail a sandbox for its watchdog: gc is the fallback
            log.warning(
                "the sandbox watchdog is not running (%s); `ai-computer gc` removes what "
                "a killed process leaves",
                exc,
            )
            stale = _pipes.pop(pid, None)
            if stale is not None:
                with contextlib.suppress(OSError):
                    os.close(stale)


def _start() -> int:
    """Start the watchdog; return the write end of its pipe. posix_spawn rather than Popen: the
    watchdog outlives this process, and a Popen would warn when collected while it runs."""
    read, write = os.pipe()
    try:
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", __name__, current_owner().label()],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
    except OSError:
        os.close(write)
        raise
    finally:
        os.close(read)
    return write


def _forget_in_child() -> None:
    # A forked child is an owner of its own: the parent's pipe must close when the parent dies.
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork
    for write in _pipes.values():
        os.close(write)
    _pipes.clear()
    _roots.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def reap(owner_label: str, runtime_roots: set[str]) -> list[str]:
    """Remove every sandbox whose owner label is ``owner_label``; return their ids."""
    from . import backend

    engine = backend()
    roots: list[str | None] = [*sorted(runtime_roots)] or [None]
    removed = []
    for info in engine.list_sandboxes():
        if info.labels.get(OWNER_LABEL) == owner_label:
            try:
                for root in roots:
                    engine.remove(info.sandbox_id, root)
            except Exception:  # the others still go; gc finds this one later
                continue
            removed.append(info.sandbox_id)
    return removed


def main(argv: list[str]) -> int:
    """The watchdog: wait for the owner's end of the pipe to close, then reap."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir("/")  # hold no directory of the owner's
    [owner_label] = argv
    roots = {line.decode().strip() for line in sys.stdin.buffer if line.strip()}
    reap(owner_label, roots)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
