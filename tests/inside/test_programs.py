"""The programs that run inside the containers, and the client's message queue, exercised on the
host without Docker: the file tool with its root moved to a temporary directory, the command
runner as a process of its own, the relay's checks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from ai_computer.inside import file_tool, relay, source
from ai_computer.sdk.messages import MessageQueue


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(file_tool, "ROOT", str(tmp_path))
    return tmp_path


def run_tool(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, Any]:
    """The tool's main() as docker exec runs it, with its standard streams captured."""
    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, write_through=True)
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    sys.stdout, sys.stderr = stdout, err
    try:
        code = file_tool.main(["tool", *argv])
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    report = json.loads(err.getvalue()) if err.getvalue() else None
    return code, out.getvalue(), report


def framed(*chunks: bytes, end: bool = True) -> bytes:
    body = b"".join(len(chunk).to_bytes(8, "big") + chunk for chunk in chunks)
    return body + (b"\0" * 8 if end else b"")


def hexed(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").hex()


def test_a_framed_upload_is_written_only_when_complete(root: Path) -> None:
    code, out, _ = run_tool(["write", hexed("a/b.txt")], framed(b"hello ", b"world"))
    assert code == 0 and json.loads(out) == {"path": f"{root}/a/b.txt", "size": 11}
    assert (root / "a" / "b.txt").read_bytes() == b"hello world"
    code, _, report = run_tool(["write", hexed("a/b.txt")], framed(b"cut", end=False))
    assert code == 1 and report["kind"] == "incomplete"
    assert (root / "a" / "b.txt").read_bytes() == b"hello world"  # the old content stays
    assert sorted(p.name for p in (root / "a").iterdir()) == ["b.txt"]  # no partial file


def test_symlinks_sparse_and_oversized_files_are_refused(root: Path) -> None:
    (root / "real.txt").write_bytes(b"x" * 100)
    (root / "link").symlink_to("/etc/passwd")
    with open(root / "sparse", "wb") as sparse:
        sparse.truncate(1 << 40)
    assert run_tool(["read", hexed("link"), "1000"])[2]["kind"] == "symlink"
    assert run_tool(["read", hexed("sparse"), str(1 << 50)])[2]["kind"] == "sparse"
    assert run_tool(["read", hexed("real.txt"), "10"])[2]["kind"] == "too_large"
    code, out, _ = run_tool(["read", hexed("real.txt"), "1000"])
    assert code == 0 and out == b"x" * 100
    assert run_tool(["read", hexed("../outside"), "1000"])[2]["kind"] == "outside"


def test_names_that_are_not_utf8_round_trip(root: Path) -> None:
    (root / os.fsdecode(b"bad-\xff")).write_bytes(b"raw")
    _, out, _ = run_tool(["list", hexed("")])
    names = [entry["name"] for entry in json.loads(out)["entries"]]
    assert names == ["bad-\udcff"]
    assert run_tool(["read", hexed(names[0]), "10"])[1] == b"raw"


def test_a_listing_stops_and_says_so(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_tool, "MAX_ENTRIES", 5)
    for index in range(12):
        (root / f"f{index}").touch()
    listing = json.loads(run_tool(["list", hexed("")])[1])
    assert listing["truncated"] is True and len(listing["entries"]) == 5


def test_the_command_runner_ends_every_descendant() -> None:
    marker = f"ai-computer-runner-test-{os.getpid()}"
    command = f"setsid sh -c 'exec -a {marker} sleep 60' & sleep 60"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", source("command_runner.py"), "1", "1", "--",
         "sh", "-c", command],
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 124 and time.monotonic() - started < 10
    time.sleep(0.2)
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert survivors.stdout == "", survivors.stdout


def test_the_relay_refuses_many_parts_and_big_messages() -> None:
    assert relay._problem([b"x"] * (relay.MAX_PARTS + 1), 1 << 20) == (
        f"a message of {relay.MAX_PARTS + 1} parts"
    )
    assert relay._problem([b"x" * 100], 50) == "a message of 100 bytes (the limit is 50)"
    assert relay._problem([b"x"] * 5, 1 << 20) is None


def _message(msg_type: str, parent: str = "run") -> dict[str, Any]:
    return {"msg_type": msg_type, "parent_header": {"msg_id": parent}}


def test_the_queue_drops_output_past_its_budget_and_counts_it() -> None:
    queue = MessageQueue(max_bytes=1000, max_items=10)
    queue.current = "run"
    assert queue.put_message(_message("stream"), 800)
    assert not queue.put_message(_message("stream"), 800)  # over the byte budget: dropped
    assert not queue.put_message(_message("stream", parent="other"), 800)
    assert queue.take_dropped() == 800  # only the current request's output is counted
    assert queue.put_message(_message("status"), 100)  # small status messages still pass
    while queue.put_message(_message("status"), 10):  # 10 items in all ...
        pass
    assert queue._queue.qsize() == 10
    assert not queue.put_message(_message("status"), 10)  # ... and no more


async def test_the_queue_gives_back_sizes_and_room() -> None:
    queue = MessageQueue(max_bytes=1000, max_items=10)
    queue.put_message(_message("stream"), 900)
    item, size = await queue.get()
    assert item["msg_type"] == "stream" and size == 900
    assert queue.put_message(_message("stream"), 900)  # the room came back


def test_mkdir_and_disk(root: Path) -> None:
    code, out, _ = run_tool(["mkdir", hexed("a/b")])
    assert code == 0 and json.loads(out) == {"path": f"{root}/a/b", "created": True}
    assert (root / "a" / "b").is_dir()
    assert run_tool(["mkdir", hexed("a/b")])[2]["kind"] == "exists"
    (root / "link").symlink_to(root / "a")
    assert run_tool(["mkdir", hexed("link/c")])[2]["kind"] == "symlink"
    assert not (root / "a" / "c").exists()
    code, out, _ = run_tool(["disk", hexed("")])
    disk = json.loads(out)
    assert code == 0 and 0 <= disk["used"] <= disk["size"]


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o644
    return info


def test_extract_unpacks_folders_and_files_only_and_stays_inside(root: Path) -> None:
    archive = _tar((_member("sub", tarfile.DIRTYPE), b""), (_member("sub/a.csv"), b"x,y\n"))
    code, out, _ = run_tool(["extract", hexed("")], framed(archive))
    assert code == 0 and json.loads(out)["files"] == 1
    assert (root / "sub" / "a.csv").read_bytes() == b"x,y\n"
    for bad, kind in (
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "not_regular"),
        (_member("hard", tarfile.LNKTYPE, "sub/a.csv"), "not_regular"),
        (_member("../escape.txt"), "outside"),
        (_member("/etc/escape.txt"), None),  # an absolute name lands below the folder
    ):
        code, _, report = run_tool(["extract", hexed("")], framed(_tar((bad, b"data"))))
        if kind is None:
            assert code == 0 and (root / "etc" / "escape.txt").read_bytes() == b"data"
        else:
            assert code == 1 and report["kind"] == kind, report
    assert not (root.parent / "escape.txt").exists() and not (root / "link").exists()
    (root / "planted").symlink_to("/tmp")
    code, _, report = run_tool(["extract", hexed("")], framed(_tar((_member("planted/x"), b"1"))))
    assert code == 1 and report["kind"] == "symlink"
    code, _, report = run_tool(["extract", hexed("")], framed(archive, end=False))
    assert code == 1 and report["kind"] == "incomplete"
    code, _, report = run_tool(["extract", hexed("")], framed(b"not a tar archive" * 100))
    assert code == 1 and report["kind"] == "invalid"
