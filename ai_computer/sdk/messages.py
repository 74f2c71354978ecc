"""The kernel's messages, read as untrusted input with bounded memory.

Code in a sandbox can read its kernel's HMAC key and send anything through its kernel's sockets:
huge messages, floods, forged or malformed ones. The client's defences, in one place:

- every ZMQ socket of the client refuses frames larger than ``max_message_size`` (``MAXMSGSIZE``:
  libzmq drops the connection rather than allocating the frame) and holds at most
  ``RECEIVE_HWM`` unread messages (``RCVHWM``); the sender's further messages wait or are dropped
  on the sandbox's side;
- a message with too many parts, a bad signature, or fields of the wrong type is a
  :class:`KernelProtocolError` (a real kernel never sends one): the client then treats the
  sandbox as broken;
- a message is measured by what it decodes to, before it is decoded (:func:`decoded_size`):
  ``[[], [], ...]`` is 3 or 4 bytes on the wire per list and 64 in Python. A content part that
  would decode past the reader's budget is not decoded at all: it arrives as an empty content
  marked ``oversized`` (output dropped, reported as truncated); oversized header parts are a
  :class:`KernelProtocolError`;
- :class:`MessageQueue` holds the messages waiting for their reader, bounded by their decoded
  size: past the budget, output is dropped (and reported as truncated), never the reader's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Any

import zmq
from jupyter_client.channels import ZMQSocketChannel

from ..inside.relay import MAX_PARTS
from ..limits import MIB

RECEIVE_HWM = 16
"""Unread messages a client socket buffers; past it, libzmq stops reading from the kernel."""
_RECONNECT_INTERVAL_MS = 10  # reconnect quickly to the kernel's sockets (ZMQ's default is 100 ms)
LINGER_MS = 1000
"""How long a closed socket may still try to deliver what it holds: bounded, so that closing a
client (or collecting one that was dropped) never waits for a sandbox that is gone."""
_SMALL_MESSAGE = 4096  # status messages up to this size pass even when the byte budget is spent
_BULK_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error"}
)


CONTAINER_COST = 80
"""Bytes charged for each JSON array or object (an empty list takes 56, a dict 64 or more, plus
the slot that holds it)."""
VALUE_COST = 40
"""Bytes charged for each further value, counted by the commas and colons (a float takes 24, an
int 28 or a shared small one, plus its slot)."""
STRING_COST = 56
"""Bytes charged for each string beyond its characters (an empty str object is 49 bytes)."""
_HEADER_LIMIT = 64 * 1024  # header and parent header: a real kernel's are a few hundred bytes
_METADATA_LIMIT = MIB
# translate() tables: what to delete to keep only the marks counted.
_NOT_MARKS = bytes(byte for byte in range(256) if byte not in b',:[{"')
_STRING = re.compile(rb'"[^"]*"')  # a JSON string, once escaped quotes are removed


def _charge(text_size: int, marks: bytes, strings: int) -> int:
    """The bound for text of ``text_size`` (its length, weighted by its width) given the marks
    outside its strings (quotes removed or not)."""
    containers = marks.count(b"[") + marks.count(b"{")
    separators = marks.count(b",") + marks.count(b":")
    return text_size + CONTAINER_COST * containers + VALUE_COST * separators + STRING_COST * strings


def decoded_size(text: bytes, limit: int) -> int:
    """An upper bound of the memory ``json.loads(text)`` takes (or a number past ``limit``,
    when it would take more than that), found without decoding: the text's length (4 x when it
    is not ASCII) plus a cost for each array, object, value and string, counted by the brackets,
    commas, colons and quotes outside strings.

    Cheap first (counting them everywhere, strings included); only text that fails that is
    scanned string by string, and text holding too many strings to scan cheaply is past the
    limit anyway (each string is a value). At most a few passes over the text, in C.
    """
    # A str holding one character past U+FFFF takes 4 bytes for each of its characters, so text
    # that is not plain ASCII (or escapes characters as \uXXXX) may take 4 x its length.
    text_size = len(text) * (1 if text.isascii() and b"\\u" not in text else 4)
    marks = text.translate(None, _NOT_MARKS)
    quotes = marks.count(b'"')
    size = _charge(text_size, marks, quotes // 2 + 1)
    if size <= limit or quotes == 0:
        return size
    if b"\\" in text:  # escapes pair up only in the text itself, not among the marks
        marks = text.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_MARKS)
    # Now every quote delimits a string.
    strings = marks.count(b'"') // 2
    floor = _charge(text_size, b"", strings)
    if floor > limit:
        return floor
    return _charge(text_size, _STRING.sub(b"", marks), strings)


class KernelProtocolError(Exception):
    """The kernel sent something no real kernel sends: a sign that the sandbox tampers with it."""


def max_message_size(output_limit: int) -> int:
    """The largest frame a client socket accepts: the output cap plus room for JSON escapes and
    headers (the kernel sends long text in pieces of at most 1 MiB)."""
    return max(output_limit, 8 * MIB) + 4 * MIB


def configure_context(context: zmq.Context[Any], output_limit: int) -> None:
    """Set the limits of every socket later made from ``context``."""
    context.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_INTERVAL_MS)
    context.setsockopt(zmq.LINGER, LINGER_MS)
    context.setsockopt(zmq.MAXMSGSIZE, max_message_size(output_limit))
    context.setsockopt(zmq.RCVHWM, RECEIVE_HWM)


async def receive(channel: ZMQSocketChannel, decode_limit: int) -> tuple[dict[str, Any], int]:
    """The next message of ``channel`` and its decoded size in bytes (an upper bound), checked.

    A content part that would decode to more than ``decode_limit`` bytes is left undecoded: the
    message then has an empty ``content`` and ``oversized`` True, and its size says how big it
    would have been. Raises ``KernelProtocolError`` for a message that does not parse or is not
    well formed.
    """
    socket = channel.socket
    assert socket is not None
    frames = await socket.recv_multipart(copy=False)  # type: ignore[misc]
    if len(frames) > MAX_PARTS:
        raise KernelProtocolError(f"a message of {len(frames)} parts")
    try:
        _, parts = channel.session.feed_identities(frames, copy=False)
    except ValueError as exc:
        raise KernelProtocolError(f"an unreadable message ({_short(exc)})") from exc
    if len(parts) < 5:
        raise KernelProtocolError(f"a message of {len(parts)} parts after its routing ids")
    head = [part.bytes for part in parts[:5]]  # signature and the four JSON parts
    sizes = [
        decoded_size(text, limit)
        for text, limit in zip(
            head[1:], (_HEADER_LIMIT, _HEADER_LIMIT, _METADATA_LIMIT, decode_limit), strict=True
        )
    ]
    if sizes[0] > _HEADER_LIMIT or sizes[1] > _HEADER_LIMIT or sizes[2] > _METADATA_LIMIT:
        raise KernelProtocolError(f"a message with a header part of {max(sizes[:3])} bytes")
    oversized = sizes[3] > decode_limit
    size = sum(sizes) + sum(len(part) for part in parts[5:])
    try:
        message: dict[str, Any] = channel.session.deserialize(
            [*head, *parts[5:]], content=not oversized, copy=True
        )
    except Exception as exc:  # bad signature, replay, JSON, UTF-8, missing fields, recursion...
        raise KernelProtocolError(f"an unreadable message ({_short(exc)})") from exc
    if oversized:
        message["content"], message["oversized"] = {}, True
    fields = ("header", "parent_header", "metadata", "content")
    if not all(isinstance(message.get(name), dict) for name in fields) or not isinstance(
        message.get("msg_type"), str
    ):
        raise KernelProtocolError("a message with malformed fields")
    return message, size


async def disconnected(channel: ZMQSocketChannel) -> None:
    """Return when ``channel``'s connection to the kernel is cut.

    libzmq cuts a connection that sends a frame over ``MAXMSGSIZE`` and, as for any protocol
    error, does not reconnect: without this, the client would wait for messages that never come.
    """
    socket = channel.socket
    assert socket is not None
    monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        await monitor.recv_multipart()  # type: ignore[misc]  # an asyncio socket
    finally:
        with contextlib.suppress(zmq.ZMQError):
            socket.disable_monitor()
        monitor.close(linger=0)


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 160 else text[:157] + "..."


def parent_id(message: dict[str, Any]) -> object:
    """The ``msg_id`` of the request a message answers (None if it has none)."""
    parent = message.get("parent_header")
    return parent.get("msg_id") if isinstance(parent, dict) else None


class MessageQueue:
    """Messages waiting for their reader: at most ``max_bytes`` of them, plus small status
    messages up to ``max_items`` in all. Putting never blocks, so the kernel's sockets are
    always drained and libzmq's own buffers stay small."""

    def __init__(self, max_bytes: int, max_items: int) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._queue: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()
        self._bytes = 0
        self.current: object = None
        """The ``msg_id`` of the request being followed: output of it dropped for lack of room
        is counted in ``dropped_bytes``."""
        self.dropped_bytes = 0

    def put_message(self, message: dict[str, Any], size: int) -> bool:
        """Queue a kernel message unless there is no room; False when it was dropped."""
        small_status = message.get("msg_type") == "status" and size <= _SMALL_MESSAGE
        room = self._bytes + size <= self.max_bytes or small_status
        if not room or self._queue.qsize() >= self.max_items:
            if message.get("msg_type") in _BULK_TYPES and parent_id(message) == self.current:
                self.dropped_bytes += size
            return False
        self._bytes += size
        self._queue.put_nowait((message, size))
        return True

    def put(self, item: object) -> None:
        """Queue a notice of the client's own (a container exit, a broken channel)."""
        self._queue.put_nowait((item, 0))

    async def get(self) -> tuple[Any, int]:
        """The next item and its decoded size (0 for the client's own notices), waiting for one."""
        item, size = await self._queue.get()
        self._bytes -= size
        return item, size

    def take_dropped(self) -> int:
        """Bytes of the current request's output dropped since the last call."""
        dropped, self.dropped_bytes = self.dropped_bytes, 0
        return dropped

    def clear(self) -> None:
        """Forget everything queued (after reconnecting to a new kernel)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._bytes = 0
        self.dropped_bytes = 0


def rate_limited(log: Callable[[str], None], every: int = 1000) -> Callable[[str], None]:
    """``log`` for the first message and then every ``every``-th: a hostile sandbox must not be
    able to flood the host's logs."""
    count = 0

    def emit(text: str) -> None:
        nonlocal count
        if count % every == 0:
            log(f"{text} (occurrence {count + 1})")
        count += 1

    return emit
