"""Programs that run inside a sandbox's containers, kept as real files so that they are read,
linted and tested like the rest (the host only ever passes their text to ``python -c`` or to
IPython's ``exec_lines``):

- ``relay.py``: the relay container's program, between the kernel's sockets and the host's;
- ``kernel_boot.py``: the kernel's launcher (ipykernel's, started sooner);
- ``file_tool.py``: every file operation (``docker exec`` in the kernel's container);
- ``command_runner.py``: a shell command's time limit, over all its descendants;
- ``stream_limits.py``, ``bounded_messages.py``, ``working_directory.py``, ``changed_files.py``,
  ``collector.py``: the patches each kernel runs at start.

Each uses the standard library only (and, in the kernel, what the kernel itself imports). A
name a patch needs from the host is given to it as a global when it is run (``kernel_line``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from typing import Any

FRAME = struct.Struct(">Q")
"""The length before each chunk of a framed stream to the file tool (``write``, ``extract``)."""
FRAME_LIMIT = 1 << 20
"""The largest chunk the file tool takes in one frame."""


@cache
def source(name: str) -> str:
    """The text of ``name`` (e.g. ``"relay.py"``), read once per process."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def kernel_line(name: str, **given: Any) -> str:
    """An ipykernel option that runs the patch ``name`` at start, in a namespace of its own
    (nothing appears among the user's variables) holding the names ``given``."""
    return f"--IPKernelApp.exec_lines=exec({source(name)!r}, {given!r})"


def framed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The host's side of the file tool's framing (``file_tool.framed_chunks``): each chunk
    (split at ``FRAME_LIMIT``) after its length, then a zero length. The tool keeps what it
    was sent only once it has read that end mark, so a stream cut short leaves nothing."""
    for chunk in chunks:
        for start in range(0, len(chunk), FRAME_LIMIT):
            part = chunk[start : start + FRAME_LIMIT]
            yield FRAME.pack(len(part)) + part
    yield FRAME.pack(0)
