"""Benchmark: many sandboxes at once, each running many executions with output.

    .venv/bin/python benchmarks/bench_load.py [--sandboxes 20] [--executions 50]

Checks that every output arrives complete and in order and that nothing crosses between
sandboxes, then prints the wall time, the SDK process's peak memory, the sandboxes' peak memory
(their cgroups) and the host's peak memory in use. Not a test: the suite runs a smaller version
(tests/security/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import threading
import time

from ai_computer import SandboxClient

CELL = "for line in range(3):\n    print({tag!r}, line, 'x' * 200)\n{tag!r}"
PEAK_CGROUP = "int(open('/sys/fs/cgroup/memory/memory.max_usage_in_bytes').read())"


def host_memory_in_use() -> int:
    info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    kib = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
    return kib * 1024


async def run_one(client: SandboxClient, index: int, executions: int) -> tuple[list[str], int]:
    problems = []
    for execution in range(executions):
        tag = f"sandbox-{index}-execution-{execution}"
        response = await client.execute_code(CELL.format(tag=tag), timeout=120)
        want = "".join(f"{tag} {line} {'x' * 200}\n" for line in range(3))
        if not response.success or response.data["output"] != want:
            problems.append(f"{tag}: {response.error!r} {response.data['output'][:100]!r}")
    peak = await client.execute_code(PEAK_CGROUP)
    return problems, int(peak.data["result"])


async def main(sandboxes: int, executions: int) -> None:
    baseline = host_memory_in_use()
    host_peak = baseline
    sampling = True

    def sample() -> None:
        nonlocal host_peak
        while sampling:
            host_peak = max(host_peak, host_memory_in_use())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clients = [SandboxClient(memory_limit="256M", cpu_limit=0.5) for _ in range(sandboxes)]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client.setup() for client in clients))
        ready = time.perf_counter()
        results = await asyncio.gather(
            *(run_one(client, index, executions) for index, client in enumerate(clients))
        )
        executed = time.perf_counter()
    finally:
        await asyncio.gather(*(client.cleanup() for client in clients))
    ended = time.perf_counter()
    sampling = False
    problems = [problem for found, _ in results for problem in found]
    mib = 1024 * 1024
    print(f"{sandboxes} sandboxes x {executions} executions, 3 lines of output each")
    print(f"  problems (missing, out of order, crossed): {len(problems)}")
    for problem in problems[:10]:
        print(f"    {problem}")
    print(
        f"  wall time: {ended - started:.1f} s (start {ready - started:.1f} s, "
        f"executions {executed - ready:.1f} s, clean-up {ended - executed:.1f} s)"
    )
    print(
        f"  executions per second, all sandboxes: {sandboxes * executions / (executed - ready):.0f}"
    )
    peak_sdk = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"  peak memory of the SDK process: {peak_sdk / mib:.0f} MiB")
    peaks = [peak for _, peak in results]
    print(
        f"  peak memory of the sandboxes: {sum(peaks) / mib:.0f} MiB in all, "
        f"{max(peaks) / mib:.0f} MiB the largest"
    )
    print(
        f"  host memory in use: peak {(host_peak - baseline) / mib:.0f} MiB above the "
        f"{baseline / mib:.0f} MiB before"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=20)
    parser.add_argument("--executions", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sandboxes, arguments.executions))
