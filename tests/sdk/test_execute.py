"""Executing code in a real sandbox: output, results, errors, state, streaming."""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import time

from ai_computer import SandboxClient


async def test_stdout_stderr_and_result(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_code(
        "import sys\nprint('Hello from sandbox!')\nprint('oops', file=sys.stderr)\n41 + 1"
    )
    assert response.success, response.error
    assert response.error is None
    assert response.data["output"] == "Hello from sandbox!\n"
    assert response.data["stderr"] == "oops\n"
    assert response.data["result"] == "42"
    assert response.data["display"] == [{"text/plain": "42"}]
    assert isinstance(response.data["execution_count"], int)


async def test_state_persists_and_counts_increase(core_sandbox: SandboxClient) -> None:
    first = await core_sandbox.execute_code("x = 20")
    second = await core_sandbox.execute_code("x + 1")
    assert second.data["result"] == "21"
    assert second.data["execution_count"] == first.data["execution_count"] + 1
    assert first.data["result"] is None


async def test_exception_is_reported_not_raised(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_code("print('before')\n1 / 0")
    assert not response.success
    assert response.error == "ZeroDivisionError: division by zero"
    assert response.data["output"] == "before\n"
    error = response.data["error"]
    assert error["ename"] == "ZeroDivisionError"
    assert error["evalue"] == "division by zero"
    assert any("1 / 0" in line for line in error["traceback"])
    assert not any("\x1b[" in line for line in error["traceback"])
    assert (await core_sandbox.execute_code("'still alive'")).data["result"] == "'still alive'"


async def test_rich_display_bundles_are_kept(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_code(
        "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))"
    )
    assert response.success
    [bundle] = response.data["display"]
    assert bundle["text/html"] == "<b>bold</b>"


async def test_working_directory_is_workspace(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_code("import os; os.getcwd()")
    assert response.data["result"] == "'/workspace'"


async def test_stream_yields_events_in_order_while_running(core_sandbox: SandboxClient) -> None:
    code = (
        "import sys, time\n"
        "print('one', flush=True)\n"
        "time.sleep(2)\n"
        "print('two', file=sys.stderr, flush=True)\n"
        "from IPython.display import display, Markdown\n"
        "display(Markdown('*md*'))\n"
        "6 * 7\n"
    )
    events, arrivals = [], []
    async for event in core_sandbox.execute_code_stream(code):
        events.append(event)
        arrivals.append(time.monotonic())
    kinds = [event.type for event in events]
    assert kinds == ["stdout", "stderr", "display", "result", "display", "completed"]
    assert events[0].data == "one\n"
    assert events[1].data == "two\n"
    assert json.loads(events[2].data)["text/markdown"] == "*md*"
    assert events[3].data == "42"
    completed = json.loads(events[-1].data)
    assert completed["success"] is True and completed["error"] is None
    # 'one' was flushed two seconds before the end: it must have arrived before the execution ended.
    assert arrivals[-1] - arrivals[0] > 1.0


async def test_stream_reports_errors_then_completes(core_sandbox: SandboxClient) -> None:
    events = [e async for e in core_sandbox.execute_code_stream("raise ValueError('bad input')")]
    assert [e.type for e in events] == ["error", "completed"]
    assert events[0].data == "ValueError: bad input"
    assert json.loads(events[1].data)["success"] is False


async def test_executions_are_serialised(core_sandbox: SandboxClient) -> None:
    # Each execution says when it ran (the kernel's clock): serial runs never overlap.
    code = "import time; start = time.time(); time.sleep(0.2); print({}, start, time.time())"
    runs = [core_sandbox.execute_code(code.format(index)) for index in range(3)]
    outputs = [response.data["output"].split() for response in await asyncio.gather(*runs)]
    assert [int(output[0]) for output in outputs] == [0, 1, 2]  # each call got its own output
    spans = sorted((float(output[1]), float(output[2])) for output in outputs)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


async def test_output_is_capped_with_a_notice(docker_engine) -> None:
    async with SandboxClient(output_limit="64K", timeout=60) as client:
        response = await client.execute_code("for i in range(20000): print('x' * 99)")
        assert response.success
        assert response.data["truncated"] is True
        output = response.data["output"]
        assert output.startswith("x" * 99 + "\n")
        assert len(output.encode()) < 64 * 1024 + 200
        assert "[output truncated: more than 64K of output" in output
        events = [e async for e in client.execute_code_stream("print('y' * 100_000)")]
        assert [e.type for e in events] == ["stdout", "info", "completed"]
        assert len(events[0].data) == 64 * 1024
        small = await client.execute_code("print('fine')")
        assert small.data == {**small.data, "output": "fine\n", "truncated": False}


async def test_the_collector_is_on_after_start_with_the_kernels_objects_frozen(
    shared_sandbox: SandboxClient,
) -> None:
    # inside/kernel_boot.py starts the kernel with it off; the last start-up patch turns it on.
    response = await shared_sandbox.execute_code(
        "import gc, sys; (gc.isenabled(), gc.get_freeze_count() > 10_000, sys.argv[0])"
    )
    enabled, frozen, launcher = ast.literal_eval(response.data["result"])
    assert enabled and frozen and launcher.endswith("/ipykernel_launcher.py")
