"""Case 13: the file API cannot be turned against the host or lead outside /workspace."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import docker
import pytest

from ai_computer import FileOperationResponse, SandboxClient


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../etc/shadow", "/workspace/../root"]
)
async def test_paths_outside_the_workspace_are_refused(walled: SandboxClient, path: str) -> None:
    for response in (
        await walled.download_bytes(path),
        await walled.upload_bytes(b"x", "x", destination=path),
    ):
        assert isinstance(response, FileOperationResponse) and not response.success
        assert "outside the sandbox's /workspace" in response.error
    written = await walled.fs.write_file(path, "x")
    assert not written.success and "outside" in written.error


async def test_symlinks_planted_by_sandbox_code_are_refused(
    walled: SandboxClient, tmp_path: Path
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
    assert (await walled.execute_code(code)).success
    for path, reason in [
        ("links/to-host-file", "is a symlink"),
        ("links/to-container-file", "is a symlink"),
        ("links/to-dir/passwd", "'links/to-dir' is a symlink"),
        ("links/fifo", "is not a regular file"),
    ]:
        response = await walled.download_bytes(path)
        assert isinstance(response, FileOperationResponse), path
        assert reason in response.error
    written = await walled.fs.write_file("links/to-dir/evil", "x")
    assert not written.success and "symlink" in written.error
    # Writing over a planted link replaces the link itself; its target is untouched.
    assert (await walled.fs.write_file("links/to-host-file", "replaced")).success
    assert canary.read_text() == "host secret"
    assert (await walled.fs.read_file("links/to-host-file")).data["content"] == "replaced"
    removed = await walled.fs.remove("links/to-container-file")
    assert removed.success
    check = await walled.execute_code("open('/etc/passwd').read().startswith('root')")
    assert check.data["result"] == "True"
    assert (await walled.fs.remove("links")).success


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


async def test_upload_into_a_full_disk_fails_cleanly(docker_engine: docker.DockerClient) -> None:
    async with SandboxClient(disk_limit="16M") as client:
        response = await client.upload_bytes(os.urandom(20 << 20), "too-big.bin")
        assert not response.success
        assert "No space left on device" in response.error
        listing = await client.fs.list("/workspace")
        assert listing.data["entries"] == []  # not even the temporary part file
        assert (await client.upload_bytes(b"small", "ok.bin")).success
        assert (await client.execute_code("1 + 1")).data["result"] == "2"
