"""The wire format's pure functions (no server): stream lines, bodies, paths, environment."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_computer.models import SandboxResponse, StreamEvent
from ai_computer.sdk.wire import (
    LINE_LIMIT,
    client_path,
    environment_code,
    ndjson_lines,
    response_body,
    result_value,
    sandbox_response,
)


@given(st.sampled_from(["stdout", "stderr", "error", "info"]), st.text(max_size=200_000))
def test_text_events_split_into_small_lines_that_join_back(kind: str, text: str) -> None:
    lines = list(ndjson_lines(StreamEvent(kind, text)))
    assert all(len(line) <= LINE_LIMIT and line.endswith(b"\n") for line in lines)
    events = [json.loads(line) for line in lines]
    assert {event["type"] for event in events} == {kind}
    assert "".join(event["data"] for event in events) == text


def test_worst_case_characters_still_fit() -> None:
    text = ("\x00" + "\U0001f600" + "\udc80") * 30_000  # 6, 12 and 6 bytes escaped
    lines = list(ndjson_lines(StreamEvent("stdout", text)))
    assert max(len(line) for line in lines) <= LINE_LIMIT
    assert "".join(json.loads(line)["data"] for line in lines) == text


def test_an_oversized_bundle_becomes_a_notice() -> None:
    bundle = json.dumps({"image/png": "A" * 100_000})
    (line,) = ndjson_lines(StreamEvent("display", bundle))
    event = json.loads(line)
    assert event["type"] == "info" and "does not fit in a stream line" in event["data"]
    small = json.dumps({"text/plain": "x"})
    assert json.loads(next(ndjson_lines(StreamEvent("display", small))))["data"] == small


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{'success': True}", {"success": True}),
        ("42", 42),
        ("[1, 'a', None]", [1, "a", None]),
        ("'text'", "text"),
        ("array([1, 2])", "array([1, 2])"),  # not a literal: the text
        ("{1: 2}", "{1: 2}"),  # not JSON (a key that is no string)
        ("float('nan')", "float('nan')"),
        ("(" * 500 + ")" * 500, "(" * 500 + ")" * 500),  # too deep for the parser
        ("9" * 5000, "9" * 5000),  # past int's digit limit
        (None, None),
    ],
)
def test_result_value_reads_only_literals(text: str | None, value: object) -> None:
    assert result_value(text) == value


def test_bodies_round_trip_to_the_sdks_response() -> None:
    response = SandboxResponse(False, {"output": "x", "result": "{'a': 1}"}, "E: boom")
    body = response_body(response, "sid")
    assert body["success"] is False and body["failure"] == "E: boom"
    assert body["result"] == {"a": 1} and body["sandbox_id"] == "sid"
    assert sandbox_response(json.loads(json.dumps(body))) == response


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("/workspace/a.txt", "/workspace/a.txt"),
        ("/workspace", "/workspace"),
        ("/out.csv", "out.csv"),  # the original client's "/" before a relative path
        ("sub/x", "sub/x"),
        ("/", "."),
        ("/etc/passwd", "etc/passwd"),  # under /workspace: nothing of the host's or image's
        ("/workspace/../etc", "workspace/../etc"),  # sandbox_path then refuses the '..'
    ],
)
def test_client_paths_land_under_the_workspace(given_path: str, expected: str) -> None:
    assert client_path(given_path) == expected


def test_download_paths_are_decoded_twice() -> None:
    assert client_path("%2Fd%C3%A4%20x.txt", unquote_again=True) == "dä x.txt"


def test_environment_code_takes_only_names_and_strings() -> None:
    setting, restoring = environment_code({"GREETING": "hi'; import os #"})
    assert "'hi\\'; import os #'" in setting or '"hi\'; import os #"' in setting
    namespace: dict[str, object] = {}
    exec(setting, namespace)
    import os

    try:
        assert os.environ["GREETING"] == "hi'; import os #"
    finally:
        exec(restoring, namespace)
    assert "GREETING" not in os.environ
    for bad in ({"1X": "a"}, {"A B": "a"}, {"A": "a\0"}, {f"V{i}": "" for i in range(65)}):
        with pytest.raises(ValueError):
            environment_code(bad)


def test_the_completed_event_is_never_dropped() -> None:
    summary = json.dumps({"success": False, "error": "E: " + "x" * 200_000, "execution_count": 3})
    (line,) = ndjson_lines(StreamEvent("completed", summary))
    event = json.loads(line)
    assert event["type"] == "completed" and len(line) <= LINE_LIMIT
    assert json.loads(event["data"])["execution_count"] == 3
