"""Random lifecycles across a few concurrent clients: set-up, executions, streams broken out of,
cancelled calls, interrupts, restarts, kernels killed from outside, clients dropped without
clean-up. After every step: no call outlived its bound, every output belonged to its own
execution; at the end nothing is left and the process's memory stayed bounded.

Seeded: the seed is printed (and shown on failure); ``AI_COMPUTER_FUZZ_SEED`` replays one and
``AI_COMPUTER_FUZZ_STEPS`` runs longer than the CI's short run (``AI_COMPUTER_FUZZ_SEED=random``
explores new sequences).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections.abc import AsyncIterator

import docker
import pytest
from sandbox_checks import leftovers

from ai_computer import SandboxClient, StreamEvent

STEPS = int(os.environ.get("AI_COMPUTER_FUZZ_STEPS", "90"))
# A fixed seed by default, so that a CI failure replays; "random" explores.
_SEED = os.environ.get("AI_COMPUTER_FUZZ_SEED", "20261201")
SEED = random.randrange(1 << 32) if _SEED == "random" else int(_SEED)
CLIENTS = 3
STEP_BOUND = 45.0  # seconds one step may take: a restart after an ignored interrupt is ~4
ACTIONS = {  # action: weight
    "execute": 8,
    "stream_break": 3,
    "cancel": 3,
    "interrupt": 2,
    "restart": 1,
    "kill": 1,
    "drop": 1,
    "cleanup": 1,
}
DEATH = ("kernel died", "killed", "restarted")  # how an execution reports a kernel killed under it


def _rss() -> int:
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) * 1024


class Fuzz:
    def __init__(self, engine: docker.DockerClient, rng: random.Random) -> None:
        self.engine, self.rng = engine, rng
        self.clients: list[SandboxClient | None] = [None] * CLIENTS
        self.streams: list[list[AsyncIterator[StreamEvent]]] = [[] for _ in range(CLIENTS)]
        self.sandbox_ids: list[str] = []
        self.log: list[str] = []

    async def step(self, number: int, slot: int) -> None:
        client = self.clients[slot]
        if client is None:
            action = "setup"
        else:
            action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        self.log.append(f"{number}:{slot}:{action}")
        token = f"token-{number}-{slot}"
        if action == "setup":
            client = SandboxClient(memory_limit="256M", timeout=20, interrupt_grace=1)
            await client.setup()
            self.clients[slot] = client
            self.sandbox_ids.append(client.sandbox_id)
            return
        assert client is not None
        if action == "execute":
            response = await client.execute_code(f"print({token!r})")
            if response.success:
                assert response.data["output"] == f"{token}\n", response.data
            else:  # a kernel killed from outside is reported to the next execution
                assert any(word in (response.error or "") for word in DEATH), response.error
                assert "token-" not in response.data.get("output", "")
        elif action == "stream_break":
            stream = client.execute_code_stream(
                f"print({token!r}, flush=True)\nimport time\ntime.sleep(30)"
            )
            self.streams[slot].append(stream)  # kept, as user code keeps it
            async for event in stream:
                if event.type == "stdout":
                    assert event.data == f"{token}\n"
                break
        elif action == "cancel":
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    client.execute_code("import time; time.sleep(30)"), self.rng.uniform(0.05, 0.5)
                )
        elif action == "interrupt":
            # interrupt() signals whatever runs: wait until this execution is the one running.
            stream = client.execute_code_stream(
                f"print({token!r}, flush=True)\nimport time\ntime.sleep(5)"
            )
            interrupted = False
            async for event in stream:
                if event.type == "stdout":
                    assert event.data == f"{token}\n"
                    await client.interrupt()
                    interrupted = True
                elif event.type == "completed" and interrupted:
                    assert "KeyboardInterrupt" in event.data, event.data
                elif event.type == "completed":  # its kernel was killed before it printed
                    assert any(word in event.data for word in DEATH), event.data
        elif action == "restart":
            assert (await client.restart()).success
        elif action == "kill":
            container_id = client._session.provisioner.container_id  # type: ignore[union-attr]
            if container_id is not None:
                try:
                    await asyncio.to_thread(self.engine.api.kill, container_id)
                except docker.errors.APIError as exc:  # replaced meanwhile (a restart)
                    assert exc.status_code in (404, 409), exc
        elif action == "drop":
            self.clients[slot] = None
            self.streams[slot] = []  # a kept stream refers to its client
            del client
            gc.collect()
        elif action == "cleanup":
            await client.cleanup()
            self.clients[slot] = None
            self.streams[slot] = []

    async def close(self) -> None:
        for client in self.clients:
            if client is not None:
                await client.cleanup()


async def test_random_lifecycles_keep_their_invariants(
    docker_engine: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\nlifecycle fuzz: AI_COMPUTER_FUZZ_SEED={SEED} AI_COMPUTER_FUZZ_STEPS={STEPS}")
    fuzz = Fuzz(docker_engine, random.Random(SEED))
    memory_before = _rss()
    try:
        for number in range(0, STEPS, CLIENTS):
            steps = [fuzz.step(number, slot) for slot in range(CLIENTS)]
            try:
                async with asyncio.timeout(STEP_BOUND):
                    await asyncio.gather(*steps)
            except BaseException as exc:
                raise AssertionError(f"seed {SEED}, steps {fuzz.log[-9:]}: {exc!r}") from exc
    finally:
        await fuzz.close()
    grown = _rss() - memory_before
    assert grown < 256 * (1 << 20), f"seed {SEED}: the process grew by {grown >> 20} MiB"
    deadline = time.monotonic() + 30
    while True:
        # A dropped client whose own execution was still stopping is garbage a little later,
        # in a reference cycle: the next collection (automatic in a real program) removes it.
        gc.collect()
        left = [
            found for sandbox in fuzz.sandbox_ids for found in leftovers(docker_engine, sandbox)
        ]
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert left == [], f"seed {SEED}: {left}"
