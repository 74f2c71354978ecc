"""File operations against a real sandbox: round trips, errors, and confinement attacks."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ai_computer import FileOperationResponse, SandboxClient
from ai_computer.backends.base import ExecResult, StopTransfer
from ai_computer.errors import SandboxFileError
from ai_computer.sdk.files import FileSystem


async def test_text_and_bytes_round_trip(core_sandbox: SandboxClient) -> None:
    written = await core_sandbox.fs.write_file("notes/deep/er/hello.txt", "héllo\n")
    assert written.success, written.error
    assert written.data == {"path": "/workspace/notes/deep/er/hello.txt", "size": 7}
    read = await core_sandbox.fs.read_file("/workspace/notes/deep/er/hello.txt")
    assert read.data["content"] == "héllo\n"
    payload = bytes(range(256)) * 10
    uploaded = await core_sandbox.upload_bytes(payload, "blob.bin", destination="notes")
    assert uploaded.success and uploaded.size == len(payload) and uploaded.filename == "blob.bin"
    assert await core_sandbox.download_bytes("notes/blob.bin") == payload
    from_file_object = await core_sandbox.upload_bytes(io.BytesIO(b"stream"), "s.bin")
    assert from_file_object.success
    seen = await core_sandbox.execute_code("open('/workspace/s.bin', 'rb').read()")
    assert seen.data["result"] == "b'stream'"


async def test_list_and_remove(core_sandbox: SandboxClient) -> None:
    await core_sandbox.fs.write_file("tree/a.txt", "a")
    await core_sandbox.fs.write_file("tree/sub/b.txt", "bb")
    listing = await core_sandbox.fs.list("tree")
    assert [(e["name"], e["type"], e["size"]) for e in listing.data["entries"]][:1] == [
        ("a.txt", "file", 1)
    ]
    assert [e["name"] for e in listing.data["entries"]] == ["a.txt", "sub"]
    assert (await core_sandbox.fs.remove("tree")).success
    missing = await core_sandbox.fs.list("tree")
    assert not missing.success and "No such file or directory" in missing.error


async def test_large_file_round_trip_streams(core_sandbox: SandboxClient, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        for _ in range(100):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            handle.write(chunk)
    uploaded = await core_sandbox.upload_file(source, "/workspace/big")
    assert uploaded.success and uploaded.size == 100 << 20
    assert uploaded.path == "/workspace/big/big.bin"
    target = tmp_path / "back.bin"
    downloaded = await core_sandbox.download_file("big/big.bin", target)
    assert downloaded.success and downloaded.size == 100 << 20
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest.hexdigest()
    assert (await core_sandbox.fs.remove("big")).success


async def test_missing_files_are_clear_errors(core_sandbox: SandboxClient, tmp_path: Path) -> None:
    missing = await core_sandbox.download_bytes("nope.txt")
    assert isinstance(missing, FileOperationResponse) and not missing.success
    assert missing.error == "'/workspace/nope.txt': No such file or directory"
    downloaded = await core_sandbox.download_file("nope.txt", tmp_path / "nope.txt")
    assert not downloaded.success and not (tmp_path / "nope.txt").exists()
    assert os.listdir(tmp_path) == []  # no partial file left behind
    local_missing = await core_sandbox.upload_file(tmp_path / "absent.bin")
    assert not local_missing.success and "No such file" in local_missing.error


async def test_execute_file_runs_a_sandbox_python_file(core_sandbox: SandboxClient) -> None:
    await core_sandbox.fs.write_file("jobs/job.py", "import sys\nprint(__name__, sys.argv[0])\n")
    ran = await core_sandbox.code.execute_file("jobs/job.py")
    assert ran.success, ran.error
    assert ran.data["output"] == "__main__ /workspace/jobs/job.py\n"
    missing = await core_sandbox.code.execute_file("jobs/none.py")
    assert missing.error == "/workspace/jobs/none.py: no such file in the sandbox"
    not_python = await core_sandbox.code.execute_file("jobs/job.txt")
    assert not_python.error == "/workspace/jobs/job.txt is not a Python file (.py)"
    await core_sandbox.execute_code("import os; os.symlink('/etc/passwd', 'jobs/link.py')")
    linked = await core_sandbox.code.execute_file("jobs/link.py")
    assert linked.error == "/workspace/jobs/link.py: no such file in the sandbox"
    stat = await core_sandbox.fs.stat("jobs/job.py")
    assert stat.data == {"path": "/workspace/jobs/job.py", "size": 40}
    await core_sandbox.fs.remove("jobs")


async def test_a_download_stream_closed_early_lets_go_at_once(core_sandbox: SandboxClient) -> None:
    await core_sandbox.execute_code("open('stream.bin', 'wb').write(bytes(24 << 20))")
    chunks = core_sandbox.fs.download_stream("stream.bin")
    first = await anext(chunks)
    assert 0 < len(first) <= 1 << 20
    await asyncio.wait_for(chunks.aclose(), 10)  # the transfer stops; nothing waits for a reader
    again = await core_sandbox.download_bytes("stream.bin")
    assert isinstance(again, bytes) and len(again) == 24 << 20
    with pytest.raises(ValueError, match="outside"):
        await anext(core_sandbox.fs.download_stream("/etc/passwd"))
    outside = await core_sandbox.fs.read_file("/etc/hostname")
    assert not outside.success and "outside the sandbox's /workspace" in outside.error
    assert (await core_sandbox.fs.remove("stream.bin")).success


async def test_a_download_stream_whose_reader_stops_reading_frees_its_thread() -> None:
    # A reader that stays but takes nothing (a client that stopped reading) must not hold the
    # sandbox's worker thread for ever: past the idle timeout the transfer ends.
    ended = threading.Event()

    async def run(argv: list[str], *, on_stdout: Any = None, **options: Any) -> ExecResult:
        def endless() -> ExecResult:
            try:
                while True:
                    on_stdout(bytes(1 << 20))
            except StopTransfer:
                return ExecResult(-1, b"", b"")
            finally:
                ended.set()

        return await asyncio.to_thread(endless)

    files = FileSystem(run, max_size=1 << 40, idle_timeout=1.0)
    chunks = files.download_stream("endless.bin")
    assert len(await anext(chunks)) == 1 << 20
    started = time.monotonic()
    assert await asyncio.to_thread(ended.wait, 10), "the worker thread is still held"
    assert 1.0 <= time.monotonic() - started < 5
    with pytest.raises(SandboxFileError, match="reader took nothing for 1 s") as caught:
        async for _ in chunks:  # what was queued, then the reason
            pass
    assert caught.value.kind == "timeout" and caught.value.path == "/workspace/endless.bin"
