"""A real JupyterLab server (jupyter_server with its AsyncMappingKernelManager) on 127.0.0.1 with
a token, for the tests of this folder (helpers to talk to it: server_process.py).

The server finds the sandbox kernelspec through JUPYTER_PATH (installed by `ai-computer
kernelspec install --prefix`) and our server extension through the environment's
`etc/jupyter/jupyter_server_config.d` (the wheel's data, as on a user's machine): nothing is
enabled by hand. When the server stops, every sandbox it started must be gone.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker
import pytest
from server_process import KERNEL_MANAGER, JupyterServer, free_port

from ai_computer.backends.docker.sandboxes import remove_sandbox
from ai_computer.backends.labels import SANDBOX_LABEL


def _accepts(port: int, seconds: float) -> bool:
    """Whether 127.0.0.1:port accepts a connection within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _drain(stream: Any, lines: list[str], ready: threading.Event, marker: str) -> None:
    for line in stream:
        lines.append(line)
        if marker in line:
            ready.set()
    ready.set()  # the server exited: nothing more will come


@pytest.fixture(scope="session")
def jupyter_server_process(
    docker_engine: docker.DockerClient,
    jupyter_path: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JupyterServer]:
    """JupyterLab on 127.0.0.1 with a token; stopped through its API, sandboxes checked gone."""
    home = tmp_path_factory.mktemp("jupyter-server")
    root_dir = home / "notebooks"
    root_dir.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    # No "Would you like to get notified about official Jupyter news?" prompt (nor fetch).
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    environment = {
        **os.environ,
        "JUPYTER_PATH": jupyter_path,
        # Nothing from the user's own Jupyter set-up.
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.kernel_manager_class={KERNEL_MANAGER}",
        "--LabApp.news_url=",  # no network targets but 127.0.0.1
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.getuid() == 0 else []),  # CI runs as root
    ]
    process = subprocess.Popen(
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    url = f"http://127.0.0.1:{port}/"
    threading.Thread(target=_drain, args=(process.stdout, lines, ready, url), daemon=True).start()
    # The server prints its URL a moment before it listens: wait for the port itself too.
    started = ready.wait(60) and any(url in line for line in lines) and _accepts(port, 30)
    if not started or process.poll() is not None:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        pytest.fail("JupyterLab did not start:\n" + "".join(lines))
    server = JupyterServer(url, token, root_dir, lines)
    server.pid = process.pid
    try:
        yield server
    finally:
        # Plain urllib: this runs outside any event loop.
        headers = {"Authorization": f"token {token}"}
        try:
            listing = urllib.request.Request(url + "api/kernels", headers=headers)
            with urllib.request.urlopen(listing) as response:
                server.kernel_ids.update(kernel["id"] for kernel in json.load(response))
            stop = urllib.request.Request(url + "api/shutdown", method="POST", headers=headers)
            urllib.request.urlopen(stop).close()
        except OSError:  # the server died: what it left behind is checked below all the same
            pass
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        leaked = [
            kernel_id
            for kernel_id in server.kernel_ids
            if docker_engine.containers.list(
                all=True, filters={"label": f"{SANDBOX_LABEL}={kernel_id}"}
            )
        ]
        for kernel_id in leaked:
            remove_sandbox(kernel_id)
        assert not leaked, f"the server left sandboxes behind: {leaked}"


@pytest.fixture
async def jupyter_server(jupyter_server_process: JupyterServer) -> AsyncIterator[JupyterServer]:
    """The session's server; kernels started during the test (by anyone) are shut down after it."""
    server = jupyter_server_process
    try:
        before = {kernel["id"] for kernel in (await server.request("GET", "api/kernels"))[1]}
    except OSError as exc:
        pytest.fail(f"the Jupyter server does not answer ({exc}); its log:\n" + "".join(server.log))
    yield server
    server.close_sockets()
    after = {kernel["id"] for kernel in (await server.request("GET", "api/kernels"))[1]}
    server.kernel_ids |= after
    for kernel_id in after - before:
        await server.request("DELETE", f"api/kernels/{kernel_id}")
