"""The interrupt and restart methods. Hostile faults (timeouts, kernel death, memory kills) are
in tests/security/."""

from __future__ import annotations

from ai_computer import SandboxClient


async def test_interrupt_and_restart_methods(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("value = 1; open('f.txt', 'w').write('x')")
    restarted = await sandbox.restart()
    assert restarted.success
    after = await sandbox.execute_code("('value' in globals(), open('f.txt').read())")
    assert after.data["result"] == "(False, 'x')"
