"""Leaks: a process that owns sandboxes is killed with SIGKILL; `ai-computer gc` (and the next SDK
start, in the background) removes everything it left, and `ai-computer ps` shows what lives.
Only sandboxes whose owner is dead are ever touched: other test runs may share the engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
from sandbox_checks import leftovers

from ai_computer import SandboxClient
from ai_computer.backends.docker.sandboxes import collect_garbage, remove_sandbox
from ai_computer.backends.labels import (
    OWNER_LABEL,
    OWNER_PID_LABEL,
    SANDBOX_LABEL,
    current_owner,
    default_runtime_root,
)

OWNER_OF_TWO = """
import asyncio, sys
from ai_computer import SandboxClient

async def main():
    clients = [SandboxClient(), SandboxClient()]
    for client in clients:
        await client.setup()
    print(' '.join(client.sandbox_id for client in clients), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def watchdogs_of(pid: int) -> list[int]:
    """The pids of the watchdog processes of owner ``pid`` (backends/reaper.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ai_computer.backends.reaper" in argv and any(f"/{pid}/".encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def cli(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ai_computer", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gc_removes_everything_a_killed_process_left(docker_engine: docker.DockerClient) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_OF_TWO], stdout=subprocess.PIPE, text=True
    )
    sandbox_ids: list[str] = []
    try:
        assert owner.stdout is not None
        sandbox_ids = owner.stdout.readline().split()
        assert len(sandbox_ids) == 2
        for sandbox_id in sandbox_ids:  # a kernel and its relay (no restart yet: no holder),
            assert len(leftovers(docker_engine, sandbox_id)) == 6  # 3 volumes, a directory
        listed = cli("ps")
        assert all(f"pid {owner.pid} (running)" in line for line in listed.splitlines()
                   if line.split()[0] in sandbox_ids)  # fmt: skip
        # As when a whole cgroup is stopped at once: the owner's watchdog goes with it, and the
        # sandboxes are left for gc.
        for watchdog in watchdogs_of(owner.pid):
            os.kill(watchdog, signal.SIGKILL)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        listed = cli("ps")
        for sandbox_id in sandbox_ids:
            assert f"pid {owner.pid} (gone)" in next(
                line for line in listed.splitlines() if line.startswith(sandbox_id)
            )
        removed = cli("gc")
        assert all(f"removed {sandbox_id}" in removed for sandbox_id in sandbox_ids)
        assert [leftovers(docker_engine, sandbox_id) for sandbox_id in sandbox_ids] == [[], []]
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        for sandbox_id in sandbox_ids:
            remove_sandbox(sandbox_id)


def test_gc_leaves_live_sandboxes_alone(shared_sandbox: SandboxClient) -> None:
    assert shared_sandbox.sandbox_id not in collect_garbage(dry_run=True)
    [line] = [line for line in cli("ps").splitlines() if line.startswith(shared_sandbox.sandbox_id)]
    assert line.split()[1:6] == ["running", "runc", "512M", "1", "256M"]
    assert f"pid {os.getpid()} (running)" in line


FIRST_START = """
import asyncio
from ai_computer import SandboxClient

async def main():
    async with SandboxClient():
        await asyncio.sleep(2)  # the collection runs in a worker thread meanwhile

asyncio.run(main())
"""


def test_first_sdk_start_collects_orphans_in_the_background(
    docker_engine: docker.DockerClient,
) -> None:
    finished = subprocess.Popen(["true"])  # its pid now names no process
    finished.wait()
    here = current_owner()
    owner = f"{here.host}/{here.boot_id}/{here.pid_namespace}/{finished.pid}/0"
    sandbox_id = f"orphan-{uuid.uuid4()}"
    labels = {SANDBOX_LABEL: sandbox_id, OWNER_PID_LABEL: str(finished.pid), OWNER_LABEL: owner}
    docker_engine.volumes.create(f"ai-computer-{sandbox_id}", labels=labels)
    stale = Path(default_runtime_root()) / f"orphan-{uuid.uuid4()}"
    stale.mkdir(parents=True)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    try:
        done = subprocess.run([sys.executable, "-c", FIRST_START], timeout=60, capture_output=True)
        assert done.returncode == 0, done.stderr
        assert not docker_engine.volumes.list(filters={"label": f"{SANDBOX_LABEL}={sandbox_id}"})
        assert not stale.exists()
    finally:
        remove_sandbox(sandbox_id)
        if stale.exists():
            stale.rmdir()
