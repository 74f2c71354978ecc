"""Running programs in a sandbox (``client.shell``, ``execute_shell``).

A command runs inside the container as the sandbox user, with the sandbox's limits and no
network; arguments travel as a list and never pass through a shell on the host.
"""

from __future__ import annotations

import time

from .. import limits
from ..errors import SandboxError
from ..inside import source
from ..models import SandboxResponse
from .files import ExecRunner

_TIMED_OUT = 124  # the runner's exit status when the limit passed (as coreutils `timeout`)
_KILLED = 137  # 128 + SIGKILL: the runner had to escalate, or the memory limit struck
_KILL_AFTER = 2  # seconds between SIGTERM and SIGKILL when a command overruns


def bounded_argv(argv: list[str], limit: float) -> list[str]:
    """``argv`` run under the in-sandbox runner: past ``limit`` seconds every descendant of
    the command is ended, also those that left its process group (``setsid``)."""
    runner = ["python3", "-I", "-S", "-c", source("command_runner.py")]
    return [*runner, f"{limit:g}", str(_KILL_AFTER), "--", *argv]


def command_argv(command: str, args: list[str] | None) -> list[str]:
    """The argv to run: ``[command, *args]``; with no ``args``, ``command`` is a shell command
    line interpreted by ``sh -c`` *inside* the sandbox (so ``"ls -la | wc -l"`` works)."""
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"command {command!r} must be a non-empty string")
    if args is None:
        return ["sh", "-c", command]
    if not isinstance(args, list | tuple) or not all(isinstance(arg, str) for arg in args):
        raise ValueError(f"args {args!r} must be a list of strings")
    return [command, *args]


class Shell:
    """``client.shell``: run programs in the sandbox."""

    def __init__(self, run: ExecRunner, default_timeout: float | None, output_limit: int) -> None:
        self._run = run
        self._default_timeout = default_timeout
        self._output_limit = output_limit

    async def execute(
        self,
        command: str,
        args: list[str] | None = None,
        timeout: limits.Timeout = limits.USE_CLIENT_DEFAULT,
    ) -> SandboxResponse:
        """Run ``command`` with ``args``; ``data`` holds ``stdout``, ``stderr``, ``exit_code``.

        ``success`` is ``exit_code == 0``. Past ``timeout`` seconds (default: the client's;
        ``None``: no limit) the command and all its descendants get SIGTERM, then SIGKILL,
        and the error says so.
        """
        argv = command_argv(command, args)
        limit = limits.call_timeout(timeout, self._default_timeout)
        if limit is not None:
            argv = bounded_argv(argv, limit)
        safety_net = None if limit is None else limit + _KILL_AFTER + 10
        started = time.monotonic()
        try:
            result = await self._run(
                argv,
                stdout_limit=self._output_limit,
                stderr_limit=self._output_limit,
                timeout=safety_net,
            )
        except SandboxError as exc:
            return SandboxResponse(False, error=str(exc))
        data = {
            "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"),
            "exit_code": result.exit_code,
            "truncated": result.stdout_dropped > 0,
        }
        # 124 and 137 mean a timeout only once the limit has passed: a command may exit with
        # either on its own.
        overran = limit is not None and time.monotonic() - started >= limit
        if result.timed_out or (result.exit_code in (_TIMED_OUT, _KILLED) and overran):
            shown = limits.format_seconds(limit or 0)
            return SandboxResponse(False, data, f"command timed out after {shown} and was killed")
        if result.exit_code == _KILLED:
            return SandboxResponse(False, data, "command was killed (SIGKILL; the memory limit?)")
        if result.exit_code != 0:
            return SandboxResponse(False, data, f"command exited with status {result.exit_code}")
        return SandboxResponse(True, data)
