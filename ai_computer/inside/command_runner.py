"""Runs a shell command inside a sandbox with a time limit that covers all its descendants
(``python3 -I -S -c <this file> LIMIT KILL_AFTER -- COMMAND...``).

coreutils ``timeout`` signals its own process group, which a ``setsid`` child (or a daemon that
double-forks) leaves. Here the runner makes itself a child subreaper: every descendant that loses
its parent is re-parented to the runner instead of the container's init, so the whole tree stays
findable through ``/proc``. Past LIMIT seconds the tree gets SIGTERM, then, KILL_AFTER seconds
later, is stopped and killed until none of it is left. Exit status as ``timeout``'s: 124 when the
limit passed, 137 when SIGKILL was needed, else the command's own.

Standard library only; it runs as the sandbox user, in the sandbox's limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

TIMED_OUT = 124
KILLED = 137
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass  # then only the process group can be reached: the command's own tree


def descendants(root: int) -> set[int]:
    """Every process below ``root``, read from /proc (parent pids)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def signal_tree(signum: int) -> set[int]:
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass
    return pids


def reap() -> None:
    """Collect the exit status of every ended descendant re-parented to us."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def end_tree(kill_after: float) -> bool:
    """SIGTERM the tree; past ``kill_after`` stop and kill what is left. True if SIGKILL was
    needed."""
    signal_tree(signal.SIGTERM)
    deadline = time.monotonic() + kill_after
    while time.monotonic() < deadline:
        reap()
        if not descendants(os.getpid()):
            return False
        time.sleep(0.05)
    for _ in range(100):  # stopped first, so nothing forks while it is being killed
        signal_tree(signal.SIGSTOP)
        if not signal_tree(signal.SIGKILL):
            break
        time.sleep(0.01)
        reap()
    return True


def main(argv: list[str]) -> int:
    limit, kill_after, command = float(argv[1]), float(argv[2]), argv[4:]
    become_subreaper()
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        sys.stderr.write(f"{command[0]}: {exc.strerror}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    try:
        code = child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        killed = end_tree(kill_after)
        child.wait()
        return KILLED if killed else TIMED_OUT
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
