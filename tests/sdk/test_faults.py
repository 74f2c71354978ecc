"""The interrupt and restart methods. Hostile faults (timeouts, kernel death, memory kills) are
in tests/security/."""

from __future__ import annotations

import asyncio

from ai_computer import SandboxClient


async def test_interrupt_and_restart_methods(sandbox: SandboxClient) -> None:
    await sandbox.execute_code("value = 1; open('f.txt', 'w').write('x')")
    # interrupt(): a KeyboardInterrupt in the running cell; the kernel and its variables stay.
    running = asyncio.create_task(sandbox.execute_code("import time; time.sleep(30)"))
    await asyncio.sleep(1.0)
    await sandbox.interrupt()
    interrupted = await asyncio.wait_for(running, 10)
    assert not interrupted.success and interrupted.error == "KeyboardInterrupt"
    assert (await sandbox.execute_code("value")).data["result"] == "1"
    restarted = await sandbox.restart()
    assert restarted.success
    after = await sandbox.execute_code("('value' in globals(), open('f.txt').read())")
    assert after.data["result"] == "(False, 'x')"


async def test_restart_closes_the_old_sockets_before_the_new_kernel_binds(
    sandbox: SandboxClient, monkeypatch
) -> None:
    # Old client sockets left open reconnect to the new kernel's (same path) under the client's
    # identity, and a ROUTER then shuts the new sockets out: restarts were lost that way.
    provisioner = sandbox._session.provisioner
    launch = type(provisioner).launch_kernel
    open_at_launch: list[bool] = []

    async def watched_launch(self, cmd, **kwargs):
        kc = sandbox._session.kc
        channels = (kc.shell_channel, kc.iopub_channel, kc.control_channel)
        open_at_launch.append(any(channel.socket is not None for channel in channels))
        return await launch(self, cmd, **kwargs)

    monkeypatch.setattr(type(provisioner), "launch_kernel", watched_launch)
    assert (await sandbox.restart()).success
    assert open_at_launch == [False]
    assert (await sandbox.execute_code("1 + 1")).data["result"] == "2"
