"""Helpers the benchmark scripts share: percentiles, timing, and a stock local ipykernel.

Benchmarks run as scripts (``.venv/bin/python benchmarks/NAME.py``), so this folder is on
``sys.path`` and they import this module as ``_common``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

KERNEL_READY_TIMEOUT = 60.0
"""Seconds a local kernel may take to answer after a start or a restart."""


def percentile(samples: list[float], fraction: float) -> float:
    """The sample at ``fraction`` (0.5 for the median) of the sorted samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    """Seconds that awaiting ``action()`` took."""
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def start_local_kernel() -> tuple[AsyncKernelManager, AsyncKernelClient]:
    """A stock local ipykernel, started and ready, and a client of it. Its stderr (a warning
    about plain TCP at each start) is dropped; a kernel that fails to start fails the wait."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=KERNEL_READY_TIMEOUT)
    return km, kc


async def restart_local_kernel(km: AsyncKernelManager, kc: AsyncKernelClient) -> None:
    """Restart a local kernel (killing the old one) and wait until the new one answers."""
    await km.restart_kernel(now=True)
    await kc.wait_for_ready(timeout=KERNEL_READY_TIMEOUT)
