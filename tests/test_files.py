"""File operations against a real sandbox: round trips, errors, and confinement attacks."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from textwrap import dedent

import pytest

from ai_computer import FileOperationResponse, SandboxClient


async def test_text_and_bytes_round_trip(shared_sandbox: SandboxClient) -> None:
    written = await shared_sandbox.fs.write_file("notes/deep/er/hello.txt", "héllo\n")
    assert written.success, written.error
    assert written.data == {"path": "/workspace/notes/deep/er/hello.txt", "size": 7}
    read = await shared_sandbox.fs.read_file("/workspace/notes/deep/er/hello.txt")
    assert read.data["content"] == "héllo\n"
    payload = bytes(range(256)) * 10
    uploaded = await shared_sandbox.upload_bytes(payload, "blob.bin", destination="notes")
    assert uploaded.success and uploaded.size == len(payload) and uploaded.filename == "blob.bin"
    assert await shared_sandbox.download_bytes("notes/blob.bin") == payload
    from_file_object = await shared_sandbox.upload_bytes(io.BytesIO(b"stream"), "s.bin")
    assert from_file_object.success
    seen = await shared_sandbox.execute_code("open('/workspace/s.bin', 'rb').read()")
    assert seen.data["result"] == "b'stream'"


async def test_list_and_remove(shared_sandbox: SandboxClient) -> None:
    await shared_sandbox.fs.write_file("tree/a.txt", "a")
    await shared_sandbox.fs.write_file("tree/sub/b.txt", "bb")
    listing = await shared_sandbox.fs.list("tree")
    assert [(e["name"], e["type"], e["size"]) for e in listing.data["entries"]][:1] == [
        ("a.txt", "file", 1)
    ]
    assert [e["name"] for e in listing.data["entries"]] == ["a.txt", "sub"]
    assert (await shared_sandbox.fs.remove("tree")).success
    missing = await shared_sandbox.fs.list("tree")
    assert not missing.success and "No such file or directory" in missing.error


async def test_large_file_round_trip_streams(shared_sandbox: SandboxClient, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        for _ in range(100):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            handle.write(chunk)
    uploaded = await shared_sandbox.upload_file(source, "/workspace/big")
    assert uploaded.success and uploaded.size == 100 << 20
    assert uploaded.path == "/workspace/big/big.bin"
    target = tmp_path / "back.bin"
    downloaded = await shared_sandbox.download_file("big/big.bin", target)
    assert downloaded.success and downloaded.size == 100 << 20
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest.hexdigest()
    assert (await shared_sandbox.fs.remove("big")).success


async def test_missing_files_are_clear_errors(
    shared_sandbox: SandboxClient, tmp_path: Path
) -> None:
    missing = await shared_sandbox.download_bytes("nope.txt")
    assert isinstance(missing, FileOperationResponse) and not missing.success
    assert missing.error == "'/workspace/nope.txt': No such file or directory"
    downloaded = await shared_sandbox.download_file("nope.txt", tmp_path / "nope.txt")
    assert not downloaded.success and not (tmp_path / "nope.txt").exists()
    assert os.listdir(tmp_path) == []  # no partial file left behind
    local_missing = await shared_sandbox.upload_file(tmp_path / "absent.bin")
    assert not local_missing.success and "No such file" in local_missing.error


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../etc/shadow", "/workspace/../root"]
)
async def test_paths_outside_the_workspace_are_refused(
    shared_sandbox: SandboxClient, path: str
) -> None:
    for response in (
        await shared_sandbox.download_bytes(path),
        await shared_sandbox.upload_bytes(b"x", "x", destination=path),
    ):
        assert isinstance(response, FileOperationResponse) and not response.success
        assert "outside the sandbox's /workspace" in response.error
    written = await shared_sandbox.fs.write_file(path, "x")
    assert not written.success and "outside" in written.error


async def test_symlinks_planted_by_sandbox_code_are_refused(
    shared_sandbox: SandboxClient, tmp_path: Path
) -> None:
    canary = tmp_path / "host-canary.txt"
    canary.write_text("host secret")
    code = dedent(f"""
        import os
        os.makedirs('links', exist_ok=True)
        os.symlink({str(canary)!r}, 'links/to-host-file')
        os.symlink('/etc/passwd', 'links/to-container-file')
        os.symlink('/etc', 'links/to-dir')
        os.mkfifo('links/fifo')
    """)
    assert (await shared_sandbox.execute_code(code)).success
    for path, reason in [
        ("links/to-host-file", "is a symlink"),
        ("links/to-container-file", "is a symlink"),
        ("links/to-dir/passwd", "'links/to-dir' is a symlink"),
        ("links/fifo", "is not a regular file"),
    ]:
        response = await shared_sandbox.download_bytes(path)
        assert isinstance(response, FileOperationResponse), path
        assert reason in response.error
    written = await shared_sandbox.fs.write_file("links/to-dir/evil", "x")
    assert not written.success and "symlink" in written.error
    # Writing over a planted link replaces the link itself; its target is untouched.
    assert (await shared_sandbox.fs.write_file("links/to-host-file", "replaced")).success
    assert canary.read_text() == "host secret"
    assert (await shared_sandbox.fs.read_file("links/to-host-file")).data["content"] == "replaced"
    removed = await shared_sandbox.fs.remove("links/to-container-file")
    assert removed.success
    check = await shared_sandbox.execute_code("open('/etc/passwd').read().startswith('root')")
    assert check.data["result"] == "True"
    assert (await shared_sandbox.fs.remove("links")).success


async def test_symlink_swap_during_transfers_never_escapes(sandbox: SandboxClient) -> None:
    """A process in the sandbox swaps a file and a directory with symlinks as fast as it can."""
    swapper = dedent("""
        import os, subprocess, sys
        script = '''
        import os
        os.makedirs('race/real', exist_ok=True)
        while True:
            for name, target in (('race/file', '/etc/passwd'), ('race/dir', '/tmp')):
                try:
                    os.symlink(target, name + '.new'); os.replace(name + '.new', name)
                except OSError:
                    pass
                try:
                    if name.endswith('file'):
                        open(name + '.tmp', 'w').write('sandbox data')
                        os.replace(name + '.tmp', name)
                    else:
                        os.makedirs(name + '.tmpd', exist_ok=True)
                        if os.path.islink(name): os.unlink(name)
                        os.replace(name + '.tmpd', name)
                except OSError:
                    pass
        '''
        process = subprocess.Popen([sys.executable, '-c', script])
        'started'
    """)
    assert (await sandbox.execute_code(swapper)).success
    outcomes = set()
    for attempt in range(40):
        content = await sandbox.download_bytes("race/file")
        if isinstance(content, bytes):
            assert content == b"sandbox data"
            outcomes.add("read")
        else:
            assert "symlink" in content.error or "No such file" in content.error, content.error
            outcomes.add("refused")
        upload = await sandbox.upload_bytes(b"uploaded", f"u{attempt}", destination="race/dir")
        outcomes.add("wrote" if upload.success else "refused-upload")
    leaked = await sandbox.execute_code("import glob; sorted(glob.glob('/tmp/u*'))")
    assert leaked.data["result"] == "[]", leaked.data
    assert "read" in outcomes or "refused" in outcomes
    await sandbox.execute_code("process.kill()")
