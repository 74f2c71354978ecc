"""The kernel manager the SDK and ``run-notebook`` use, and the shutdown that leaves nothing.

Both start sandboxes from in-memory kernelspecs (``kernelspec.sandbox_kernel_spec``), with
limits chosen per run, through the same provisioner JupyterLab uses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import cache
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from ..backends import backend, removals
from .kernelspec import KERNEL_NAME, sandbox_kernel_spec

log = logging.getLogger(__name__)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager for a sandbox kernelspec built in memory rather than installed on disk.

    nbclient and the SDK use it to start sandboxes with limits chosen per run.
    """

    def __init__(self, spec: KernelSpec | None = None, **kwargs: Any) -> None:
        # The name says what runs; a "python3" default would also make nbclient treat the
        # kernel as a local ipykernel and hand it host-side arguments.
        kwargs.setdefault("kernel_name", KERNEL_NAME)
        super().__init__(**kwargs)
        self._kernel_spec = spec if spec is not None else sandbox_kernel_spec()


async def shut_down_sandbox(km: AsyncKernelManager | None, sandbox_id: str) -> None:
    """Shut a sandbox's kernel down and remove everything labelled with the sandbox (its
    provisioner's cleanup does; removal by label is the fallback). Failures are logged."""
    if km is not None and km.provisioner is not None:
        settle = getattr(km.provisioner, "settle", None)
        try:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
            else:
                await km.cleanup_resources()
            return
        except Exception as exc:
            log.warning("shutting down sandbox %s failed: %s", sandbox_id, exc)
        if settle is not None:  # a holder being made comes before the removal by label
            await settle()
    # In turn with the sandbox's other removals (a start cancelled meanwhile may hand one over);
    # a failure (the engine gone, say) is logged there.
    removal = removals.submit(sandbox_id, backend().remove, sandbox_id)
    await asyncio.to_thread(removal.result)


@cache
def collect_garbage_in_background() -> None:
    """Start one ``collect_garbage`` in a worker thread (once per process; errors are logged):
    sandboxes left by crashed processes."""

    def collect() -> None:
        try:
            removed = backend().collect_garbage()
        except Exception as exc:  # never disturb the caller: this is housekeeping
            log.info("removing orphaned sandboxes failed: %s", exc)
            return
        if removed:
            log.info("removed %d orphaned sandbox(es): %s", len(removed), ", ".join(removed))

    threading.Thread(target=collect, name="ai-computer-gc", daemon=True).start()
