"""Callers that go away: a cancelled call, a closed or abandoned stream, a per-call ``timeout``.
Each stops its code in the kernel and leaves the sandbox to the next call (issue: lifecycle)."""

from __future__ import annotations

import asyncio
import json

import pytest

from ai_computer import SandboxClient, SandboxStateError

SLEEP = "import time\nprint('started', flush=True)\ntime.sleep(60)"
# Bounds far below the code's own 60 s, far above an interrupt's round trip.
NEXT_CALL_BOUND = 20


async def test_a_cancelled_call_interrupts_its_code(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("kept = 41")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sandbox.execute_code(SLEEP), 1)
    after = await asyncio.wait_for(sandbox.execute_code("kept + 1"), NEXT_CALL_BOUND)
    assert after.data["result"] == "42"  # interrupted, not restarted: variables are kept
    assert "started" not in after.data["output"]


async def test_a_cancelled_call_whose_code_ignores_interrupts_restarts_the_kernel(
    sandbox: SandboxClient,
) -> None:
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(60)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    await sandbox.execute_code("lost = 1")
    task = asyncio.create_task(sandbox.execute_code(stubborn))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await asyncio.wait_for(sandbox.execute_code("'lost' in globals()"), NEXT_CALL_BOUND)
    assert after.data["result"] == "False"


async def test_a_stream_left_unread_does_not_hold_the_sandbox(sandbox: SandboxClient) -> None:
    stream = sandbox.execute_code_stream(SLEEP)
    async for event in stream:  # the stream is kept, as user code keeps it
        assert event.data == "started\n"
        break
    after = await asyncio.wait_for(sandbox.execute_code("print('next')"), NEXT_CALL_BOUND)
    assert after.data["output"] == "next\n"
    rest = [event async for event in stream]  # read later, it says how it ended
    assert rest[-1].type == "completed"
    summary = json.loads(rest[-1].data)
    assert summary["success"] is False
    assert summary["error"] == "the execution was cancelled by its caller"


async def test_a_closed_stream_stops_its_code(sandbox: SandboxClient) -> None:
    stream = sandbox.execute_code_stream(SLEEP)
    assert (await anext(stream)).data == "started\n"
    await stream.aclose()
    after = await asyncio.wait_for(sandbox.execute_code("print('next')"), NEXT_CALL_BOUND)
    assert after.data["output"] == "next\n"


async def test_timeout_none_means_no_limit_for_that_call(docker_engine: object) -> None:
    async with SandboxClient(timeout=1) as client:
        unlimited = await client.execute_code("import time; time.sleep(2); 'done'", timeout=None)
        assert unlimited.success and unlimited.data["result"] == "'done'"
        default = await client.execute_code("import time; time.sleep(2)")
        assert not default.success and default.error == "execution timed out after 1 s"
        shell = await client.execute_shell("sleep 2; echo done", timeout=None)
        assert shell.success and shell.data["stdout"] == "done\n"


async def test_cleanup_ends_a_running_call_with_a_clear_error(docker_engine: object) -> None:
    client = SandboxClient()
    await client.setup()
    running = asyncio.create_task(client.execute_code(SLEEP))
    await asyncio.sleep(1)
    await client.cleanup()
    with pytest.raises(SandboxStateError, match="cleaned up during the call"):
        await asyncio.wait_for(running, NEXT_CALL_BOUND)


async def test_a_stream_another_task_reads_is_waited_for_not_stopped(
    sandbox: SandboxClient,
) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)"
    seen: list[str] = []

    async def forward() -> None:  # as a server forwarding events to its client would
        async for event in sandbox.execute_code_stream(code):
            seen.append(event.type if event.type == "completed" else event.data)
            await asyncio.sleep(0.2)

    reader = asyncio.create_task(forward())
    await asyncio.sleep(0.5)
    after = await asyncio.wait_for(sandbox.execute_code("print('next')"), NEXT_CALL_BOUND)
    await reader
    assert "".join(seen[:-1]) == "0\n1\n2\n" and seen[-1] == "completed"
    assert after.data["output"] == "next\n"


async def test_a_stop_before_the_request_is_sent_still_stops_it(sandbox: SandboxClient) -> None:
    blocker = asyncio.create_task(sandbox.execute_code("import time; time.sleep(1)"))
    await asyncio.sleep(0.2)
    waiting = asyncio.create_task(sandbox.execute_code(SLEEP))  # waits for the lock
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await blocker
    after = await asyncio.wait_for(sandbox.execute_code("print('next')"), NEXT_CALL_BOUND)
    assert after.data["output"] == "next\n"
