"""llm-sandbox (Docker backend), driven for benchmarks/compare.py from a venv of its own.

    test-artifacts/peers-venv/bin/python benchmarks/peer_llm_sandbox.py \
        --image ai-computer-sandbox:TAG --memory-limit 512m --label KEY=VALUE

llm-sandbox is not one of ai-computer's dependencies: compare.py makes that venv, starts this
script in it and talks to it over stdin/stdout, one JSON object a line each way:

    {"op": "version"}                 -> {"version": "0.3.46"}
    {"op": "cycle", "executes": 4}    -> {"cold_first_result": s, "setup": s, "execute": [s, ...],
                                          "cleanup": s}
    {"op": "throughput", "creators": 4, "seconds": 30, "most": 100}
                                      -> {"completed": n, "seconds": s}

Times are seconds. A failed request answers ``{"error": "..."}``. It exits at the end of its
input. Every container it makes carries the label given, so that compare.py can find and
remove whatever is left, even after this process was killed.

The sessions are set up like ours: the same image, no network (``network_mode: none``), the same
memory limit with swap off. ``skip_environment_setup``: the image already has Python and its
packages, and llm-sandbox's own set-up (a venv, then ``pip install --upgrade pip``) needs the
network. Everything else is llm-sandbox's default: root in the container, and ``close()``
stops the container with the engine's default timeout (the image's ``python`` as PID 1 ignores
SIGTERM, so that is about 10 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any, TextIO

from llm_sandbox import SandboxSession

WORKDIR = "/workspace"
"""Where llm-sandbox copies each snippet; the image's working directory."""


def new_session(image: str, memory_limit: str, labels: dict[str, str]) -> Any:
    """An llm-sandbox Docker session (not yet open) set up like our sandboxes."""
    return SandboxSession(
        lang="python",
        image=image,
        workdir=WORKDIR,
        skip_environment_setup=True,
        runtime_configs={
            "network_mode": "none",
            "mem_limit": memory_limit,
            "memswap_limit": memory_limit,  # swap off, as ours
            "labels": dict(labels),
        },
    )


def run_checked(session: Any, code: str, expected_stdout: str | None = None) -> None:
    """``session.run(code)``, raising unless it exited 0 (and printed ``expected_stdout``)."""
    result = session.run(code)
    if result.exit_code != 0 or (expected_stdout is not None and result.stdout != expected_stdout):
        raise RuntimeError(
            f"llm-sandbox run({code!r}) exited {result.exit_code} with stdout "
            f"{result.stdout!r} and stderr {result.stderr[-500:]!r}"
        )


class Driver:
    """Answers compare.py's requests with llm-sandbox sessions of one configuration."""

    def __init__(self, image: str, memory_limit: str, labels: dict[str, str]) -> None:
        self.image = image
        self.memory_limit = memory_limit
        self.labels = labels

    def cycle(self, executes: int) -> dict[str, Any]:
        """One session from nothing: open, first ``print(1+1)``, ``executes`` runs, close."""
        started = time.perf_counter()
        session = new_session(self.image, self.memory_limit, self.labels)
        session.open()
        try:
            opened = time.perf_counter()
            run_checked(session, "print(1+1)", "2\n")
            first = time.perf_counter()
            execute = []
            for _ in range(executes):
                before = time.perf_counter()
                run_checked(session, "1+1")
                execute.append(time.perf_counter() - before)
        finally:
            closing = time.perf_counter()
            session.close()
            closed = time.perf_counter()
        return {
            "cold_first_result": first - started,
            "setup": opened - started,
            "execute": execute,
            "cleanup": closed - closing,
        }

    def throughput(self, creators: int, seconds: float, most: int) -> dict[str, Any]:
        """``creators`` threads, each looping open -> ``print(1+1)`` -> close until ``seconds``
        have passed or it made ``most``; how many completed, and the wall time."""
        deadline = time.perf_counter() + seconds
        lock = threading.Lock()
        completed = 0

        def creator() -> None:
            nonlocal completed
            for _ in range(most):
                if time.perf_counter() >= deadline:
                    return
                session = new_session(self.image, self.memory_limit, self.labels)
                session.open()
                try:
                    run_checked(session, "print(1+1)", "2\n")
                finally:
                    session.close()
                with lock:
                    completed += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(creators) as threads:
            for future in [threads.submit(creator) for _ in range(creators)]:
                future.result()  # raises a creator's error
        return {"completed": completed, "seconds": time.perf_counter() - started}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request."""
        operation = request.get("op")
        if operation == "version":
            return {"version": version("llm-sandbox")}
        if operation == "cycle":
            return self.cycle(int(request["executes"]))
        if operation == "throughput":
            return self.throughput(
                int(request["creators"]), float(request["seconds"]), int(request["most"])
            )
        raise ValueError(f"unknown op {operation!r} (known: version, cycle, throughput)")


def serve(driver: Driver, requests: TextIO, replies: TextIO) -> None:
    """Answer each request line until the input ends."""
    for line in requests:
        try:
            reply = driver.answer(json.loads(line))
        except Exception as exc:  # reported to compare.py, which stops the run
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--memory-limit", required=True)
    parser.add_argument("--label", required=True, help="KEY=VALUE put on every container")
    arguments = parser.parse_args()
    key, _, value = arguments.label.partition("=")
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever a library prints must not garble the replies
    serve(Driver(arguments.image, arguments.memory_limit, {key: value}), sys.stdin, replies)


if __name__ == "__main__":
    main()
