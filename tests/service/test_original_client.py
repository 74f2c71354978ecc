"""The original AI Computer client (ai-computer-client 0.3.4, from PyPI, unmodified, in a venv
of its own: it installs a package named `ai_computer` too) against a real `ai-computer serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_process import ServiceProcess, start_service

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "original_client"
ORIGINAL = "ai-computer-client==0.3.4"


@pytest.fixture(scope="session")
def original_python() -> Path:
    """The python of a venv holding only the original client (made once, then reused)."""
    folder = ROOT / "test-artifacts" / "original-client-venv"
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import ai_computer.client, aiohttp"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        install = [str(python), "-m", "pip", "install", "-q", ORIGINAL]
        subprocess.run(install, check=True, timeout=600)
    return python


def drive(python: Path, script: str, *arguments: str, timeout: float = 300) -> str:
    run = subprocess.run(
        [str(python), str(SCRIPTS / script), *arguments],
        capture_output=True, text=True, timeout=timeout, cwd=SCRIPTS,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_every_route_of_the_original_client(
    original_python: Path, service: ServiceProcess, tmp_path: Path
) -> None:
    seen = json.loads(drive(original_python, "drive.py", service.url, service.token, str(tmp_path)))
    assert seen["setup"] == [True, None]

    success, data = seen["execute"]
    assert success and data["output"] == "hi\n" and data["sandbox_id"] == seen["sandbox_id"]
    assert data["result"] == 42 and data["result_text"] == "42" and data["success"] is True
    success, data = seen["execute_failed"]  # HTTP 200: the failure is inside the body
    assert success and data["success"] is False and data["output"] == "before\n"
    assert data["failure"] == "ZeroDivisionError: division by zero"
    assert data["error"]["ename"] == "ZeroDivisionError"

    stdout = [data for kind, data in seen["stream"] if kind == "stdout"]
    assert stdout == ["step 0\n", "step 1\n", "step 2\n"]
    assert (
        seen["stream"][-1][0] == "completed"
        and [k for k, _ in seen["stream"]].count("completed") == 1
    )
    assert json.loads(seen["stream"][-1][1])["success"] is True
    assert seen["stream_first_before_last_s"] > 0.7  # stdout arrived while the code ran

    line_ok, line, argv = seen["shell"]
    assert (
        line_ok and int(line["stdout"]) > 5 and line["exit_code"] == 0
    )  # `args: []`: a shell line
    assert argv["stdout"] == "a b $HOME\n"

    name = 'dä "q" 100%.txt'
    assert seen["upload_file"] == [True, name, 6, f"/workspace/{name}", None]
    assert seen["upload_file_new_folder"] == [True, f"/workspace/new folder/{name}", None]
    assert seen["upload_bytes"] == [True, "blob.bin", 8, "/workspace/sub/blob.bin", None]
    assert seen["read_file"] == [True, {"content": "café\n", "size": 6}, None]
    assert seen["read_relative"] == [True, b"\x00\x01binary".hex()]  # "/sub/blob.bin" on the wire
    # The header's name is plain ASCII ("attachment; filename=..." is all the client parses).
    assert seen["download_file"] == [True, "d_ _q_ 100%.txt", 6, "café\n"]
    assert seen["download_bytes"] == b"\x00\x01binary".hex()
    assert seen["write_file"][0] is True  # (the client sends a temporary name, not the path)

    success, data, error = seen["execute_file"]
    assert success and data["output"] == "job ran as __main__\n", (data, error)
    assert seen["execute_file_missing"] == [False, "File not found: /workspace/none.py"]
    file_events = seen["execute_file_stream"]
    assert ["stdout", "job ran as __main__\n"] in file_events and file_events[-1][0] == "completed"

    big_up, up_size, big_down, down_size, same, _seconds = seen["big"]
    assert (big_up, up_size, big_down, down_size, same) == (True, 50 << 20, True, 50 << 20, True)

    after_ok, after_output, after_seconds = seen["after_disconnect"]
    assert after_ok and after_output == "next\n"
    assert after_seconds < 10  # interrupted at once, not run out (the loop would take 30 s)
    first, second = seen["ticks_after_disconnect"]
    assert first == second, "the stream's code went on after its client left"

    assert seen["cleanup"] == [True, None]
    assert seen["after_cleanup"][0] is False  # its id is gone: 404, never "ready"


@pytest.fixture
def open_service(docker_engine: object, tmp_path: Path) -> Iterator[ServiceProcess]:
    """A service that gives tokens to anyone (the original client's `token=None`)."""
    process = start_service(tmp_path, "--give-tokens-to-anyone")
    yield process
    assert process.stop() == 0, "".join(process.log)


def test_the_original_readme_quick_start(
    original_python: Path, open_service: ServiceProcess
) -> None:
    output = drive(original_python, "quickstart.py", open_service.url)
    assert "Execution result: {'output': 'The sum is: 30\\n'" in output
    steps = [line for line in output.splitlines() if line.startswith("Output: ")]
    assert steps == [f"Output: Processing step {i}" for i in range(1, 6)] + [
        "Output: Calculation complete!"
    ]
    assert output.rstrip().endswith("Execution completed")


def test_the_original_client_is_not_in_our_venv() -> None:
    # Both install a top-level `ai_computer`: ours must be the one here.
    import ai_computer

    assert Path(ai_computer.__file__).resolve().parent == ROOT / "ai_computer"
    assert list((Path(sys.prefix) / "lib").glob("*/site-packages/ai_computer_client-*")) == []
