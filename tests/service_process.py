"""A real `ai-computer serve` in a child process, on 127.0.0.1 and a port of its choosing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@dataclass
class ServiceProcess:
    process: subprocess.Popen[str]
    url: str
    token: str
    token_file: Path
    log: list[str] = field(default_factory=list)
    _reader: threading.Thread = field(default_factory=threading.Thread)

    @property
    def pid(self) -> int:
        return self.process.pid

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Signal the service and wait for it to exit; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(5)
            if self.process.stdout is not None:
                self.process.stdout.close()
        # uvicorn re-raises the signal once it has shut down cleanly.
        return 0 if status == -sig and self.shut_down_cleanly else status

    @property
    def shut_down_cleanly(self) -> bool:
        return any("Application shutdown complete" in line for line in self.log)


def start_service(
    folder: Path, *arguments: str, tokens: list[str] | None = None, timeout: float = 60.0
) -> ServiceProcess:
    """Start the service with a token file in ``folder`` (new, or holding ``tokens``); return
    once it listens."""
    token_file = folder / "tokens"
    if tokens is not None:
        token_file.write_text("\n".join(tokens) + "\n")
        token_file.chmod(0o600)
    command = [
        sys.executable, "-m", "ai_computer", "serve", "--port", "0",
        "--token-file", str(token_file), *arguments,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            match = _LISTENING.search(line)
            if match and not url:
                url.append(match.group(1))
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("ai-computer serve did not start:\n" + "".join(log))
    found_tokens = [
        line for line in token_file.read_text().splitlines() if not line.startswith("#")
    ]
    return ServiceProcess(process, url[0], found_tokens[0], token_file, log, reader)
