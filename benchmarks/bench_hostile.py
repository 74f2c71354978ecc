"""What one hostile sandbox costs the host process and a neighbouring sandbox.

    .venv/bin/python benchmarks/bench_hostile.py [CASE ...]

Cases (default: all): ``listing`` (a 12 MiB changed-files listing), ``sparse`` (a 1 PiB sparse
file, downloaded three ways), ``stop`` (the sandbox SIGSTOPs every command run in it, while 6
file calls wait), ``bombs`` (12 displays of a 13 MB ``[[], [], ...]``). Each runs in a process
of its own, while a second sandbox there runs ``1+1`` every 100 ms. Printed per case: the
process's peak RSS growth, the longest event-loop stall (a 10 ms ticker), the neighbour's
slowest ``1+1``, and how long the case took; then one JSON line with all of it
(tests/security/test_round_two.py reads it). Each case is bounded in time (90 s); the SDK
calls are those of any release, so the same script measures the code before a fix.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from textwrap import dedent
from typing import Any

from ai_computer import SandboxClient

HUGE_LISTING = dedent("""
    import sys
    class Huge:
        def __repr__(self):
            return '[' + '[],' * (4 << 20) + '[]]'
    sys.modules['_ai_computer'].changed_files_json = lambda *a, **k: Huge()
""")
STOP_EVERY_COMMAND = dedent("""
    import os, signal, threading, time
    def stop_commands():
        me = os.getpid()
        while True:
            for name in os.listdir('/proc'):
                if name.isdigit() and int(name) not in (me, 1):
                    try:
                        with open(f'/proc/{name}/cmdline', 'rb') as f:
                            if b'python3' in f.read(64):
                                os.kill(int(name), signal.SIGSTOP)
                    except OSError:
                        pass
            time.sleep(0.002)
    threading.Thread(target=stop_commands, daemon=True).start()
""")
LIST_BOMBS = dedent("""
    from IPython.display import display
    bomb = [[] for _ in range(3_200_000)]
    for _ in range(12):
        display({'application/json': bomb}, raw=True)
""")


async def listing(client: SandboxClient) -> None:
    await client.execute_code(HUGE_LISTING)
    for _ in range(2):
        await client.execute_code("open('made.txt', 'w').write('x')")


async def sparse(client: SandboxClient) -> None:
    await client.execute_code("open('/workspace/big', 'wb').truncate(1 << 50)")
    with tempfile.TemporaryDirectory() as folder:
        await client.download_file("big", f"{folder}/big")
    await client.download_bytes("big")
    await client.fs.read_file("big")


async def stop(client: SandboxClient) -> None:
    await client.fs.write_file("a.txt", "a")
    client.fs.idle_timeout = 2.0  # type: ignore[misc]  # a release without it ignores this
    await client.execute_code(STOP_EVERY_COMMAND)
    await asyncio.gather(*(client.fs.read_file("a.txt") for _ in range(6)))


async def bombs(client: SandboxClient) -> None:
    await client.execute_code(LIST_BOMBS, timeout=60)


CASES: dict[str, Callable[[SandboxClient], Awaitable[None]]] = {
    "listing": listing,
    "sparse": sparse,
    "stop": stop,
    "bombs": bombs,
}


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def run_case(name: str, neighbour: SandboxClient) -> dict[str, Any]:
    stalls: list[float] = [0.0]
    latencies: list[float] = [0.0]
    running = True

    async def tick() -> None:
        while running:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            stalls.append(time.monotonic() - before - 0.01)

    async def next_door() -> None:
        while running:
            before = time.monotonic()
            await neighbour.execute_code("1+1", timeout=30)
            latencies.append(time.monotonic() - before)
            await asyncio.sleep(0.1)

    helpers = [asyncio.create_task(tick()), asyncio.create_task(next_door())]
    baseline = _rss()
    started = time.monotonic()
    outcome = "done"
    async with SandboxClient(memory_limit="2G", timeout=60, interrupt_grace=2) as client:
        try:
            await asyncio.wait_for(CASES[name](client), 90)
        except TimeoutError:
            outcome = "gave up after 90 s"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"[:200]
        seconds = time.monotonic() - started
        running = False
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "case": name,
        "outcome": outcome,
        "seconds": round(seconds, 2),
        "peak_growth": max(peak - baseline, 0),
        "longest_stall": round(max(stalls), 3),
        "neighbour_slowest": round(max(latencies), 3),
    }


async def measure(name: str) -> dict[str, Any]:
    async with SandboxClient(timeout=30) as neighbour:
        return await run_case(name, neighbour)


def main(names: list[str]) -> None:
    """Each case in a process of its own, so that its peak memory is its own."""
    results = []
    for name in names:
        done = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            sys.exit(f"case {name} failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{name:8} {result['seconds']:6.1f} s  peak RSS +{result['peak_growth'] >> 20:5d} MiB"
            f"  longest loop stall {result['longest_stall']:6.3f} s  neighbour's slowest 1+1 "
            f"{result['neighbour_slowest']:6.3f} s  ({result['outcome']})",
            file=sys.stderr,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(asyncio.run(measure(sys.argv[2]))))
        sys.exit(0)
    chosen = sys.argv[1:] or list(CASES)
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    main(chosen)
