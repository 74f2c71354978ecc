"""Benchmark: sandbox start and execute latency against a stock local ipykernel, same run.

    .venv/bin/python benchmarks/bench_sandbox.py [--starts 10] [--executes 200]

Prints p50/p90 figures and the sandbox/local ratios. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from functools import partial

from _common import percentile, restart_local_kernel, start_local_kernel, timed

from ai_computer import SandboxClient, SandboxPool


async def local_kernel_figures(starts: int, executes: int) -> tuple[list[float], list[float]]:
    start_times, execute_times = [], []
    for index in range(starts):
        started = time.perf_counter()
        km, kc = await start_local_kernel()
        start_times.append(time.perf_counter() - started)
        if index == 0:
            for _ in range(executes):
                execute_times.append(
                    await timed(partial(kc.execute_interactive, "1+1", timeout=30))
                )
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return start_times, execute_times


async def sandbox_figures(
    starts: int, executes: int
) -> tuple[list[float], list[float], list[float]]:
    start_times, execute_times, cleanup_times = [], [], []
    for index in range(starts):
        client = SandboxClient()
        start_times.append(await timed(client.setup))
        if index == 0:
            for _ in range(executes):
                execute_times.append(await timed(partial(client.execute_code, "1+1")))
        cleanup_times.append(await timed(client.cleanup))
    return start_times, execute_times, cleanup_times


async def restart_figures(restarts: int) -> tuple[list[float], list[float]]:
    """restart() of a sandbox, against a local kernel's restart_kernel() + wait_for_ready()."""
    km, kc = await start_local_kernel()
    local = [await timed(partial(restart_local_kernel, km, kc)) for _ in range(restarts)]
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    async with SandboxClient() as client:
        sandbox = [await timed(client.restart) for _ in range(restarts)]
    return local, sandbox


async def pool_figures(acquires: int) -> tuple[list[float], list[float]]:
    """A sandbox from a pool with one idle: the wait for it, and until its first result."""
    acquire_times, first_result_times = [], []
    async with SandboxPool(size=1) as pool:
        for _ in range(acquires):
            await pool.start()  # the replacement of the last one is idle again
            started = time.perf_counter()
            client = await pool.acquire()
            acquire_times.append(time.perf_counter() - started)
            await client.execute_code("1+1")
            first_result_times.append(time.perf_counter() - started)
            await client.cleanup()
    return acquire_times, first_result_times


async def sandbox_io_figures(executes: int) -> dict[str, list[float]]:
    """Costs beyond the kernel: the changed-files scan, file transfers, a package install."""
    figures: dict[str, list[float]] = {}
    payload = os.urandom(100 << 20)
    async with SandboxClient() as client:
        await client.execute_code(
            "import os\nfor i in range(1000): open(f'f{i:04}.txt', 'w').write('x')"
        )
        figures["sandbox: execute_code('1+1'), 1,000 files"] = [
            await timed(partial(client.execute_code, "1+1")) for _ in range(executes)
        ]
        figures["sandbox: upload_bytes 100 MiB"] = [
            await timed(partial(client.upload_bytes, payload, "big.bin")) for _ in range(3)
        ]
        figures["sandbox: download_bytes 100 MiB"] = [
            await timed(partial(client.download_bytes, "big.bin")) for _ in range(3)
        ]
        figures["sandbox: execute_shell('true')"] = [
            await timed(partial(client.execute_shell, "true", [])) for _ in range(20)
        ]
        figures["sandbox: install_packages(tabulate)"] = [
            await timed(partial(client.install_packages, ["tabulate"]))
        ]
    return figures


async def history_figures(executes: int) -> tuple[list[float], list[float]]:
    """execute_code('1+1') with the kernel's history in memory (as shipped) and with it off (as
    before), in alternating batches of the same run so that the machine's noise hits both."""
    from ai_computer.kernel import startup

    shipped = startup.kernel_arguments

    def history_off(message_limit: int) -> list[str]:
        return ["--HistoryManager.enabled=False", *shipped(message_limit)[1:]]

    async with SandboxClient() as with_history:
        startup.kernel_arguments = history_off
        try:
            without = SandboxClient()
            await without.setup()
        finally:
            startup.kernel_arguments = shipped
        on: list[float] = []
        off: list[float] = []
        for _ in range(max(1, executes // 20)):
            on += [await timed(partial(with_history.execute_code, "1+1")) for _ in range(20)]
            off += [await timed(partial(without.execute_code, "1+1")) for _ in range(20)]
        await without.cleanup()
    return on, off


async def cancel_figures(cancels: int) -> tuple[list[float], list[float]]:
    """From a caller's cancel to the next call's result: code that takes the interrupt, and code
    that ignores it (the kernel is restarted after interrupt_grace)."""
    stubborn = (
        "import time\nwhile True:\n    try: time.sleep(30)\n    except KeyboardInterrupt: pass"
    )

    async def after_cancel(client: SandboxClient, code: str) -> float:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.execute_code(code), 0.5)
        started = time.perf_counter()
        await client.execute_code("1+1")
        return time.perf_counter() - started

    async with SandboxClient() as client:
        soft = [await after_cancel(client, "import time; time.sleep(30)") for _ in range(cancels)]
        hard = [await after_cancel(client, stubborn) for _ in range(min(cancels, 3))]
    return soft, hard


def row(name: str, samples: list[float], baseline: list[float] | None = None) -> str:
    p50, p90 = percentile(samples, 0.5) * 1000, percentile(samples, 0.9) * 1000
    line = f"{name:<44} p50 {p50:9.2f} ms   p90 {p90:9.2f} ms   n={len(samples)}"
    if baseline:
        line += f"   x{p50 / (percentile(baseline, 0.5) * 1000):.2f} of local"
    return line


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--executes", type=int, default=200)
    args = parser.parse_args()
    # Warm both paths once (image layers, Python imports) so the figures are steady-state.
    await sandbox_figures(1, 5)
    await local_kernel_figures(1, 5)
    local_start, local_execute = await local_kernel_figures(args.starts, args.executes)
    sandbox_start, sandbox_execute, sandbox_cleanup = await sandbox_figures(
        args.starts, args.executes
    )
    print(row("local ipykernel: start + ready", local_start))
    print(row("sandbox: setup()", sandbox_start, local_start))
    print(row("local ipykernel: execute 1+1", local_execute))
    print(row("sandbox: execute_code('1+1')", sandbox_execute, local_execute))
    print(row("sandbox: cleanup()", sandbox_cleanup))
    local_restart, sandbox_restart = await restart_figures(args.starts)
    print(row("local ipykernel: restart + ready", local_restart))
    print(row("sandbox: restart()", sandbox_restart, local_restart))
    pool_acquire, pool_first_result = await pool_figures(args.starts)
    print(row("pool: acquire(), one idle", pool_acquire, local_start))
    print(row("pool: acquire() + execute_code('1+1')", pool_first_result, local_start))
    history_on, history_off = await history_figures(args.executes)
    print(row("sandbox: execute_code('1+1'), history off", history_off, local_execute))
    print(row("sandbox: execute_code('1+1'), history on", history_on, local_execute))
    soft, hard = await cancel_figures(5)
    print(row("cancel -> next result (interruptible)", soft))
    print(row("cancel -> next result (ignores SIGINT)", hard))
    for name, samples in (await sandbox_io_figures(args.executes)).items():
        print(row(name, samples))


if __name__ == "__main__":
    asyncio.run(main())
