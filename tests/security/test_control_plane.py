"""Case 12: code in the sandbox attacks its own kernel's control plane. It cannot touch the socket
files; what it forges with the key it can read lies only about its own output; anything a real
kernel never sends marks the sandbox broken until restart(), and restart() recovers it."""

from __future__ import annotations

import ast
import time
from textwrap import dedent

import docker
import pytest
from sandbox_checks import run_client, still_works

from ai_computer import SandboxClient, SandboxStateError


async def test_the_kernels_socket_directory_leads_nowhere_outside_the_sandbox(
    hostile: SandboxClient,
) -> None:
    # The kernel binds its sockets on a 1 MiB tmpfs volume of its own, which the relay sees
    # read-only; its connection file is a host directory mounted read-only. Whatever the
    # sandbox does there stays in its own memory and reaches the host through the relay only.
    code = dedent("""
        import errno, os, zmq
        def attempt(action):
            try:
                action()
                return 'done'
            except OSError as exc:
                return errno.errorcode[exc.errno]
            except zmq.ZMQError as exc:
                return errno.errorcode.get(exc.errno, str(exc))
        run, connection = '/run/ai-computer', '/run/ai-computer-connection'
        def fill():
            with open(run + '/fill', 'wb') as f:
                f.write(b'x' * (4 << 20))
        outcomes = {
            'connection-create': attempt(lambda: open(connection + '/new', 'w')),
            'connection-append': attempt(lambda: open(connection + '/connection.json', 'a')),
            'connection-unlink': attempt(lambda: os.unlink(connection + '/connection.json')),
            'connection-chmod': attempt(lambda: os.chmod(connection, 0o777)),
            'sockets-fill': attempt(fill),
            'sockets-unlink': attempt(lambda: os.unlink(run + '/kernel-3')),
            'sockets-bind': attempt(
                lambda: zmq.Context().socket(zmq.ROUTER).bind(f'ipc://{run}/kernel-3')
            ),
            # What would keep a new kernel from binding: a directory at a socket's name, the
            # volume shut (it outlives kernels: the holder keeps it mounted).
            'sockets-unlink-1': attempt(lambda: os.unlink(run + '/kernel-1')),
            'sockets-squat': attempt(lambda: os.makedirs(run + '/kernel-1/deep')),
            'sockets-shut': attempt(lambda: os.chmod(run, 0o500)),
        }
        outcomes
    """)
    response = await hostile.execute_code(code)
    assert response.success, response.error
    outcomes = ast.literal_eval(response.data["result"])
    connection = {k: v for k, v in outcomes.items() if k.startswith("connection")}
    assert set(connection.values()) <= {"EROFS", "EACCES", "EPERM"}, outcomes
    assert outcomes["sockets-fill"] == "ENOSPC"  # 1 MiB, in the sandbox's own memory
    assert outcomes["sockets-squat"] == outcomes["sockets-shut"] == "done", outcomes
    await still_works(hostile)  # the relay's connections to the kernel are made already
    restarted = await hostile.restart()  # a new kernel binds its sockets anew over them
    assert restarted.success, restarted.error
    await still_works(hostile)


FORGE = """
k = get_ipython().kernel
def forge(msg_type, content, parent=None):
    k.session.send(k.iopub_socket, msg_type, content, parent=parent or k.get_parent())
"""


