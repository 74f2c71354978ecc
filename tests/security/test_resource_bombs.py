"""Cases 1, 2, 4 and 5: fork and thread bombs, memory bombs, CPU hogs, catastrophic regexes and
code that ignores signals. Each is stopped by a limit and reported plainly; the sandbox goes on."""

from __future__ import annotations

import ast
import asyncio
import os
import time
from textwrap import dedent

import pytest
from sandbox_checks import still_works

from ai_computer import SandboxClient
from ai_computer.backends.docker.specs import gvisor_pids_limit


def host_process_count() -> int:
    return sum(name.isdigit() for name in os.listdir("/proc"))


async def test_fork_bomb_is_stopped_by_the_pids_limit(hostile: SandboxClient) -> None:
    code = dedent("""
        import os, signal, subprocess, time
        bomb = subprocess.Popen(['bash', '-c', 'b() { b | b & }; b'], stderr=subprocess.DEVNULL)
        time.sleep(3)
        v2 = os.path.exists('/sys/fs/cgroup/cgroup.controllers')  # cgroup v2, else v1's pids
        base = '/sys/fs/cgroup/' if v2 else '/sys/fs/cgroup/pids/'
        read = lambda name: open(base + name).read().split()[-1]
        print('peak', read('pids.current'), 'refused', read('pids.events'))
        for _ in range(50):  # the bomb forks while it is being killed: repeat until it is gone
            try:
                os.kill(-1, signal.SIGKILL)  # every process but init and this kernel
            except ProcessLookupError:
                pass
            time.sleep(0.05)
            if int(read('pids.current')) < 16:
                break
        bomb.wait()
        int(read('pids.current'))
    """)
    before = host_process_count()
    peak_on_host = before
    execution = asyncio.ensure_future(hostile.execute_code(code, timeout=60))
    while not execution.done():
        peak_on_host = max(peak_on_host, host_process_count())
        await asyncio.sleep(0.1)
    response = execution.result()
    if hostile.runtime == "gvisor":
        # gVisor has no pids cgroup inside, and each process costs memory in its own kernel:
        # at 256M the bomb meets the memory limit first, reported as such, or RLIMIT_NPROC.
        assert response.success or response.error == (
            "killed: memory limit 256M exceeded; restarted (variables lost, files in "
            "/workspace kept)"
        ), response.error
        # On the host: gVisor's own threads, within the cgroup's bound for them.
        assert peak_on_host - before < gvisor_pids_limit(256)
        await still_works(hostile)
        return
    assert response.success, response.error
    peak, refused = response.data["output"].split()[1::2]
    assert int(peak) >= 250 and int(refused) > 0, response.data["output"]
    assert int(response.data["result"]) < 16
    assert peak_on_host - before < 256 + 64  # the bomb's processes, and nothing beyond
    await still_works(hostile)


async def test_thread_bomb_is_stopped_by_the_pids_limit(hostile: SandboxClient) -> None:
    code = dedent("""
        import threading
        release = threading.Event()
        threads = []
        try:
            for _ in range(10_000):
                thread = threading.Thread(target=release.wait)
                thread.start()
                threads.append(thread)
        except RuntimeError as exc:
            print('refused:', exc)
        release.set()
        for thread in threads:
            thread.join()
        len(threads)
    """)
    response = await hostile.execute_code(code, timeout=60)
    assert "refused: can't start new thread" in response.data["output"], response
    assert 100 < int(response.data["result"]) < 256
    await still_works(hostile)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("hog = b'x' * 10**9", id="one-big-allocation"),
        pytest.param("hog = []\nwhile True:\n    hog.append(bytearray(4096))", id="many-small"),
    ],
)
async def test_memory_bomb_is_reported_as_the_memory_limit(
    hostile: SandboxClient, code: str
) -> None:
    await hostile.execute_code("open('survivor.txt', 'w').write('kept')")
    response = await hostile.execute_code(code)
    assert not response.success
    assert response.error == (
        "killed: memory limit 256M exceeded; restarted (variables lost, files in /workspace kept)"
    )
    kept = await hostile.execute_code("open('survivor.txt').read()")
    assert kept.data["result"] == "'kept'"
    await still_works(hostile)


async def test_cpu_hog_is_interrupted_at_the_timeout(hostile: SandboxClient) -> None:
    await hostile.execute_code("kept = 'yes'")
    started = time.monotonic()
    response = await hostile.execute_code(
        "print('working', flush=True)\nwhile True:\n    pass", timeout=2
    )
    elapsed = time.monotonic() - started
    assert not response.success
    assert response.error == "execution timed out after 2 s"
    assert response.data["output"] == "working\n"
    assert elapsed < 2 + hostile.interrupt_grace + 1
    # An interrupt is enough here: the kernel and its variables are still there.
    assert (await hostile.execute_code("kept")).data["result"] == "'yes'"


async def test_catastrophic_regex_is_stopped_at_the_timeout(hostile: SandboxClient) -> None:
    # Python's regex engine checks for signals (3.11+): the interrupt is enough.
    started = time.monotonic()
    response = await hostile.execute_code("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", 2)
    assert response.error == "execution timed out after 2 s"
    assert time.monotonic() - started < 2 + hostile.interrupt_grace + 1
    await still_works(hostile)


async def test_uninterruptible_c_loop_is_killed_and_restarted(hostile: SandboxClient) -> None:
    # sum() over a range runs in C and never looks at signals: only the kill stops it.
    started = time.monotonic()
    response = await hostile.execute_code("sum(range(10**15))", timeout=2)
    elapsed = time.monotonic() - started
    assert response.error == (
        "execution timed out after 2 s; restarted (variables lost, files in /workspace kept)"
    )
    assert "ignored the interrupt" in response.data["notices"][0]
    assert elapsed < 2 + hostile.interrupt_grace + 5, elapsed
    await still_works(hostile)


async def test_code_ignoring_sigint_and_sigterm_is_killed_within_bounds(
    hostile: SandboxClient,
) -> None:
    await hostile.execute_code("open('survivor.txt', 'w').write('kept'); lost = 1")
    code = dedent("""
        import signal, subprocess
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        # a child that ignores them too, and would keep the CPU busy after the kernel is gone
        subprocess.Popen(['bash', '-c', 'trap "" INT TERM; while :; do :; done'])
        while True:
            pass
    """)
    started = time.monotonic()
    response = await hostile.execute_code(code, timeout=2)
    elapsed = time.monotonic() - started
    assert not response.success
    assert response.error == (
        "execution timed out after 2 s; restarted (variables lost, files in /workspace kept)"
    )
    assert "ignored the interrupt" in response.data["notices"][0]
    # timeout + interrupt grace + kill and restart (measured: about 0.6 s)
    assert elapsed < 2 + hostile.interrupt_grace + 5, elapsed
    after = await hostile.execute_code(
        "import os\n(open('survivor.txt').read(), 'lost' in globals(), "
        "sum(1 for p in os.listdir('/proc') if p.isdigit()))"
    )
    kept, lost, processes = ast.literal_eval(after.data["result"])
    assert (kept, lost) == ("kept", False)
    assert processes <= 3  # init and the new kernel: the busy child died with the old container
    await still_works(hostile)
