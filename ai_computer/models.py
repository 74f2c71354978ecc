"""The values the SDK returns, shaped like the original AI Computer SDK's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SandboxResponse:
    """Result of a sandbox operation.

    ``success`` is False when the code raised, timed out or killed its kernel; ``error`` is then
    a one-line message naming the cause and ``data`` still holds whatever output arrived.
    """

    success: bool
    data: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class StreamEvent:
    """One event of a streamed execution.

    ``type`` is one of ``stdout``, ``stderr``, ``result`` (text/plain of the value),
    ``display`` (JSON of a MIME bundle), ``error`` (``"Name: message"``), ``info`` (notices
    from the sandbox, such as truncation or a restart) and, last of all, ``completed``
    (JSON with ``success``, ``error`` and ``execution_count``).
    """

    type: str
    data: str


@dataclass
class FileOperationResponse:
    """Result of a file operation."""

    success: bool
    filename: str | None = None
    size: int | None = None
    path: str | None = None
    message: str | None = None
    error: str | None = None
