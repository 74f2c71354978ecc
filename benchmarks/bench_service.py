"""Benchmark: the HTTP service against the SDK used directly, same run, same machine.

    .venv/bin/python benchmarks/bench_service.py [--executes 200] [--creates 5]

Starts a real `ai-computer serve` on 127.0.0.1 (a temporary token file), then prints p50/p90 of
`execute "1+1"` over HTTP (one keep-alive connection) against the SDK's direct
`execute_code("1+1")`, create -> first result over HTTP against the SDK's, and a load run of
10 clients x 20 executions: wall time and the service process's peak memory (VmHWM). Not a
test: nothing is asserted. Everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import percentile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from service_process import start_service

from ai_computer import SandboxClient


def show(name: str, samples: list[float], baseline: list[float] | None = None) -> None:
    p50, p90 = percentile(samples, 0.5) * 1000, percentile(samples, 0.9) * 1000
    ratio = ""
    if baseline:
        ratio = f"  x{percentile(samples, 0.5) / percentile(baseline, 0.5):.2f} of the SDK's"
    print(f"{name:<44} p50 {p50:8.1f} ms  p90 {p90:8.1f} ms{ratio}")


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def main(executes: int, creates: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ai-computer-bench-"))
    service = start_service(folder, "--per-token", "12", "--max-sandboxes", "12")
    headers = service.headers()
    try:
        direct, over_http = [], []
        async with (
            SandboxClient() as client,
            httpx.AsyncClient(base_url=service.url, headers=headers, timeout=60) as http,
        ):
            sandbox = (await http.post("/api/v1/sandbox/create")).json()["sandbox_id"]
            route = f"/api/v1/sandbox/{sandbox}/execute"
            for _ in range(10):  # warm both
                await client.execute_code("1+1")
                await http.post(route, json={"code": "1+1"})
            for _ in range(executes):  # alternating, so both see the same machine
                started = time.perf_counter()
                await client.execute_code("1+1")
                direct.append(time.perf_counter() - started)
                started = time.perf_counter()
                answer = await http.post(route, json={"code": "1+1"})
                over_http.append(time.perf_counter() - started)
                assert answer.json()["result"] == 2
            await http.delete(f"/api/v1/sandbox/{sandbox}")

            local_first, http_first = [], []
            for _ in range(creates):
                started = time.perf_counter()
                async with SandboxClient() as fresh:
                    await fresh.execute_code("print(1+1)")
                    local_first.append(time.perf_counter() - started)
                started = time.perf_counter()
                made = (await http.post("/api/v1/sandbox/create")).json()["sandbox_id"]
                await http.post(f"/api/v1/sandbox/{made}/execute", json={"code": "print(1+1)"})
                http_first.append(time.perf_counter() - started)
                await http.delete(f"/api/v1/sandbox/{made}")

        async def one_client(number: int) -> None:
            async with SandboxClient(base_url=service.url, token=service.token) as remote:
                for index in range(20):
                    response = await remote.execute_code(f"print({number}, {index})")
                    assert response.data["output"] == f"{number} {index}\n"

        started = time.perf_counter()
        await asyncio.gather(*(one_client(number) for number in range(10)))
        load_seconds = time.perf_counter() - started

        print(f"ai-computer serve at {service.url}; {executes} executes, {creates} creates")
        show('SDK execute_code("1+1")', direct)
        show('HTTP POST .../execute {"code": "1+1"}', over_http, direct)
        show("SDK create -> first print(1+1) result", local_first)
        show("HTTP create -> first print(1+1) result", http_first, local_first)
        print(f"load: 10 clients x 20 executions over HTTP (remote SDK): {load_seconds:.2f} s wall")
        print(f"service process peak memory (VmHWM): {peak_memory_kib(service.pid) / 1024:.0f} MiB")
    finally:
        service.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executes", type=int, default=200)
    parser.add_argument("--creates", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.executes, arguments.creates))
