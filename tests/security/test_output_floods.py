"""Case 6: output floods are capped with a truncation notice, the client's memory stays bounded,
nothing hangs, and the container's log stays small."""

from __future__ import annotations

import os
import time
from textwrap import dedent

import docker
import pytest
from sandbox_checks import run_client, still_works

from ai_computer import SandboxClient

NOTICE = "[output truncated: more than 1M of output; the rest is dropped]"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("print('x' * 100_000_000)", id="one-100MB-line"),
        pytest.param("print('\\x1b[31m\\x1b[2J\\x1b[?1049h' * 300_000)", id="ansi"),
        pytest.param("import os\nos.system('timeout 2 yes')", id="yes-for-a-while"),
    ],
)
async def test_big_output_is_capped_with_a_notice(hostile: SandboxClient, code: str) -> None:
    response = await hostile.execute_code(code)
    assert response.success, response.error
    assert response.data["truncated"]
    assert response.data["notices"] == [NOTICE]
    assert response.data["output"].endswith(NOTICE + "\n")
    assert len(response.data["output"].encode()) <= (1 << 20) + len(NOTICE) + 2
    await still_works(hostile)


async def test_endless_print_loop_is_capped_and_stopped(hostile: SandboxClient) -> None:
    started = time.monotonic()
    response = await hostile.execute_code("while True:\n    print('spam ' * 20)", timeout=3)
    assert response.error == "execution timed out after 3 s"
    assert response.data["truncated"] and NOTICE in response.data["notices"]
    assert time.monotonic() - started < 3 + hostile.interrupt_grace + 1
    await still_works(hostile)


async def test_invalid_utf8_and_lone_surrogates_arrive_replaced(hostile: SandboxClient) -> None:
    # Bytes written to file descriptor 1 reach IOPub through ipykernel's capture thread, so their
    # order against print() is not defined, nor is it tied to the end of the execution: each kind
    # gets an execution of its own, and the raw one gives the thread time to read the pipe.
    raw = await hostile.execute_code(
        "import os, time\nos.write(1, b'bytes \\xff\\xfe \\xc3\\x28\\n')\ntime.sleep(0.5)"
    )
    assert raw.success, raw.error
    assert "bytes \ufffd\ufffd \ufffd(\n" in raw.data["output"]
    lone = await hostile.execute_code("print('lone \\ud800')\nprint('after')")
    assert lone.success, lone.error
    assert lone.data["output"] == "lone \ufffd\nafter\n"
    await still_works(hostile)


async def test_outputs_too_big_for_one_message_become_notices(hostile: SandboxClient) -> None:
    # A display, a result or an exception too big for one message would make the relay refuse
    # it and break the sandbox (a restart, variables lost): the kernel sends a notice instead.
    await hostile.execute_code("kept = 'state'")
    shown = await hostile.execute_code(
        "from IPython.display import HTML, display\ndisplay(HTML('x' * (20 << 20)))\nprint('after')"
    )
    assert shown.success, shown.error
    assert shown.data["output"] == "after\n"
    [bundle] = shown.data["display"]
    assert bundle["text/plain"].startswith("[display_data of 20.0M not shown: the sandbox sends")
    result = await hostile.execute_code("'z' * (20 << 20)")
    assert result.data["result"].startswith("[execute_result of 20.0M not shown")
    raised = await hostile.execute_code("raise ValueError('y' * (20 << 20))")
    assert raised.error.startswith("ValueError: yyy") and len(raised.error) < 2000
    assert raised.data["error"]["traceback"][0].startswith("[error of ")
    assert (await hostile.execute_code("kept")).data["result"] == "'state'"


async def test_container_log_stays_small(
    docker_engine: docker.DockerClient, hostile: SandboxClient
) -> None:
    # ipykernel copies what processes write to file descriptor 1 into the container's log; code
    # can also write to it directly (pid 1's stdout). Docker caps the log at log_max_size (1m).
    code = dedent("""
        import subprocess
        with open('/proc/1/fd/1', 'wb') as log:
            for _ in range(20):
                log.write(b'y' * (1 << 20))
        subprocess.run('timeout 2 yes', shell=True)
    """)
    response = await hostile.execute_code(code, timeout=60)
    assert response.success, response.error
    container = docker_engine.containers.get(hostile._session.provisioner.container_id)
    folder = os.path.dirname(container.attrs["LogPath"])
    # json-file rotates by renaming: count every log file of the container, whatever its name.
    log_size = sum(
        os.path.getsize(os.path.join(folder, name))
        for name in os.listdir(folder)
        if "-json.log" in name and os.path.exists(os.path.join(folder, name))
    )
    assert log_size < 2 * (1 << 20), log_size
    await still_works(hostile)


CLIENT_UNDER_FLOOD = dedent("""
    import asyncio, json, resource, time
    from ai_computer import SandboxClient

    async def main():
        results = {}
        async with SandboxClient(memory_limit="512M", output_limit="1M", timeout=20) as client:
            for name, code in [
                ('line', "print('x' * 100_000_000)"),
                ('loop', "import time\\nend = time.time() + 3\\nwhile time.time() < end:\\n"
                         "    print('y' * 10_000)"),
                ('forged', "k = get_ipython().kernel\\nk.session.send(k.iopub_socket, 'stream', "
                           "{'name': 'stdout', 'text': 'z' * 60_000_000}, parent=k.get_parent())"),
            ]:
                started = time.monotonic()
                response = await client.execute_code(code)
                results[name] = [response.success, response.error, time.monotonic() - started]
                if not response.success:
                    await client.restart()
            last = await client.execute_code('1 + 1')
        peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024
        print(json.dumps({'results': results, 'peak': peak, 'last': last.data['result']}))

    asyncio.run(main())
""")


def test_client_memory_stays_bounded_under_floods(docker_engine: docker.DockerClient) -> None:
    # In a process of its own, so that its peak memory is the client's alone.
    report = run_client(CLIENT_UNDER_FLOOD)
    results = report["results"]
    assert results["line"][:2] == [True, None]
    assert results["loop"][:2] == [True, None]
    assert results["forged"][1].startswith("the sandbox is broken: it sent a message of 6000")
    assert all(seconds < 20 for _, _, seconds in results.values()), results
    assert report["last"] == "2"
    # 100 MB, 60 MB and ~1 GB of output went through a client that never held more than:
    assert report["peak"] < 200 * (1 << 20), report["peak"]
