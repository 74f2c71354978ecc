"""The resource-meter REST endpoints of our server extension, through a real server: enabled by
the installed config, authenticated, reporting usage, limits, uptime and OOM kills."""

from __future__ import annotations

import asyncio

from server_process import JupyterServer

from ai_computer.limits import MIB


async def test_endpoints_refuse_requests_without_the_token(jupyter_server: JupyterServer) -> None:
    kernel_id = await jupyter_server.start_kernel()
    for path in ("ai-computer/sandboxes", f"ai-computer/sandboxes/{kernel_id}"):
        assert (await jupyter_server.request("GET", path, token=None))[0] == 403
        assert (await jupyter_server.request("GET", path, token="not-the-token"))[0] == 403
        assert (await jupyter_server.request("GET", path))[0] == 200


async def test_report_of_a_running_sandbox(jupyter_server: JupyterServer) -> None:
    kernel_id = await jupyter_server.start_kernel()
    other_id = await jupyter_server.start_kernel("python3")  # a plain local kernel: no sandbox
    socket = await jupyter_server.connect(kernel_id)
    reply = await socket.execute("block = b'x' * (64 * 1024**2)")
    assert reply.status == "ok", reply

    status, report = await jupyter_server.request("GET", f"ai-computer/sandboxes/{kernel_id}")
    assert status == 200, report
    assert report["kernel_id"] == kernel_id
    assert report["kernel_name"] == "ai-computer-sandbox"
    assert report["running"] is True
    assert report["memory"]["limit"] == 512 * MIB
    assert 64 * MIB < report["memory"]["used"] < 512 * MIB
    assert report["cpu"]["limit"] == 1
    assert 0 <= report["cpu"]["used"] <= 1.5
    assert 0 < report["uptime"] < 120
    assert report["oom_killed"] is False
    assert report["last_exit"] is None
    assert report["error"] is None

    status, listing = await jupyter_server.request("GET", "ai-computer/sandboxes")
    assert status == 200
    listed = {sandbox["kernel_id"] for sandbox in listing["sandboxes"]}
    assert kernel_id in listed
    assert other_id not in listed
    status, _ = await jupyter_server.request("GET", f"ai-computer/sandboxes/{other_id}")
    assert status == 404
    status, _ = await jupyter_server.request("GET", "ai-computer/sandboxes/no-such-kernel")
    assert status == 404


async def test_concurrent_requests_share_one_reading(jupyter_server: JupyterServer) -> None:
    # Each reading waits ~1 s for the engine's CPU sample: ten at once must not take ten.
    kernel_id = await jupyter_server.start_kernel()
    path = f"ai-computer/sandboxes/{kernel_id}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asyncio.gather(*(jupyter_server.request("GET", path) for _ in range(10)))
    assert [status for status, _ in replies] == [200] * 10
    assert loop.time() - started < 5


async def test_an_oom_kill_is_reported_after_the_restart(jupyter_server: JupyterServer) -> None:
    kernel_id = await jupyter_server.start_kernel()
    socket = await jupyter_server.connect(kernel_id)
    socket.start("block = b'x' * (700 * 1024**2)")  # over the 512M limit
    await socket.wait_for_state("restarting", "autorestarting", "dead", timeout=60)

    status, report = await jupyter_server.request("GET", f"ai-computer/sandboxes/{kernel_id}")
    assert status == 200, report
    assert report["oom_killed"] is True
    assert report["last_exit"]["oom_killed"] is True
    assert report["last_exit"]["reason"] == "killed: memory limit 512M exceeded"

    # The server restarted the kernel: it works again, and the report still says why it restarted.
    socket = await jupyter_server.connect(kernel_id)
    reply = await socket.execute("print(6 * 7)", timeout=60)
    assert reply.stdout == "42\n"
    status, report = await jupyter_server.request("GET", f"ai-computer/sandboxes/{kernel_id}")
    assert report["running"] is True
    assert report["oom_killed"] is True
