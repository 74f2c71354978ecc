"""The sandbox kernel keeps its history in memory: ``history_request`` answers as a stock
ipykernel's does (JupyterLab's console up-arrow, ``%history``)."""

from __future__ import annotations

from typing import Any

import docker

from ai_computer.kernel.kernelspec import sandbox_kernel_spec
from ai_computer.kernel.manager import SandboxKernelManager


async def _reply(kc: Any, msg_id: str) -> dict[str, Any]:
    while True:
        reply = await kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


async def test_history_requests_answer_like_a_stock_kernel(
    docker_engine: docker.DockerClient,
) -> None:
    manager = SandboxKernelManager(sandbox_kernel_spec())
    await manager.start_kernel()
    kc = manager.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        for code in ("first = 1", "second = first + 1", "print(second)"):
            assert (await _reply(kc, kc.execute(code)))["status"] == "ok"
        tail = await _reply(kc, kc.history(hist_access_type="tail", n=2, output=False))
        assert [entry[2] for entry in tail["history"]] == ["second = first + 1", "print(second)"]
        search = await _reply(kc, kc.history(hist_access_type="search", pattern="first*"))
        assert [entry[2] for entry in search["history"]] == ["first = 1"]
        ranged = await _reply(
            kc, kc.history(hist_access_type="range", session=0, start=1, stop=3, output=False)
        )
        assert [entry[2] for entry in ranged["history"]] == ["first = 1", "second = first + 1"]
        shown = await _reply(kc, kc.execute("%history -n 1"))
        assert shown["status"] == "ok"
    finally:
        kc.stop_channels()
        await manager.shutdown_kernel(now=True)
