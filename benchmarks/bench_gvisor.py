"""Benchmark: the same sandbox under runc and under gVisor, side by side in one run.

    .venv/bin/python benchmarks/bench_gvisor.py [--starts 5] [--executes 100]

Prints p50/p90 of setup(), execute_code("1+1"), an execute_code running
subprocess.run(["true"]), and the wall time of a numpy workload of about a second under runc,
with the gVisor/runc ratios. Runtimes alternate, so both see the same machine. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial

from _common import percentile, timed

from ai_computer import SandboxClient

SUBPROCESS = "import subprocess; subprocess.run(['true'])"
NUMPY = (
    "import numpy as np, time\n"
    "a = np.random.default_rng(0).random((400, 400))\n"
    "for _ in range(320):\n"
    "    a = (a @ a) / 400\n"
)


async def main(starts: int, executes: int) -> None:
    figures: dict[str, dict[str, list[float]]] = {
        runtime: {"setup": [], "1+1": [], "subprocess": [], "numpy": []}
        for runtime in ("runc", "gvisor")
    }
    for _ in range(starts):
        for runtime in ("runc", "gvisor"):
            client = SandboxClient(runtime=runtime, memory_limit="1G", timeout=120)
            figures[runtime]["setup"].append(await timed(client.setup))
            await client.cleanup()
    clients = {runtime: SandboxClient(runtime=runtime, memory_limit="1G", timeout=120)
               for runtime in ("runc", "gvisor")}  # fmt: skip
    for client in clients.values():
        await client.setup()
        await client.execute_code("import numpy, subprocess")
    try:
        for _ in range(executes):
            for runtime, client in clients.items():
                figures[runtime]["1+1"].append(await timed(partial(client.execute_code, "1+1")))
        for _ in range(max(executes // 5, 5)):
            for runtime, client in clients.items():
                figures[runtime]["subprocess"].append(
                    await timed(partial(client.execute_code, SUBPROCESS))
                )
        for _ in range(3):
            for runtime, client in clients.items():
                figures[runtime]["numpy"].append(await timed(partial(client.execute_code, NUMPY)))
    finally:
        for client in clients.values():
            await client.cleanup()
    print(f"{'':<34}{'runc p50':>10}{'gVisor p50':>12}{'runc p90':>10}{'gVisor p90':>12}  ratio")
    for name, label in (
        ("setup", "setup()"),
        ("1+1", 'execute_code("1+1")'),
        ("subprocess", "subprocess.run(['true']) cell"),
        ("numpy", "numpy matmul workload (wall)"),
    ):
        runc, gvisor = figures["runc"][name], figures["gvisor"][name]
        runc50, gvisor50 = percentile(runc, 0.5) * 1000, percentile(gvisor, 0.5) * 1000
        runc90, gvisor90 = percentile(runc, 0.9) * 1000, percentile(gvisor, 0.9) * 1000
        print(
            f"{label:<34}{runc50:>8.1f}ms{gvisor50:>10.1f}ms{runc90:>8.1f}ms{gvisor90:>10.1f}ms"
            f"  x{gvisor50 / runc50:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--executes", type=int, default=100)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.starts, arguments.executes))
