"""The "Sandbox files" REST endpoints of our server extension, through a real JupyterLab server
with a sandbox kernel: list, upload (also 50 MiB, streamed), download, folders, delete, the
copies to and from the host's file browser, refused paths, kernels that are no sandbox, and
Jupyter's own token and XSRF rules. One kernel serves the module."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from server_process import JupyterServer
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from ai_computer.limits import MIB


async def fetch(
    server: JupyterServer,
    method: str,
    path: str,
    body: bytes | str | None = None,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = "",
) -> HTTPResponse:
    """One request to the server (``token=None``: without a token)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"token {token or server.token}"
    request = HTTPRequest(
        server.url + path,
        method=method,
        headers=sent,
        body=body if body is not None or method in ("GET", "DELETE") else b"",
        allow_nonstandard_methods=True,
        request_timeout=120,
    )
    response: HTTPResponse = await AsyncHTTPClient(max_body_size=256 * MIB).fetch(
        request, raise_error=False
    )
    return response


def files_url(kernel_id: str, route: str = "", path: str | None = None) -> str:
    url = f"ai-computer/sandboxes/{kernel_id}/files{route}"
    return url if path is None else f"{url}?path={urllib.parse.quote(path)}"


def message(response: HTTPResponse) -> str:
    return str(json.loads(response.body)["message"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kernel_id(jupyter_server_process: JupyterServer) -> AsyncIterator[str]:
    """One sandbox kernel for the module (shut down at its end)."""
    server = jupyter_server_process
    kernel = await server.start_kernel()
    try:
        yield kernel
    finally:
        server.close_sockets()
        await server.request("DELETE", f"api/kernels/{kernel}")


async def run(server: JupyterServer, kernel_id: str, code: str) -> str:
    socket = await server.connect(kernel_id)
    try:
        reply = await socket.execute(code, timeout=60)
    finally:
        socket.connection.close()
        server.sockets.remove(socket)
    assert reply.status == "ok", reply
    return reply.stdout


async def test_list_upload_download_folders_and_delete(
    jupyter_server_process: JupyterServer, kernel_id: str
) -> None:
    server = jupyter_server_process
    started = time.time()
    put = await fetch(server, "PUT", files_url(kernel_id, "/content", "data/a.csv"), b"x,y\n1,2\n")
    assert put.code == 201, put.body
    assert put.body == b'{"path": "/workspace/data/a.csv", "size": 8}'
    assert await run(server, kernel_id, "print(open('data/a.csv').read(), end='')") == "x,y\n1,2\n"

    listing = await fetch(server, "GET", files_url(kernel_id, "", "data"))
    assert listing.code == 200
    body = json.loads(listing.body)
    [entry] = body["entries"]
    assert entry["name"] == "a.csv" and entry["type"] == "file" and entry["size"] == 8
    assert (
        entry["path"] == "/workspace/data/a.csv" and started - 5 < entry["modified"] < time.time()
    )
    assert body["disk"]["limit"] == 256 * MIB and 0 < body["disk"]["used"] < 256 * MIB
    root = json.loads((await fetch(server, "GET", files_url(kernel_id))).body)
    assert [(e["name"], e["type"]) for e in root["entries"]] == [("data", "directory")]

    assert (
        await fetch(server, "POST", files_url(kernel_id, "/folder", "data/sub"), b"")
    ).code == 201
    again = await fetch(server, "POST", files_url(kernel_id, "/folder", "data/sub"), b"")
    assert again.code == 409 and "exists already" in message(again)

    download = await fetch(server, "GET", files_url(kernel_id, "/content", "data/a.csv"))
    assert download.code == 200, "".join(server.log[-40:])
    assert download.body == b"x,y\n1,2\n"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"] == "attachment; filename*=UTF-8''a.csv"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Length"] == "8"
    empty = files_url(kernel_id, "/content", "data/empty.bin")
    assert (await fetch(server, "PUT", empty, b"")).code == 201
    nothing = await fetch(server, "GET", empty)
    assert nothing.code == 200 and nothing.body == b""
    assert nothing.headers["Content-Type"] == "application/octet-stream"  # not APIHandler's JSON

    removed = await fetch(server, "DELETE", files_url(kernel_id, "", "data"))
    assert removed.code == 200, removed.body
    gone = await fetch(server, "GET", files_url(kernel_id, "", "data"))
    assert gone.code == 404 and "No such file or directory" in message(gone)
    report = json.loads((await fetch(server, "GET", f"ai-computer/sandboxes/{kernel_id}")).body)
    assert report["disk"]["limit"] == 256 * MIB and report["disk"]["used"] is not None


async def announce_only(server: JupyterServer, path: str, length: int, body: bytes = b"") -> bytes:
    """PUT with ``Content-Length: length`` and only ``body`` of it; without a body, the status
    line that comes back; with one, the connection is closed after it (b"")."""
    address = urllib.parse.urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    request = (
        f"PUT /{path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: token {server.token}\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(request.encode() + body)
    await writer.drain()
    try:
        return b"" if body else await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()


def _peak_rss_reset(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM, the peak resident size


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        found = re.search(r"VmHWM:\s+(\d+) kB", status.read())
    assert found
    return int(found.group(1)) * 1024


async def test_a_50_mib_file_streams_both_ways(
    jupyter_server_process: JupyterServer, kernel_id: str
) -> None:
    server = jupyter_server_process
    content = os.urandom(50 * MIB)
    assert server.pid is not None
    _peak_rss_reset(server.pid)
    before = _peak_rss(server.pid)
    loop_started = time.monotonic()
    put = await fetch(server, "PUT", files_url(kernel_id, "/content", "big.bin"), content)
    assert put.code == 201, put.body
    download = await fetch(server, "GET", files_url(kernel_id, "/content", "big.bin"))
    took = time.monotonic() - loop_started
    assert download.code == 200
    assert hashlib.sha256(download.body).digest() == hashlib.sha256(content).digest()
    # Streamed: the server never held the file (50 MiB) whole.
    grown = _peak_rss(server.pid) - before
    assert grown < 32 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB"
    print(f"\n50 MiB up and down through Jupyter Server: {took:.2f} s")

    # Refused from its Content-Length, before any of the body is read.
    status_line = await announce_only(
        server, files_url(kernel_id, "/content", "huge.bin"), 300 * MIB
    )
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    await fetch(server, "DELETE", files_url(kernel_id, "", "big.bin"))

    # An upload cut short (the client goes away) leaves nothing, not even a partial file.
    cut = files_url(kernel_id, "/content", "cut.bin")
    await announce_only(server, cut, 8 * MIB, os.urandom(2 * MIB))
    await asyncio.sleep(0.5)  # the server sees the connection close, the tool its stdin end
    clear = 0
    for _ in range(100):  # gone, and still gone a moment later
        entries = json.loads((await fetch(server, "GET", files_url(kernel_id))).body)["entries"]
        clear = 0 if any("cut.bin" in entry["name"] for entry in entries) else clear + 1
        if clear == 3:
            break
        await asyncio.sleep(0.2)
    assert [entry["name"] for entry in entries if "cut.bin" in entry["name"]] == []
    assert await run(server, kernel_id, "import os; print(os.listdir('.'))") == "[]\n"


async def test_paths_out_of_the_workspace_links_and_special_files_are_refused(
    jupyter_server_process: JupyterServer, kernel_id: str
) -> None:
    server = jupyter_server_process
    await run(
        server,
        kernel_id,
        "import os; os.symlink('/etc', 'escape'); os.mkfifo('pipe'); os.mkdir('folder')",
    )
    refused: list[tuple[str, str, str | None, int, str]] = [
        ("GET", "/content", "../etc/passwd", 400, "outside the sandbox's /workspace"),
        ("GET", "/content", "/etc/passwd", 400, "outside the sandbox's /workspace"),
        ("GET", "/content", "escape/passwd", 400, "is a symlink"),
        ("GET", "", "escape", 400, "is a symlink"),
        ("GET", "/content", "pipe", 400, "is not a regular file"),
        ("GET", "/content", "folder", 400, "is not a regular file"),
        ("GET", "/content", "missing.txt", 404, "No such file or directory"),
        ("PUT", "/content", "escape/planted", 400, "is a symlink"),
        ("PUT", "/content", "../outside", 400, "outside the sandbox's /workspace"),
        ("DELETE", "", "/workspace", 400, "cannot be removed"),
        ("DELETE", "", "/etc", 400, "outside the sandbox's /workspace"),
        ("POST", "/folder", "escape/new", 400, "is a symlink"),
    ]
    for method, route, path, status, why in refused:
        body = b"data" if method in ("PUT", "POST") else None
        response = await fetch(server, method, files_url(kernel_id, route, path), body)
        assert response.code == status, (method, path, response.code, response.body)
        assert why in message(response), (method, path, message(response))
    # The link itself can go (never what it points to).
    assert (await fetch(server, "DELETE", files_url(kernel_id, "", "escape"))).code == 200
    assert await run(server, kernel_id, "print(os.path.exists('/etc/passwd'))") == "True\n"
    for name in ("pipe", "folder"):
        await fetch(server, "DELETE", files_url(kernel_id, "", name))


async def test_other_kernels_and_requests_without_the_token_or_xsrf_are_refused(
    jupyter_server_process: JupyterServer, kernel_id: str
) -> None:
    server = jupyter_server_process
    other = await server.start_kernel("python3")  # a plain local kernel: no sandbox
    try:
        for kernel in ("no-such-kernel", other):
            for method, route in (("GET", ""), ("GET", "/content"), ("PUT", "/content"),
                                  ("DELETE", ""), ("POST", "/folder")):  # fmt: skip
                body = b"x" if method in ("PUT", "POST") else None
                response = await fetch(server, method, files_url(kernel, route, "a.txt"), body)
                assert response.code == 404, (kernel, method, route, response.code)
                assert re.search("(sandbox kernel|Kernel does not exist)", message(response))
    finally:
        await server.request("DELETE", f"api/kernels/{other}")

    url = files_url(kernel_id, "/content", "a.txt")
    for token in (None, "not-the-token"):
        assert (await fetch(server, "GET", url, token=token)).code == 403
        assert (await fetch(server, "PUT", url, b"data", token=token)).code == 403

    # A browser's session: the login cookie, and changes only with the XSRF token as well.
    page = await fetch(server, "GET", f"lab?token={server.token}", token=None)
    cookies = dict(
        cookie.split(";", 1)[0].split("=", 1) for cookie in page.headers.get_list("Set-Cookie")
    )
    assert "_xsrf" in cookies, cookies
    jar = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    assert (await fetch(server, "PUT", url, b"data", headers=jar, token=None)).code == 403
    entry = files_url(kernel_id, "", "a.txt")
    assert (await fetch(server, "DELETE", entry, headers=jar, token=None)).code == 403
    folder = files_url(kernel_id, "/folder", "made")
    assert (await fetch(server, "POST", folder, b"", headers=jar, token=None)).code == 403
    with_xsrf = {**jar, "X-XSRFToken": cookies["_xsrf"]}
    assert (await fetch(server, "PUT", url, b"data", headers=with_xsrf, token=None)).code == 201
    listing = await fetch(server, "GET", files_url(kernel_id), headers=jar, token=None)
    assert listing.code == 200
    assert (await fetch(server, "DELETE", entry, headers=with_xsrf, token=None)).code == 200


async def test_copies_between_the_host_folder_and_the_sandbox(
    jupyter_server_process: JupyterServer, kernel_id: str, tmp_path: Any
) -> None:
    server = jupyter_server_process
    root = server.root_dir
    (root / "host-in").mkdir(exist_ok=True)
    (root / "host-in" / "table.csv").write_text("a,b\n")
    (root / "host-out").mkdir(exist_ok=True)
    (root / ".hidden.txt").write_text("hidden")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    (root / "leads-out.txt").unlink(missing_ok=True)
    (root / "leads-out.txt").symlink_to(secret)
    (root / ".hidden-dir").mkdir(exist_ok=True)
    # Visible names that resolve to hidden ones, or out of the root: refused as resolved.
    for link, target in (
        ("looks-plain.txt", root / ".hidden.txt"),
        ("looks-plain-dir", root / ".hidden-dir"),
        ("leads-out-dir", tmp_path),
    ):
        (root / link).unlink(missing_ok=True)
        (root / link).symlink_to(target)

    def copy_in(host_path: str, directory: str = "in") -> Any:
        body = json.dumps({"host_path": host_path, "directory": directory})
        return fetch(server, "POST", files_url(kernel_id, "/from-host"), body)

    def copy_out(path: str, on_conflict: str = "fail", host_dir: str = "host-out") -> Any:
        body = json.dumps({"path": path, "host_dir": host_dir, "on_conflict": on_conflict})
        return fetch(server, "POST", files_url(kernel_id, "/to-host"), body)

    copied = await copy_in("host-in/table.csv")
    assert copied.code == 201, copied.body
    assert json.loads(copied.body) == {"path": "/workspace/in/table.csv", "size": 4}
    assert await run(server, kernel_id, "print(open('in/table.csv').read(), end='')") == "a,b\n"
    for host_path, status, why in (
        ("../outside.txt", 400, "must not contain"),
        ("leads-out.txt", 403, "leads out of the server's root folder"),
        (".hidden.txt", 403, "is hidden"),
        ("looks-plain.txt", 403, "leads to a hidden file or folder"),
        ("looks-plain-dir/x.txt", 403, "leads to a hidden file or folder"),
        ("host-in/missing.csv", 404, "no host file"),
        ("host-in", 400, "is not a file"),
    ):
        response = await copy_in(host_path)
        assert response.code == status and why in message(response), (host_path, response.body)
    assert (await copy_in("host-in/table.csv", "/etc")).code == 400

    await run(server, kernel_id, "open('out.png', 'wb').write(b'PNG' * 100)")
    first = await copy_out("out.png")
    assert first.code == 201 and json.loads(first.body) == {"host_path": "host-out/out.png",
                                                            "size": 300}  # fmt: skip
    assert (root / "host-out" / "out.png").read_bytes() == b"PNG" * 100
    (root / "host-out" / "out.png").write_bytes(b"mine")
    conflict = await copy_out("out.png")
    assert conflict.code == 409 and "exists in the host folder" in message(conflict)
    assert (root / "host-out" / "out.png").read_bytes() == b"mine"  # kept
    renamed = await copy_out("out.png", "rename")
    assert json.loads(renamed.body)["host_path"] == "host-out/out-Copy1.png"
    assert (root / "host-out" / "out-Copy1.png").read_bytes() == b"PNG" * 100
    assert (await copy_out("out.png", "replace")).code == 201
    assert (root / "host-out" / "out.png").read_bytes() == b"PNG" * 100
    missing = await copy_out("missing.png")
    assert missing.code == 404
    for host_dir, why in (
        (".hidden-dir", "is hidden"),
        ("looks-plain-dir", "leads to a hidden file or folder"),
        ("leads-out-dir", "leads out of the server's root folder"),
    ):
        response = await copy_out("out.png", host_dir=host_dir)
        assert response.code == 403 and why in message(response), (host_dir, response.body)
    assert not list((root / ".hidden-dir").iterdir()) and not (tmp_path / "out.png").exists()

    # A name near the host's 255 bytes (the temporary name stays short), a folder in the way.
    long_name = "n" * 240 + ".png"
    await run(server, kernel_id, f"open({long_name!r}, 'wb').write(b'x'); open('dir.png', 'w')")
    assert (await copy_out(long_name)).code == 201
    assert (root / "host-out" / long_name).read_bytes() == b"x"
    (root / "host-out" / "dir.png").mkdir(exist_ok=True)
    for on_conflict in ("fail", "replace"):
        blocked = await copy_out("dir.png", on_conflict)
        assert blocked.code == 409, (on_conflict, blocked.body)
    assert (root / "host-out" / "dir.png").is_dir()
    assert not [p.name for p in (root / "host-out").iterdir() if p.name.endswith(".partial")]
