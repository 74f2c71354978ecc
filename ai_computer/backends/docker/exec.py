"""Running a program inside a sandbox's container (``docker exec``), streaming its stdin and
stdout so that large transfers never sit whole in memory.

The program runs as the sandbox user, in the container's namespaces and cgroup: the same
limits, no network, and a view of the container's file system only. ``docker cp`` (the archive
API) is deliberately not used: it resolves paths on the host side and has had symlink-race
advisories.

Blocking (docker-py): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import docker
import docker.errors

from ...errors import SandboxError
from ..base import ExecHandle, ExecResult, StopTransfer, shut
from ..image import WORKSPACE
from .engine import docker_client, translate_docker_errors

_STDOUT, _STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")  # Docker's multiplexed stream: kind, 3 padding bytes, size


class _CallbackError(Exception):
    """Carries an exception raised by ``on_stdout`` past the handling of socket errors."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def run_in_container(
    container_id: str,
    argv: list[str],
    *,
    user: str,
    stdin: Iterable[bytes] | None = None,
    on_stdout: Callable[[bytes], object] | None = None,
    stdout_limit: int = 16 * 1024 * 1024,
    stderr_limit: int = 64 * 1024,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    workdir: str = WORKSPACE,
    handle: ExecHandle | None = None,
    client: docker.DockerClient | None = None,
) -> ExecResult:
    """Run ``argv`` in the container; feed it ``stdin``; pass stdout to ``on_stdout`` or keep
    up to ``stdout_limit`` bytes of it.

    ``timeout`` bounds the whole exec and ``idle_timeout`` each wait for output: past either the
    stream is closed and the result says ``timed_out`` (a safety net: callers that need a
    precise limit enforce it inside too). ``on_stdout`` may raise :class:`StopTransfer` to end
    the exec at once (``stopped``). ``handle.abort()`` from another thread ends it the same way.
    ``client`` is the engine holding the container (default: the environment's).
    """
    api = (client or docker_client()).api
    with translate_docker_errors("running a command in the sandbox failed"):
        try:
            exec_id = api.exec_create(
                container_id, argv, stdin=stdin is not None, user=user, workdir=workdir
            )["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise SandboxError("the sandbox's container is not running") from exc
            raise
        stream = api.exec_start(exec_id, socket=True)
    raw: socket.socket = getattr(stream, "_sock", stream)
    handle = handle or ExecHandle()
    handle.attach(raw)
    deadline = None if timeout is None else time.monotonic() + timeout
    activity = [time.monotonic()]  # the writer's last progress: an upload is not idle
    stdout, stderr = bytearray(), bytearray()
    dropped = 0
    ended_early = timed_out = False
    writer = None
    try:
        if stdin is not None:
            # Feed stdin from a thread while this one reads: a program that stops reading (a
            # full disk) must not leave us blocked in a write, and its report must get through.
            writer = threading.Thread(target=_feed, args=(raw, stdin, activity), daemon=True)
            writer.start()
        for kind, data in _frames(raw, deadline, idle_timeout, activity):
            if kind == _STDOUT:
                if on_stdout is not None:
                    try:
                        on_stdout(data)
                    except StopTransfer:
                        raise
                    except BaseException as exc:  # the caller's own failure (a full local disk)
                        raise _CallbackError(exc) from exc
                elif len(stdout) < stdout_limit:
                    room = stdout_limit - len(stdout)
                    stdout += data[:room]
                    dropped += max(0, len(data) - room)
                else:
                    dropped += len(data)
            elif kind == _STDERR and len(stderr) < stderr_limit:
                stderr += data[: stderr_limit - len(stderr)]
    except TimeoutError:
        ended_early = timed_out = True
    except StopTransfer:
        ended_early = True
    except _CallbackError as wrapped:
        raise wrapped.error from None
    except OSError:
        if not handle.aborted:
            raise SandboxError("the connection to the sandbox's command was lost") from None
        ended_early = True
    finally:
        shut(raw)  # wakes a writer blocked on a full socket; ends the exec's stream
        if writer is not None:
            writer.join()
        stream.close()
        raw.close()  # closing the SocketIO wrapper alone leaves the socket open
    if ended_early or handle.aborted:
        return ExecResult(-1, bytes(stdout), bytes(stderr), dropped, timed_out=timed_out)
    return ExecResult(_exit_code(exec_id, api), bytes(stdout), bytes(stderr), dropped)


def _feed(raw: socket.socket, stdin: Iterable[bytes], activity: list[float]) -> None:
    """Send ``stdin`` to the program, then end its input. If the program stopped reading, the
    stream ended or the source failed, stop quietly: the exit status or the program's report
    tells the rest (an upload cut short is refused by the file tool)."""
    try:
        for chunk in stdin:
            raw.sendall(chunk)
            activity[0] = time.monotonic()
    except Exception:
        pass
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


def _receive_exactly(
    raw: socket.socket,
    size: int,
    deadline: float | None,
    idle_timeout: float | None,
    activity: list[float],
) -> bytearray | None:
    """``size`` bytes from the socket, or None at end of stream; TimeoutError past the deadline
    or after ``idle_timeout`` seconds without data either way (received, or sent by the writer).
    Received in place: transfers pass through here once per frame, uncopied."""
    data = bytearray(size)
    view = memoryview(data)
    received = 0
    while received < size:
        wait = idle_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            wait = left if wait is None else min(wait, left)
        raw.settimeout(wait)
        try:
            count = raw.recv_into(view[received:], min(size - received, 1 << 20))
        except TimeoutError:
            if idle_timeout is not None and time.monotonic() - activity[0] < idle_timeout:
                continue  # still sending: not idle
            raise
        activity[0] = time.monotonic()
        if not count:
            return None
        received += count
    return data


def _frames(
    raw: socket.socket, deadline: float | None, idle_timeout: float | None, activity: list[float]
) -> Iterator[tuple[int, bytearray]]:
    """Demultiplex an exec's output into (stream kind, data) frames until it ends."""
    while header := _receive_exactly(raw, _HEADER.size, deadline, idle_timeout, activity):
        kind, size = _HEADER.unpack(header)
        data = _receive_exactly(raw, size, deadline, idle_timeout, activity)
        if data is None:
            return
        yield kind, data


def _exit_code(exec_id: str, api: docker.APIClient) -> int:
    # The exit code is recorded a moment after the output stream closes.
    for _ in range(100):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.01)
    return -1
