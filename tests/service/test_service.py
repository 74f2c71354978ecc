"""`ai-computer serve` as an attacker and an operator see it: tokens and isolation, quotas, idle
reaping, body limits, stream framing, and a stop (SIGTERM, kill -9) that leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from service_process import ServiceProcess, start_service

from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL
from ai_computer.sdk.wire import LINE_LIMIT

TOKENS = ["token-a-" + "a" * 24, "token-b-" + "b" * 24, "token-c-" + "c" * 24]


def containers_of(engine: docker.DockerClient, pid: int) -> list[str]:
    labels = [SANDBOX_LABEL, f"{OWNER_PID_LABEL}={pid}"]
    # The one-call listing: containers.list() inspects each, and one removed meanwhile is a 404.
    return [c["Id"] for c in engine.api.containers(all=True, filters={"label": labels})]


def wait_until_gone(engine: docker.DockerClient, pid: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := containers_of(engine, pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture
def strict_service(docker_engine: docker.DockerClient, tmp_path: Path) -> Iterator[ServiceProcess]:
    """Three tokens, one sandbox each, two in all, idle sandboxes removed after 3 s."""
    process = start_service(
        tmp_path,
        "--per-token", "1", "--max-sandboxes", "2", "--idle-timeout", "3",
        "--disk-limit", "16M", "--memory-limit", "256M",
        tokens=TOKENS,
    )  # fmt: skip
    yield process
    assert process.stop() == 0, "".join(process.log)
    assert containers_of(docker_engine, process.pid) == []


def create(http: httpx.Client, token: str, **limits: object) -> httpx.Response:
    return http.post(
        "/api/v1/sandbox/create",
        headers={"Authorization": f"Bearer {token}"},
        json=limits or None,
    )


def test_tokens_isolation_quotas_and_idle_reaping(
    strict_service: ServiceProcess, docker_engine: docker.DockerClient
) -> None:
    a, b, c = ({"Authorization": f"Bearer {token}"} for token in TOKENS)
    with httpx.Client(base_url=strict_service.url, timeout=60) as http:
        assert http.get("/healthz").json()["status"] == "ok"  # no token needed
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"X": "y"}):
            refused = http.post("/api/v1/sandbox/create", headers=headers)
            assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        given = http.post("/dev/token")
        assert given.status_code == 403 and "--give-tokens-to-anyone" in given.json()["error"]

        first = create(http, TOKENS[0])
        assert first.status_code == 200, first.text
        sandbox = first.json()["sandbox_id"]
        assert first.json()["memory_limit"] == "256M" and first.json()["disk_limit"] == "16M"
        routes = [
            ("GET", f"/api/v1/sandbox/{sandbox}/status", None),
            ("POST", f"/api/v1/sandbox/{sandbox}/execute", {"code": "print('secret')"}),
            ("GET", f"/api/v1/sandbox/{sandbox}/files", None),
            ("DELETE", f"/api/v1/sandbox/{sandbox}", None),
        ]
        for method, route, body in routes:  # another token's sandbox does not exist for it
            other = http.request(method, route, headers=b, json=body, params={"path": "/x"})
            unknown = http.request(
                method, route.replace(sandbox, "no-such-id"), headers=b, json=body,
                params={"path": "/x"},
            )  # fmt: skip
            assert other.status_code == unknown.status_code == 404
            assert "secret" not in other.text
            assert other.json()["error"].replace(sandbox, "X") == unknown.json()["error"].replace(
                "no-such-id", "X"
            )
        assert [s["sandbox_id"] for s in http.get("/api/v1/sandboxes", headers=b).json()[
            "sandboxes"
        ]] == []  # fmt: skip

        again = create(http, TOKENS[0])
        assert again.status_code == 429 and "--per-token" in again.json()["error"]
        assert create(http, TOKENS[1]).status_code == 200
        full = create(http, TOKENS[2])
        assert full.status_code == 503 and "maximum of 2 sandboxes" in full.json()["error"]
        too_big = create(http, TOKENS[2], memory_limit="3G")  # a bad limit before any quota
        assert too_big.status_code == 400 and "2G" in too_big.json()["error"]
        above = create(http, TOKENS[2], memory_limit="1G")  # the server's limits are ceilings
        assert above.status_code == 400
        assert "exceeds this server's 256M (its --memory-limit)" in above.json()["error"]

        # Idle reaping: unused for 3 s, both are removed, and the quota is free again.
        assert http.get(f"/api/v1/sandbox/{sandbox}/status", headers=a).status_code == 200
        deadline = time.monotonic() + 20
        while http.get(f"/api/v1/sandbox/{sandbox}/status", headers=a).status_code == 200:
            assert time.monotonic() < deadline, "the idle sandbox was not removed"
            time.sleep(0.5)
        assert wait_until_gone(docker_engine, strict_service.pid, 20) == []
        assert create(http, TOKENS[2]).status_code == 200
        metrics = http.get("/metrics", headers=c).text
        assert "ai_computer_sandboxes_live 1" in metrics
        assert 'ai_computer_errors_total{kind="quota"} 2' in metrics


def test_no_body_is_read_before_the_token_is_checked(strict_service: ServiceProcess) -> None:
    # Headers promising 200 MB, then nothing: the refusal must come without waiting for them.
    host, port = strict_service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/sandbox/x/files/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 200000000\r\n\r\n--b\r\n"
        )
        answer = b""
        while b"bearer token" not in answer and (part := connection.recv(65536)):
            answer += part
    assert answer.startswith(b"HTTP/1.1 401") and b"bearer token" in answer


def test_request_bodies_are_bounded_and_checked(strict_service: ServiceProcess) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[0]}"}
    with httpx.Client(base_url=strict_service.url, timeout=60, headers=headers) as http:
        sandbox = create(http, TOKENS[0]).json()["sandbox_id"]
        route = f"/api/v1/sandbox/{sandbox}"
        huge = http.post(f"{route}/execute", json={"code": "#" * (9 << 20)})
        assert huge.status_code == 413 and "at most 8M" in huge.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
            for _ in range(20):
                yield b"x" * (1 << 20)

        upload_headers = {**headers, "Content-Type": "multipart/form-data; boundary=b"}
        streamed = http.post(f"{route}/files/upload", content=chunks(), headers=upload_headers)
        assert streamed.status_code == 413 and "upload may be at most 17M" in streamed.text
        declared = http.post(
            f"{route}/files/upload", files={"file": ("big.bin", b"x" * (18 << 20))}
        )
        assert declared.status_code == 413

        extra = http.post(f"{route}/execute", json={"code": "1", "memory": "1G"})
        assert extra.status_code == 422 and "memory" in extra.json()["error"]
        negative = http.post(f"{route}/execute", json={"code": "1", "timeout": -1})
        assert negative.status_code == 422 and "timeout" in negative.json()["error"]
        both = http.post(f"{route}/execute", json={"code": "1", "file_path": "a.py"})
        assert both.status_code == 400 and "exactly one" in both.json()["error"]
        escape = http.get(f"{route}/files", params={"path": "/workspace/../etc/passwd"})
        assert escape.status_code in (400, 404) and "root:" not in escape.text
        environment = http.post(
            f"{route}/execute",
            json={"code": "import os; os.environ['GREETING']", "environment": {"GREETING": "hi"}},
        ).json()
        assert environment["result"] == "hi"
        after = http.post(
            f"{route}/execute", json={"code": "'GREETING' in __import__('os').environ"}
        )
        assert after.json()["result"] is False  # for that execution only
        # A stream that leaves: its environment is put back all the same.
        leaving = {"code": "import time; time.sleep(30)", "environment": {"SECRETX": "leak"}}
        with http.stream("POST", f"{route}/execute/stream", json=leaving) as answer:
            next(answer.iter_lines())  # the keepalive, once the code runs
        probe = {"code": "import os; os.environ.get('SECRETX')"}
        deadline = time.monotonic() + 15
        while (seen := http.post(f"{route}/execute", json=probe).json())["result"] is not None:
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        bad_name = http.post(
            f"{route}/execute", json={"code": "1", "environment": {"A=B; rm": "x"}}
        )
        assert bad_name.status_code == 400 and "not allowed" in bad_name.json()["error"]


def test_stream_lines_stay_small_and_silence_gets_keepalives(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=120, headers=service.headers()) as http:
        sandbox = http.post("/api/v1/sandbox/create").json()["sandbox_id"]
        code = (
            "import time, sys, base64\n"
            "print('x' * 300_000, flush=True)\n"
            "print('\\u00e9\\U0001f600\\x00' * 40_000, file=sys.stderr, flush=True)\n"
            "time.sleep(6.5)\n"
            "from IPython.display import display, Image\n"
            "display({'image/png': base64.b64encode(bytes(200_000)).decode()}, raw=True)\n"
            "'done'"
        )
        lines = []
        route = f"/api/v1/sandbox/{sandbox}/execute/stream"
        with http.stream("POST", route, json={"code": code}) as answer:
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            for line in answer.iter_lines():
                lines.append(line)
        assert all(len(line.encode()) + 1 <= LINE_LIMIT for line in lines)
        events = [json.loads(line) for line in lines]
        kinds = [event["type"] for event in events]
        assert "".join(e["data"] for e in events if e["type"] == "stdout") == "x" * 300_000 + "\n"
        stderr = "".join(e["data"] for e in events if e["type"] == "stderr")
        assert stderr == "\u00e9\U0001f600\x00" * 40_000 + "\n"
        assert "keepalive" in kinds
        assert any(
            "does not fit in a stream line" in e["data"] for e in events if e["type"] == "info"
        )
        assert kinds.count("completed") == 1 and kinds[-1] == "completed"
        http.delete(f"/api/v1/sandbox/{sandbox}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_stopping_the_service_leaves_nothing(
    docker_engine: docker.DockerClient, tmp_path: Path, sig: signal.Signals
) -> None:
    process = start_service(tmp_path, "--per-token", "3")
    with httpx.Client(base_url=process.url, timeout=60, headers=process.headers()) as http:
        for _ in range(2):
            assert http.post("/api/v1/sandbox/create").status_code == 200
        busy = http.post("/api/v1/sandbox/create").json()["sandbox_id"]
    assert len(containers_of(docker_engine, process.pid)) >= 3
    # A stream in progress must not hold the stop up.
    client = httpx.Client(base_url=process.url, timeout=60, headers=process.headers())
    with client.stream(
        "POST",
        f"/api/v1/sandbox/{busy}/execute/stream",
        json={"code": "import time; time.sleep(60)"},
    ):
        started = time.monotonic()
        status = process.stop(sig)
        took = time.monotonic() - started
    client.close()
    if sig == signal.SIGTERM:
        assert status == 0 and took < 30, "".join(process.log)
        assert containers_of(docker_engine, process.pid) == []
    else:  # the owner's watchdog removes them
        assert wait_until_gone(docker_engine, process.pid, 30) == []
    # The token was printed once, when its file was made; never logged after.
    assert "".join(process.log).count(process.token) == 1


def test_token_file_is_created_private_and_refused_when_open(tmp_path: Path) -> None:
    from ai_computer.service.tokens import TokenFileError, load_token_file

    path = tmp_path / "sub" / "tokens"
    tokens, created = load_token_file(path)
    assert created == tokens[0] and len(created) >= 32
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_token_file(path) == (tokens, None)
    os.chmod(path, 0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        load_token_file(path)


@pytest.fixture(params=["local", "swarm"])
def any_service(request: pytest.FixtureRequest) -> ServiceProcess:
    """The session's service on the local engine, and the one on the swarm lab."""
    name = "service" if request.param == "local" else "swarm_service"
    found: ServiceProcess = request.getfixturevalue(name)
    return found


async def test_a_cancelled_remote_call_interrupts_its_code(any_service: ServiceProcess) -> None:
    import asyncio

    from ai_computer import SandboxClient

    service = any_service

    async with SandboxClient(base_url=service.url, token=service.token) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.execute_code("import time; time.sleep(30)"), 1)
        started = time.monotonic()
        after = await client.execute_code("print('next')")
        assert after.data["output"] == "next\n" and time.monotonic() - started < 10
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.execute_shell("sleep 30"), 1)
        assert (await client.execute_shell("echo ok")).data["stdout"] == "ok\n"
