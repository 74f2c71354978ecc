"""Property tests for every parser of untrusted input: package specs and paths from an agent,
messages, listings and MIME bundles from a sandbox. Seeded (derandomized) and short."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from ai_computer.inside import file_tool
from ai_computer.kernel.startup import CHANGED_FILES_LIMIT
from ai_computer.sdk.execution import ExecutionRecord, changed_files
from ai_computer.sdk.files import sandbox_path
from ai_computer.sdk.messages import CONTAINER_COST, decoded_size
from ai_computer.sdk.packages import check_specifier

FUZZ = settings(derandomize=True, max_examples=300, deadline=None)
HOSTILE_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019._-[],<>=!~*@:/\\%#; \"'$\n\x00\u00e9")),
    max_size=40,
)


@FUZZ
@given(
    st.one_of(
        HOSTILE_TEXT, st.from_regex(r"[a-z][a-z0-9._-]{0,20}(\[[a-z,]+\])?([<>=!~]=?[0-9.*]+)?")
    )
)
def test_an_accepted_package_spec_is_only_a_name_extras_and_versions(spec: str) -> None:
    try:
        normalized = check_specifier(spec)
    except ValueError as exc:
        assert "is not" in str(exc) and "tabulate" in str(exc)
        return
    assert not re.search(r"[:/\\%#@;\"'$\s\x00]", normalized), normalized
    assert not normalized.startswith("-")
    requirement = Requirement(normalized)
    assert requirement.url is None and requirement.marker is None


@pytest.mark.parametrize("value", [None, 3, b"tabulate", ["tabulate"], "x" * 300])
def test_package_specs_of_the_wrong_kind_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        check_specifier(value)


PATH_TEXT = st.text(alphabet=st.sampled_from(list("ab./\\\x00 \n\udcff")), max_size=30)


@FUZZ
@given(PATH_TEXT, st.one_of(st.none(), PATH_TEXT))
def test_host_side_paths_stay_in_the_workspace(path: str, directory: str | None) -> None:
    try:
        result = sandbox_path(path, directory or None)
    except ValueError:
        return
    assert result == "/workspace" or result.startswith("/workspace/")
    assert "/../" not in result + "/"


@FUZZ
@given(PATH_TEXT)
def test_tool_side_paths_stay_in_the_workspace(path: str) -> None:
    try:
        parts = file_tool.relative_parts(path)
    except file_tool.Refused:
        return
    assert all(part not in ("", ".", "..") and "/" not in part for part in parts)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.text(alphabet=st.sampled_from(list("a\u00e9\u4e2d\U0001f600")), max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=6)
    ),
    max_leaves=60,
)


def _deep_size(value: Any) -> int:
    size = sys.getsizeof(value)
    if isinstance(value, list):
        size += sum(_deep_size(item) for item in value)
    elif isinstance(value, dict):
        size += sum(_deep_size(k) + _deep_size(v) for k, v in value.items())
    return size


@FUZZ
@given(JSON_VALUES, st.booleans())
def test_decoded_size_bounds_what_json_takes(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    limit = 1 << 30
    estimate = decoded_size(text, limit)
    # Every object counted once (shared ones, e.g. small ints, are counted each time here).
    assert estimate >= _deep_size(json.loads(text)) - 100, (text, estimate)
    # And the precise pass (past a small limit) still bounds it, or says it is past the limit.
    small = decoded_size(text, 64)
    assert small > 64 or small >= _deep_size(json.loads(text)) - 100


def test_a_list_bomb_is_measured_before_it_is_decoded() -> None:
    bomb = b"[" + b"[]," * 1_000_000 + b"[]]"
    assert decoded_size(bomb, 8 << 20) >= 1_000_000 * CONTAINER_COST
    text_with_commas = json.dumps({"name": "stdout", "text": "1,2,3:[{" * 100_000}).encode()
    assert decoded_size(text_with_commas, 8 << 20) < 2 * len(text_with_commas)
    # One character past U+FFFF makes every character of its string take 4 bytes.
    wide = json.dumps({"text": "a" * 1_000_000 + "\U0001f600"}, ensure_ascii=False).encode()
    assert decoded_size(wide, 1 << 30) >= sys.getsizeof(json.loads(wide)["text"])


@FUZZ
@given(st.one_of(st.text(max_size=50), JSON_VALUES.map(json.dumps)))
def test_changed_files_listings_are_parsed_safely(text: str) -> None:
    files = changed_files(text)
    assert files is None or all(
        set(entry) == {"path", "size"}
        and entry["path"].startswith("/workspace/")
        and isinstance(entry["size"], int)
        for entry in files
    )


def test_changed_files_refuses_huge_or_python_only_text() -> None:
    assert changed_files("[" + "[]," * 1_000_000 + "[]]") is None  # over the cap, unparsed
    assert changed_files("['/workspace/a']") is None  # a Python literal is not JSON
    many = json.dumps([{"path": f"/workspace/{i}", "size": i} for i in range(3000)])
    assert len(changed_files(many) or []) == CHANGED_FILES_LIMIT
    assert changed_files(json.dumps([{"path": "/etc/shadow", "size": 1}])) == []


@FUZZ
@given(
    st.sampled_from(["stream", "display_data", "execute_result", "error", "status", "other"]),
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "text",
                "data",
                "ename",
                "evalue",
                "traceback",
                "execution_state",
                "execution_count",
            ]
        ),
        JSON_VALUES,
    ),
    st.integers(min_value=0, max_value=1 << 30),
)
def test_any_message_content_is_recorded_within_the_cap(
    msg_type: str, content: dict[str, Any], size: int
) -> None:
    record = ExecutionRecord(output_limit=1024)
    for _ in range(3):
        record.apply(msg_type, content, size)
    response = record.response()
    assert record.kept_bytes <= 1024
    assert isinstance(response.data["output"], str)


def test_paths_that_are_not_file_names_are_refused() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        sandbox_path("bad-\ud800")
    assert sandbox_path("bad-\udcff") == "/workspace/bad-\udcff"  # a byte that is not UTF-8


# -- message intake: whatever frames arrive, receive() returns a checked message or refuses ----


class _Channel:
    """What receive() uses of a jupyter_client channel: its socket and its session."""

    def __init__(self, socket: Any, session: Any) -> None:
        self.socket = socket
        self.session = session


FRAME = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"<IDS|MSG>", b"{}", b"[]", b'{"msg_id": "x", "msg_type": "stream"}']),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.lists(FRAME, min_size=1, max_size=8), st.booleans())
def test_message_intake_never_fails_unexpectedly(frames: list[bytes], signed: bool) -> None:
    import asyncio

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    from ai_computer.sdk.messages import KernelProtocolError, receive

    async def scenario() -> None:
        context = zmq.asyncio.Context()
        sender, reader = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        sender.bind("inproc://intake")
        reader.connect("inproc://intake")
        session = Session(key=b"secret")
        try:
            parts = list(frames)
            if signed and len(parts) >= 5:  # a correctly signed message with fuzzed parts
                parts = [b"<IDS|MSG>", session.sign(parts[:4]), *parts[:4], *parts[4:]]
            await sender.send_multipart(parts)
            try:
                message, size = await receive(_Channel(reader, session), 1 << 20)
            except KernelProtocolError:
                return
            assert isinstance(message["header"], dict) and isinstance(message["content"], dict)
            assert isinstance(message["msg_type"], str) and size >= 0
        finally:
            sender.close(linger=0)
            reader.close(linger=0)
            context.term()

    asyncio.run(scenario())
