"""What the service and the SDK's remote mode put on the wire, as pure functions.

The HTTP API is the one the original AI Computer client speaks (``../shared/ORIGINAL-CLIENT.md``
in the project's notes, the README's "Service" section for users): success is HTTP 200 with the
outcome inside the body, streams are NDJSON of ``{"type", "data"}`` with every line at most
``LINE_LIMIT`` bytes, and paths arrive with a leading ``/`` the user never wrote.
"""

from __future__ import annotations

import ast
import json
import math
import posixpath
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from ..backends.image import WORKSPACE
from ..limits import format_size
from ..models import SandboxResponse, StreamEvent

LINE_LIMIT = 64 * 1024
"""Most bytes of one NDJSON line, newline included (the original client's aiohttp reader ends
the whole stream on a line over twice its buffer: 128 KiB on aiohttp 3.9)."""
_TEXT_PIECE = 4096  # characters: even at 12 bytes each (an escaped astral pair) a line fits
_SPLIT_TYPES = frozenset({"stdout", "stderr", "error", "info"})
_RESULT_LITERAL_LIMIT = 64 * 1024
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ENVIRONMENT_LIMIT = 64
"""Most variables one execution's ``environment`` may set."""


def ndjson_lines(event: StreamEvent) -> Iterator[bytes]:
    """``event`` as NDJSON lines of at most ``LINE_LIMIT`` bytes each.

    Text (stdout, stderr, errors, notices) is split into several events of the same type; any
    other event too big for a line (a large image as a display bundle, a huge result) is
    replaced by an ``info`` notice saying so: ``/execute`` returns it whole.
    """
    line = _line(event.type, event.data)
    if len(line) <= LINE_LIMIT:
        yield line
        return
    if event.type in _SPLIT_TYPES:
        for start in range(0, len(event.data), _TEXT_PIECE):
            yield _line(event.type, event.data[start : start + _TEXT_PIECE])
        return
    if event.type == "completed":  # never dropped: the stream's end; its error is shortened
        yield _line("completed", _short_summary(event.data))
        return
    notice = (
        f"[a {event.type} output of {format_size(len(line))} does not fit in a stream line "
        f"(at most {format_size(LINE_LIMIT)}); POST .../execute returns it whole]"
    )
    yield _line("info", notice)


def _short_summary(data: str) -> str:
    try:
        summary = json.loads(data)
    except ValueError:
        summary = None
    if not isinstance(summary, dict):
        summary = {"success": False, "error": "the execution ended", "execution_count": None}
    error = summary.get("error")
    if isinstance(error, str) and len(error) > _TEXT_PIECE:
        summary["error"] = error[:_TEXT_PIECE] + " [...]"
    return json.dumps({key: summary.get(key) for key in ("success", "error", "execution_count")})


def keepalive_line() -> bytes:
    """What the stream sends after a few seconds of silence."""
    return _line("keepalive", "")


def _line(event_type: str, data: str) -> bytes:
    # ensure_ascii: lone surrogates and any code point become plain ASCII escapes.
    return json.dumps({"type": event_type, "data": data}).encode("ascii") + b"\n"


def response_body(response: SandboxResponse, sandbox_id: str) -> dict[str, Any]:
    """A ``SandboxResponse`` as the JSON body the original client hands its user as ``data``.

    The body is ``data`` itself, plus ``sandbox_id``, ``success`` and ``failure`` (the one-line
    error, ``None`` on success): the original client treats any HTTP 200 as success and
    reads only the body. An execution's ``result`` is the last expression's value when it is a
    plain literal (the original client's ``execute_file`` reads ``result.get("success")``),
    else its text; ``result_text`` is always the text.
    """
    data = dict(response.data or {})
    body: dict[str, Any] = {**data, "sandbox_id": sandbox_id, "success": response.success}
    body["failure"] = response.error
    if "result" in data:
        body["result_text"] = data["result"]
        body["result"] = result_value(data["result"])
    return body


def sandbox_response(body: dict[str, Any]) -> SandboxResponse:
    """The inverse of ``response_body``: what our SDK's remote mode returns."""
    data = dict(body)
    success = bool(data.pop("success", False))
    failure = data.pop("failure", None)
    data.pop("sandbox_id", None)
    if "result_text" in data:
        data["result"] = data.pop("result_text")
    return SandboxResponse(success=success, data=data, error=failure)


def result_value(text: object) -> Any:
    """The value a ``text/plain`` repr stands for when it is a JSON-able literal, else the text.

    Only ``ast.literal_eval`` reads it (no code runs), on at most 64 KiB.
    """
    if not isinstance(text, str) or len(text) > _RESULT_LITERAL_LIMIT:
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if _is_json(value) else text


def _is_json(value: object, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_is_json(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _is_json(item, depth + 1) for key, item in value.items()
        )
    return False


def client_path(path: str, *, unquote_again: bool = False) -> str:
    """A path as a client sent it, as a path under /workspace (``sandbox_path`` checks it).

    The original client puts a ``/`` before a relative path (``out.csv`` -> ``/out.csv``)
    and percent-encodes query values twice: ``/x`` outside /workspace means ``/workspace/x``
    (nothing else is writable), and ``unquote_again`` undoes the second encoding.
    """
    if unquote_again:
        path = unquote(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"path {path!r} must be a non-empty string")
    normal = posixpath.normpath(path)
    if normal == WORKSPACE or normal.startswith(WORKSPACE + "/"):
        return path
    return path.lstrip("/") or "."


def environment_code(environment: dict[str, str]) -> tuple[str, str]:
    """Code that sets ``environment`` in the kernel's ``os.environ``, and code that puts back
    what was there. Names must be identifiers; values plain strings (no NUL)."""
    if len(environment) > ENVIRONMENT_LIMIT:
        raise ValueError(
            f"environment sets {len(environment)} variables; at most {ENVIRONMENT_LIMIT} allowed"
        )
    for name, value in environment.items():
        if not isinstance(name, str) or not _ENVIRONMENT_NAME.match(name):
            raise ValueError(
                f"environment variable name {name!r} is not allowed "
                "(letters, digits and _, not starting with a digit)"
            )
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"environment variable {name}: the value must be a string without NUL")
    # repr() of a dict of str is a literal: nothing of the caller's is run as code.
    setting = (
        "__ai_computer_saved_environment__ = {k: __import__('os').environ.get(k) "
        f"for k in {sorted(environment)!r}}}; "
        f"__import__('os').environ.update({dict(environment)!r})"
    )
    restoring = (
        "[__import__('os').environ.pop(k, None) if v is None "
        "else __import__('os').environ.__setitem__(k, v) "
        "for k, v in __ai_computer_saved_environment__.items()]; "
        "del __ai_computer_saved_environment__"
    )
    return setting, restoring
