"""Notebooks in sandboxes: nbclient and `jupyter execute` with the installed kernelspec, and
`ai-computer run-notebook` with limits chosen per run. None may leave a container behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ai_computer.backends.labels import SANDBOX_LABEL
from ai_computer.cli import main

# The provisioner tells the kernel its sandbox id: the notebook reports it, the test checks it.
REPORT_SANDBOX = "import os; print(os.environ['AI_COMPUTER_SANDBOX_ID'])"


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# test"), *map(new_code_cell, sources)])


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _assert_removed(engine: docker.DockerClient, sandbox_id: str) -> None:
    selector = {"label": f"{SANDBOX_LABEL}={sandbox_id}"}
    assert engine.containers.list(all=True, filters=selector) == []
    assert engine.volumes.list(filters=selector) == []


def test_nbclient_runs_the_installed_kernelspec(
    docker_engine: docker.DockerClient, jupyter_path: str
) -> None:
    notebook = _notebook(REPORT_SANDBOX, "import os; print(os.getcwd())", "6 * 7")
    NotebookClient(notebook, kernel_name="ai-computer-sandbox", timeout=60).execute()
    sandbox_id = _stdout(notebook.cells[1]).strip()
    assert _stdout(notebook.cells[2]) == "/workspace\n"
    assert notebook.cells[3].outputs[0]["data"]["text/plain"] == "42"
    _assert_removed(docker_engine, sandbox_id)


def test_jupyter_execute_runs_the_installed_kernelspec(
    docker_engine: docker.DockerClient, jupyter_path: str, tmp_path: Path
) -> None:
    path = tmp_path / "notebook.ipynb"
    nbformat.write(_notebook(REPORT_SANDBOX, "print(sum(range(10)))"), path)
    jupyter = Path(sys.executable).with_name("jupyter")
    subprocess.run(
        [jupyter, "execute", "--kernel_name=ai-computer-sandbox", "--inplace", path],
        env={**os.environ, "JUPYTER_PATH": jupyter_path},
        capture_output=True,
        check=True,
        timeout=90,
    )
    executed = nbformat.read(path, as_version=4)
    assert _stdout(executed.cells[2]) == "45\n"
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())


def test_run_notebook_applies_the_limits_of_the_run(
    docker_engine: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    limits = "import os; print(*(os.environ[f'AI_COMPUTER_{n}_LIMIT'] for n in ('MEMORY', 'CPU')))"
    nbformat.write(_notebook(REPORT_SANDBOX, limits), source)
    command = ["run-notebook", str(source), "-o", str(output), "--memory-limit", "256M"]
    assert main([*command, "--cpu-limit", "0.5"]) == 0
    assert "2 code cells ran" in capsys.readouterr().out
    executed = nbformat.read(output, as_version=4)
    assert _stdout(executed.cells[2]) == f"{256 * 1024**2} 0.5\n"
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())


def test_run_notebook_stops_at_the_failing_cell_and_shows_it(
    docker_engine: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook(REPORT_SANDBOX, "x = 1\n1 / 0", "print('never')"), source)
    assert main(["run-notebook", str(source), "-o", str(output)]) == 1
    err = capsys.readouterr().err
    assert "--- cell 3 ---\nx = 1\n1 / 0\n---" in err
    assert "----> 2 1 / 0" in err  # the traceback, without colour codes
    assert err.rstrip().endswith("cell 3 failed: ZeroDivisionError: division by zero")
    executed = nbformat.read(output, as_version=4)  # written anyway: it shows what happened
    assert executed.cells[2].outputs[-1]["ename"] == "ZeroDivisionError"
    assert executed.cells[3].outputs == []
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())


def test_run_notebook_cell_timeout(
    docker_engine: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook(REPORT_SANDBOX, "import time\ntime.sleep(60)"), source)
    started = time.monotonic()
    assert main(["run-notebook", str(source), "-o", str(output), "--timeout", "1"]) == 1
    assert time.monotonic() - started < 15
    assert capsys.readouterr().err.rstrip().endswith("cell 3 failed: cell timed out after 1 s")
    _assert_removed(docker_engine, _stdout(nbformat.read(output, as_version=4).cells[1]).strip())


def test_run_notebook_says_when_the_memory_limit_killed_the_kernel(
    docker_engine: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook(REPORT_SANDBOX, "block = b' ' * (600 * 1024**2)"), source)
    assert main(["run-notebook", str(source), "-o", str(output), "--memory-limit", "256M"]) == 1
    err = capsys.readouterr().err
    assert err.rstrip().endswith("cell 3 failed: killed: memory limit 256M exceeded")
    _assert_removed(docker_engine, _stdout(nbformat.read(output, as_version=4).cells[1]).strip())


def test_run_notebook_refuses_bad_limits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run-notebook", "any.ipynb", "--cpu-limit", "0"])
    assert exit_info.value.code == 2
    assert "cpu_limit '0' is below the minimum of 0.1" in capsys.readouterr().err


def test_notebooks_run_under_gvisor_through_its_kernelspec_and_run_notebook(
    docker_engine: docker.DockerClient, gvisor: None, tmp_path: Path
) -> None:
    assert main(["kernelspec", "install", "--prefix", str(tmp_path), "--runtime", "gvisor"]) == 0
    kernels = str(tmp_path / "share" / "jupyter")
    release = "import subprocess; print(subprocess.run(['dmesg'], capture_output=True).stdout)"
    notebook = _notebook(REPORT_SANDBOX, release)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", kernels)
        NotebookClient(notebook, kernel_name="ai-computer-sandbox-gvisor", timeout=90).execute()
    assert "Starting gVisor" in _stdout(notebook.cells[2])  # gVisor's own kernel's log
    _assert_removed(docker_engine, _stdout(notebook.cells[1]).strip())

    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook(REPORT_SANDBOX, release), source)
    assert main(["run-notebook", str(source), "-o", str(output), "--runtime", "gvisor"]) == 0
    executed = nbformat.read(output, as_version=4)
    assert "Starting gVisor" in _stdout(executed.cells[2])
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())