async def test_forged_messages_signed_with_the_key_lie_only_about_their_own_output(
    hostile: SandboxClient,
) -> None:
    code = FORGE + dedent("""
        forge('stream', {'name': 5, 'text': ['forged ', 3, 'text\\n']})
        forge('display_data', {'data': ['not', 'a', 'bundle']})
        forge('execute_result', {'data': {'text/plain': 7}, 'execution_count': 'x'})
        forge('error', {'ename': None, 'evalue': {'a': 1}, 'traceback': 'not a list'})
        forge('status', {'execution_state': 'idle'}, parent={'msg_id': 'another-request'})
        print('real output')
    """)
    response = await hostile.execute_code(code)
    assert response.data["output"] == "forged text\nreal output\n"
    assert not response.success and response.error == "an unnamed error"  # the forged error
    # A forged "idle" for itself ends the execution early: the sandbox can only hide its own
    # output. The next execution is not confused by what arrives late.
    early = await hostile.execute_code(
        FORGE + "forge('status', {'execution_state': 'idle'})\nimport time; time.sleep(1)\n"
        "print('late')"
    )
    assert early.success and early.data["output"] == ""
    await still_works(hostile)
    assert (await hostile.execute_code("print('next')")).data["output"] == "next\n"


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        pytest.param(
            "k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>', b'bad'] + [b'{}'] * 4)",
            "it sent an unreadable message (ValueError: Invalid Signature",
            id="bad-signature",
        ),
        pytest.param(
            "import hmac, hashlib\nparts = [b'{', b'{}', b'{}', b'{}']\n"
            "mac = hmac.new(k.session.key, digestmod=hashlib.sha256)\n"
            "[mac.update(p) for p in parts]\n"
            "k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>', mac.hexdigest().encode(), *parts])",
            "it sent an unreadable message (",
            id="signed-garbage",
        ),
        pytest.param(
            "k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>'] + [b'part'] * 200)",
            "it sent a message of 202 parts",
            id="too-many-parts",
        ),
        pytest.param(
            "forge('stream', {'name': 'stdout', 'text': 'z' * 60_000_000})",
            "it sent a message of 6000",  # refused by the relay: bytes over its limit
            id="over-the-size-limit",
        ),
        pytest.param(
            "big = b'x' * (14 << 20)\n"
            "k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>'] + [big] * 40, copy=False)",
            "it sent a message too big to hold (its relay was killed: memory limit 256M exceeded)",
            id="many-big-parts",
        ),
    ],
)
async def test_protocol_violation_breaks_the_sandbox_until_restart(
    hostile: SandboxClient, attack: str, reason: str
) -> None:
    await hostile.execute_code("open('survivor.txt', 'w').write('kept')")
    started = time.monotonic()
    response = await hostile.execute_code(FORGE + attack + "\nimport time; time.sleep(5)")
    assert time.monotonic() - started < 5  # reported as soon as seen, not at the timeout
    assert not response.success
    assert response.error.startswith(f"the sandbox is broken: {reason}"), response.error
    assert response.error.endswith("; call restart() or cleanup()")
    with pytest.raises(SandboxStateError, match="the sandbox is broken"):
        await hostile.execute_code("1 + 1")
    restarted = await hostile.restart()
    assert restarted.success, restarted.error
    kept = await hostile.execute_code("open('survivor.txt').read()")
    assert kept.data["result"] == "'kept'"
    await still_works(hostile)


CLIENT_UNDER_MANY_PARTS = dedent("""
    import asyncio, json, resource, time
    from ai_computer import SandboxClient

    ATTACK = (
        "k = get_ipython().kernel\\nbig = b'x' * (14 << 20)\\n"
        "k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>'] + [big] * 100, copy=False)\\n"
        "import time; time.sleep(5)"
    )

    async def main():
        async with SandboxClient(memory_limit="512M", output_limit="1M", timeout=30) as client:
            started = time.monotonic()
            response = await client.execute_code(ATTACK)
            seconds = time.monotonic() - started
            restarted = await client.restart()
            last = await client.execute_code('1 + 1')
        peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024
        print(json.dumps({'error': response.error, 'seconds': seconds, 'peak': peak,
                          'restarted': restarted.success, 'last': last.data['result']}))

    asyncio.run(main())
""")


def test_many_part_messages_leave_the_client_memory_bounded(
    docker_engine: docker.DockerClient,
) -> None:
    # 100 parts of 14 MiB (1.4 GB, one reused buffer in the sandbox) on IOPub: the
    # relay must hold a message whole (libzmq) and is killed by its memory limit; the client,
    # in a process of its own so that its peak memory is its alone, never sees the message.
    report = run_client(CLIENT_UNDER_MANY_PARTS)
    assert report["error"].startswith("the sandbox is broken: it sent a message too big to hold")
    assert report["seconds"] < 5
    assert report["restarted"] and report["last"] == "2"
    assert report["peak"] < 300 * (1 << 20), report["peak"]
