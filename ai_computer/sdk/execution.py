"""One execution's output: Jupyter IOPub messages turned into stream events and a response.

Every message from the kernel is untrusted input (code in the sandbox can read the HMAC key and
forge messages), so fields are type-checked here and the kept output is capped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..kernel.startup import CHANGED_FILES_LIMIT
from ..limits import format_size
from ..models import SandboxResponse, StreamEvent

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI_ESCAPE.sub("", text)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # nbformat allows multi-line strings as lists
        return "".join(item for item in value if isinstance(item, str))
    return ""


def _bundle(content: dict[str, Any]) -> dict[str, Any]:
    data = content.get("data")
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


def _bundle_size(bundle: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in bundle.values())


# The listing's text is refused unparsed past this: CHANGED_FILES_LIMIT entries of paths of a
# few hundred bytes fit many times over.
CHANGED_FILES_TEXT_LIMIT = 1024 * 1024
_MAX_PATH = 4096


def changed_files(text: Any) -> list[dict[str, Any]] | None:
    """Parse the kernel's list of changed files: JSON text, untrusted (the kernel controls it).

    Capped before parsing, parsed as JSON only; entries that are not a path under /workspace
    with a size are dropped, and at most ``CHANGED_FILES_LIMIT`` are kept. None when the text
    is not such a listing.
    """
    if not isinstance(text, str) or len(text) > CHANGED_FILES_TEXT_LIMIT:
        return None
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entries, list):
        return None
    return [
        {"path": entry["path"], "size": entry["size"]}
        for entry in entries[:CHANGED_FILES_LIMIT]
        if isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and entry["path"].startswith("/workspace/")
        and len(entry["path"]) <= _MAX_PATH
        and type(entry.get("size")) is int
        and entry["size"] >= 0
    ]


@dataclass
class ExecutionRecord:
    """Everything one execution produced, capped at ``output_limit`` bytes of output."""

    output_limit: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    result: str | None = None
    display: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    execution_count: int | None = None
    failure: str | None = None
    files: list[dict[str, Any]] | None = None
    notices: list[str] = field(default_factory=list)
    kept_bytes: int = 0
    dropped_bytes: int = 0
    finished: bool = False

    @property
    def truncated(self) -> bool:
        """True when output was dropped because it passed ``output_limit``."""
        return self.dropped_bytes > 0

    def apply(self, msg_type: str, content: dict[str, Any], size: int = 0) -> list[StreamEvent]:
        """Record one IOPub message of this execution; return the events it yields.

        ``size`` is the message's decoded size (``channels.decoded_size``): a display costs at
        least that against ``output_limit``, so JSON values that decode to many times their
        text are counted as what they hold in memory.
        """
        if msg_type == "stream":
            name = "stderr" if content.get("name") == "stderr" else "stdout"
            # Lone surrogates (possible in JSON) cannot be printed or encoded: replace them.
            encoded = _text(content.get("text")).encode("utf-8", "replace")
            room = max(self.output_limit - self.kept_bytes, 0)
            excess = len(encoded) - room
            encoded = encoded[:room]
            text = encoded.decode("utf-8", "ignore")
            self.kept_bytes += len(encoded)
            events = []
            if text:
                (self.stderr if name == "stderr" else self.stdout).append(text)
                events.append(StreamEvent(name, text))
            return events + self.drop(excess)
        if msg_type in ("execute_result", "display_data"):
            bundle = _bundle(content)
            if not bundle:
                return []
            size = size or _bundle_size(bundle)  # the decoded size covers the text
            if self.kept_bytes + size > self.output_limit:  # a bundle is kept whole or not at all
                return self.drop(size)
            self.kept_bytes += size
            events = []
            if msg_type == "execute_result":
                self.result = _text(bundle.get("text/plain")) or None
                if isinstance(content.get("execution_count"), int):
                    self.execution_count = content["execution_count"]
                events.append(StreamEvent("result", self.result or ""))
            self.display.append(bundle)
            events.append(StreamEvent("display", json.dumps(bundle)))
            return events
        if msg_type == "execute_input":
            if isinstance(content.get("execution_count"), int):
                self.execution_count = content["execution_count"]
            return []
        if msg_type == "error":
            ename, evalue = _text(content.get("ename")), _text(content.get("evalue"))
            traceback = content.get("traceback")
            lines = (
                [strip_ansi(line) for line in traceback if isinstance(line, str)]
                if isinstance(traceback, list)
                else []
            )
            self.error = {"ename": ename, "evalue": evalue, "traceback": lines}
            # A forged error may name nothing: the failure must still say something.
            self.failure = (f"{ename}: {evalue}" if evalue else ename) or "an unnamed error"
            return [StreamEvent("error", self.failure)]
        if msg_type == "status" and content.get("execution_state") == "idle":
            self.finished = True
        return []

    def apply_reply(self, content: Any) -> None:
        """Record what the shell reply adds: the execution count and the files changed."""
        if not isinstance(content, dict):
            return
        if self.execution_count is None and isinstance(content.get("execution_count"), int):
            self.execution_count = content["execution_count"]
        expressions = content.get("user_expressions")
        files = expressions.get("files") if isinstance(expressions, dict) else None
        if isinstance(files, dict) and files.get("status") == "ok":
            self.files = changed_files(_bundle(files).get("text/plain"))

    def drop(self, size: int) -> list[StreamEvent]:
        """Count output dropped for want of room (here, or in the client's queue before it got
        here); the first drop yields the truncation notice."""
        if size <= 0:
            return []
        first_drop = not self.truncated
        self.dropped_bytes += size
        if not first_drop:
            return []
        notice = (
            f"[output truncated: more than {format_size(self.output_limit)} of output; "
            "the rest is dropped]"
        )
        self.notices.append(notice)
        return [StreamEvent("info", notice)]

    def fail(self, message: str) -> list[StreamEvent]:
        """The execution ended badly for a reason outside the code (timeout, kernel death)."""
        self.failure = message
        return [StreamEvent("error", message)]

    def info(self, message: str) -> StreamEvent:
        """A notice from the sandbox, kept with the output."""
        self.notices.append(message)
        return StreamEvent("info", message)

    def completed_event(self) -> StreamEvent:
        """The final event of a stream."""
        summary = {
            "success": self.failure is None,
            "error": self.failure,
            "execution_count": self.execution_count,
        }
        return StreamEvent("completed", json.dumps(summary))

    def response(self) -> SandboxResponse:
        """The ``SandboxResponse`` of ``execute_code``."""
        output = "".join(self.stdout)
        if self.truncated:
            output += ("" if not output or output.endswith("\n") else "\n") + self.notices[0] + "\n"
        data = {
            "output": output,
            "stderr": "".join(self.stderr),
            "result": self.result,
            "display": self.display,
            "error": self.error,
            "execution_count": self.execution_count,
            "files": self.files,
            "truncated": self.truncated,
            "notices": self.notices,
        }
        return SandboxResponse(success=self.failure is None, data=data, error=self.failure)
