"""The sandbox kernel through a real jupyter_server (AsyncMappingKernelManager), the way
JupyterLab drives it: sessions, execute over the websocket, interrupt, restart, shut down."""

from __future__ import annotations

import json
import time

import docker
from server_process import JupyterServer, KernelSocket

from ai_computer.backends.labels import SANDBOX_LABEL


def _containers(
    engine: docker.DockerClient, kernel_id: str
) -> list[docker.models.containers.Container]:
    return engine.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}={kernel_id}"})


async def _wait_for_stdout(socket: KernelSocket, text: str) -> None:
    while True:
        message = await socket.receive()
        if message["msg_type"] == "stream" and text in message["content"]["text"]:
            return


async def test_notebook_session_lifecycle(
    jupyter_server: JupyterServer, docker_engine: docker.DockerClient
) -> None:
    # jupyter_server hands the kernel the notebook's host folder (cwd=) and its path (env=):
    # the provisioner drops both.
    (jupyter_server.root_dir / "project" / "reports").mkdir(parents=True)
    started = time.monotonic()
    session = await jupyter_server.start_session("project/reports/analysis.ipynb")
    kernel_id = session["kernel"]["id"]
    socket = await jupyter_server.connect(kernel_id)
    probe = "import os, json; print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ)}))"
    reply = await socket.execute(probe)
    first_result = time.monotonic() - started
    assert reply.status == "ok", reply
    seen = json.loads(reply.stdout)
    assert seen["cwd"] == "/workspace"
    assert "JPY_SESSION_NAME" not in seen["env"]
    host_root = str(jupyter_server.root_dir)
    assert not [
        value for value in seen["env"].values() if host_root in value or "project/" in value
    ]
    containers = _containers(docker_engine, kernel_id)
    assert containers
    for container in containers:
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert not [m for m in container.attrs["Mounts"] if host_root in (m.get("Source") or "")]
    print(f"\nsession start to first result via jupyter_server: {first_result:.2f} s")
    assert first_result < 15

    # Interrupt: a sleeping cell stops with KeyboardInterrupt.
    msg_id = socket.start("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    await _wait_for_stdout(socket, "sleeping")
    interrupted = time.monotonic()
    status, _ = await jupyter_server.request("POST", f"api/kernels/{kernel_id}/interrupt")
    assert status == 204
    reply = await socket.finish(msg_id, timeout=15)
    assert (reply.status, reply.ename) == ("error", "KeyboardInterrupt")
    assert time.monotonic() - interrupted < 5

    # Restart: variables are lost, files in /workspace are kept.
    reply = await socket.execute("x = 1\nopen('/workspace/kept.txt', 'w').write('kept')")
    assert reply.status == "ok", reply
    status, _ = await jupyter_server.request("POST", f"api/kernels/{kernel_id}/restart")
    assert status == 200
    socket = await jupyter_server.connect(kernel_id)
    reply = await socket.execute("print(open('kept.txt').read(), 'x' in globals())")
    assert reply.stdout == "kept False\n", reply

    # Shut down: the container and the workspace go with the session.
    status, _ = await jupyter_server.request("DELETE", f"api/sessions/{session['id']}")
    assert status == 204
    assert _containers(docker_engine, kernel_id) == []
    volumes = docker_engine.volumes.list(filters={"label": f"{SANDBOX_LABEL}={kernel_id}"})
    assert volumes == []
