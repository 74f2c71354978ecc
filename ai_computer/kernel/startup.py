"""How a sandbox kernel starts: its command line, and the start-up patches of ``inside/`` it
runs (IPython ``exec_lines``)."""

from __future__ import annotations

import os

from ..inside import kernel_line, source

DEFAULT_KERNEL_ARGV = ["python", "-P", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
"""-P: /workspace (the working directory) is not on sys.path while the kernel starts, so nothing
planted there (an ``ipykernel_launcher.py``, say) runs in the kernel's place."""

LAUNCHER = ["-m", "ipykernel_launcher"]
"""The stock launcher in a kernelspec's ``argv``: replaced by ``-c <inside/kernel_boot.py>``, the
same launcher started sooner (the collector off while it loads, until the last start-up patch,
``inside/collector.py``, turns it on). ``-P`` applies to ``-c`` as to ``-m``: the working
directory is not on sys.path while it starts."""

# Room left in a message for what the relay counts besides header and content (routing ids,
# signature, metadata): the kernel's bound on one message (inside/bounded_messages.py).
_MESSAGE_MARGIN = 64 * 1024

CHANGED_FILES_EXPRESSION = "__import__('_ai_computer').changed_files_json()"
"""The user expression that lists what an execution changed under /workspace."""
CHANGED_FILES_LIMIT = 1000
"""Most files one execution's ``data["files"]`` lists (the first in path order)."""


def kernel_arguments(message_limit: int) -> list[str]:
    """ipykernel options for every sandbox kernel: history kept in memory (``history_request``
    and ``%history`` answer as a stock kernel's do; nothing is written to disk), and the start-up
    patches (the working directory on sys.path, bounded streams and messages)."""
    return [
        "--HistoryManager.hist_file=:memory:",
        kernel_line("working_directory.py"),
        kernel_line("stream_limits.py"),
        kernel_line("bounded_messages.py", LIMIT=message_limit - _MESSAGE_MARGIN),
    ]


def changed_files_arguments() -> list[str]:
    """ipykernel options that install the changed-files helper (for SDK kernels)."""
    return [kernel_line("changed_files.py", LIMIT=CHANGED_FILES_LIMIT)]


def kernel_command(
    argv: list[str], connection_file: str, message_limit: int, extra: list[str]
) -> list[str]:
    """The kernel's command: the kernelspec's ``argv`` (or the default) with its connection
    file, ``-P`` added to a kernelspec written before it was in the default, the stock launcher
    started sooner (``LAUNCHER``), the start-up patches and the caller's
    ``extra`` arguments, then the patch that turns the collector on."""
    command = [
        arg.replace("{connection_file}", connection_file) for arg in argv or DEFAULT_KERNEL_ARGV
    ]
    if os.path.basename(command[0]).startswith("python"):
        if "-P" not in command:
            command.insert(1, "-P")
        at = next((i for i in range(len(command) - 1) if command[i : i + 2] == LAUNCHER), None)
        if at is not None:
            command[at : at + 2] = ["-c", source("kernel_boot.py")]
    return [*command, *kernel_arguments(message_limit), *extra, kernel_line("collector.py")]
