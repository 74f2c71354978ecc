"""Timeouts, kernel death and OOM kills: reported plainly, then the sandbox works again."""

from __future__ import annotations

import time

from ai_computer import SandboxClient


async def test_timeout_interrupts_and_keeps_state(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("kept = 'yes'")
    started = time.monotonic()
    response = await sandbox.execute_code(
        "import time\nprint('working', flush=True)\ntime.sleep(60)", timeout=2
    )
    elapsed = time.monotonic() - started
    assert not response.success
    assert response.error == "execution timed out after 2 s"
    assert response.data["output"] == "working\n"
    assert elapsed < 2 + sandbox.interrupt_grace + 1
    assert (await sandbox.execute_code("kept")).data["result"] == "'yes'"


async def test_timeout_with_sigint_ignored_kills_and_restarts(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("open('survivor.txt', 'w').write('kept'); lost = 1")
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    started = time.monotonic()
    response = await sandbox.execute_code(code, timeout=2)
    elapsed = time.monotonic() - started
    assert not response.success
    assert response.error.startswith("execution timed out after 2 s; restarted")
    assert "ignored the interrupt" in response.data["notices"][0]
    assert elapsed < 2 + sandbox.interrupt_grace + 20
    after = await sandbox.execute_code("(open('survivor.txt').read(), 'lost' in globals())")
    assert after.data["result"] == "('kept', False)"


async def test_kernel_exit_is_reported_and_recovered(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("open('survivor.txt', 'w').write('kept')")
    response = await sandbox.execute_code("import os; os._exit(3)")
    assert not response.success
    assert response.error.startswith("kernel died (exit code 3); restarted")
    assert (await sandbox.execute_code("open('survivor.txt').read()")).data["result"] == "'kept'"


async def test_segfault_names_the_signal(sandbox: SandboxClient) -> None:
    response = await sandbox.execute_code("import ctypes; ctypes.string_at(0)")
    assert not response.success
    assert response.error.startswith("kernel died (exit code 139, SIGSEGV); restarted")
    assert (await sandbox.execute_code("2 + 2")).data["result"] == "4"


async def test_oom_kill_is_reported_with_the_limit(sandbox: SandboxClient) -> None:
    response = await sandbox.execute_code("hog = b'x' * (600 * 1024 * 1024)")
    assert not response.success
    assert response.error.startswith("killed: memory limit 256M exceeded; restarted"), (
        response.error
    )
    assert (await sandbox.execute_code("'recovered'")).data["result"] == "'recovered'"


async def test_interrupt_and_restart_methods(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("value = 1; open('f.txt', 'w').write('x')")
    restarted = await sandbox.restart()
    assert restarted.success
    after = await sandbox.execute_code("('value' in globals(), open('f.txt').read())")
    assert after.data["result"] == "(False, 'x')"
