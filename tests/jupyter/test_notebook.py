"""Notebooks in sandboxes: nbclient and `jupyter execute` with the installed kernelspec, and
`ai-computer run-notebook` with limits chosen per run. None may leave a container behind."""

from __future__ import annotations

import asyncio
import json
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
from ai_computer.errors import SandboxStartError
from ai_computer.jupyter.notebook import run_notebook
from ai_computer.kernel.kernelspec import sandbox_kernel_spec
from ai_computer.kernel.manager import SandboxKernelManager

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


# -- the notebook's folder (notebook_dir) ----------------------------------------------------

# What nbclient's own "Inline Image" notebook does (it opens python.png beside the notebook),
# a CSV read with pandas, and a symlink out of the folder: in 'read-only' mode the folder is
# at ./notebook, in 'copy' mode its files are in /workspace itself.
FOLDER_CELLS = (
    "import os\nbase = 'notebook' if os.path.isdir('notebook') else '.'",
    "import pandas as pd\nprint(pd.read_csv(os.path.join(base, 'data.csv')).shape)",
    "from IPython.display import Image\nImage(filename=os.path.join(base, 'python.png'))",
    "try:\n    print(open(os.path.join(base, 'secret-link.txt')).read())\n"
    "except OSError as exc:\n    print(type(exc).__name__)",
)


def _png() -> bytes:
    """A valid 1x1 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def folder_kernels(jupyter_path: str) -> dict[str, str]:
    """The sandbox kernelspec with each notebook_dir mode, installed the way a user would."""
    prefix = str(Path(jupyter_path).parents[1])
    for mode in ("copy", "read-only"):
        assert main(["kernelspec", "install", "--prefix", prefix, "--notebook-dir", mode]) == 0
    return {
        "copy": "ai-computer-sandbox-folder-copy",
        "read-only": "ai-computer-sandbox-folder-ro",
        "off": "ai-computer-sandbox",
    }


@pytest.fixture
def notebook_folder(tmp_path: Path) -> Path:
    """A notebook beside a CSV and an image, and a link to a secret outside its folder."""
    (tmp_path / "secret.txt").write_text("the host's secret")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("x,y\n1,2\n3,4\n")
    (folder / "python.png").write_bytes(_png())
    (folder / "secret-link.txt").symlink_to(tmp_path / "secret.txt")
    nbformat.write(_notebook(REPORT_SANDBOX, *FOLDER_CELLS), folder / "analysis.ipynb")
    return folder


def _run_with(tool: str, kernel_name: str, folder: Path) -> nbformat.NotebookNode:
    """Run analysis.ipynb from its folder as nbclient or papermill users do."""
    source = folder / "analysis.ipynb"
    if tool == "nbclient":
        notebook = nbformat.read(source, as_version=4)
        resources = {"metadata": {"path": str(folder)}}  # where the notebook lives
        NotebookClient(notebook, kernel_name=kernel_name, timeout=60, resources=resources).execute()
        return notebook
    import papermill

    output = folder / "out.ipynb"
    papermill.execute_notebook(
        str(source), str(output), kernel_name=kernel_name, cwd=str(folder), progress_bar=False
    )
    return nbformat.read(output, as_version=4)


@pytest.mark.parametrize("mode", ["copy", "read-only"])
@pytest.mark.parametrize("tool", ["nbclient", "papermill"])
def test_the_notebooks_folder_on_request(
    docker_engine: docker.DockerClient,
    folder_kernels: dict[str, str],
    notebook_folder: Path,
    tool: str,
    mode: str,
) -> None:
    executed = _run_with(tool, folder_kernels[mode], notebook_folder)
    assert _stdout(executed.cells[3]) == "(2, 2)\n"
    [image] = executed.cells[4].outputs
    assert image["data"]["image/png"]  # the image beside the notebook, shown inline
    # The link out of the folder leads nowhere: skipped by the copy; under the read-only mount
    # it resolves inside the container, where that host path does not exist.
    assert _stdout(executed.cells[5]) == "FileNotFoundError\n"
    assert "the host's secret" not in json.dumps(executed)
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())


@pytest.mark.parametrize("tool", ["nbclient", "papermill"])
def test_without_the_option_a_file_beside_the_notebook_is_a_clear_error(
    docker_engine: docker.DockerClient,
    folder_kernels: dict[str, str],
    notebook_folder: Path,
    tool: str,
) -> None:
    with pytest.raises(Exception) as caught:
        _run_with(tool, folder_kernels["off"], notebook_folder)
    assert "FileNotFoundError" in str(caught.value) and "data.csv" in str(caught.value)


def test_run_notebook_copies_the_notebooks_folder_within_the_disk_limit(
    docker_engine: docker.DockerClient, notebook_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = notebook_folder / "analysis.ipynb", notebook_folder / "out.ipynb"
    assert main(["run-notebook", str(source), "-o", str(output), "--notebook-dir", "copy"]) == 0
    executed = nbformat.read(output, as_version=4)
    assert _stdout(executed.cells[3]) == "(2, 2)\n"
    _assert_removed(docker_engine, _stdout(executed.cells[1]).strip())

    # Too big for the sandbox's disk: refused before any container starts, naming the size.
    (notebook_folder / "big.bin").write_bytes(b"\0" * (17 << 20))
    km = SandboxKernelManager(sandbox_kernel_spec({"notebook_dir": "copy", "disk_limit": "16M"}))
    with pytest.raises(SandboxStartError) as caught:
        asyncio.run(km.start_kernel(cwd=str(notebook_folder)))
    assert f"the notebook's folder {notebook_folder} holds 17.0 MiB in 5 files" in str(caught.value)
    assert "disk_limit 16M" in str(caught.value)


@pytest.mark.skipif(os.getuid() != 0, reason="mounting a tmpfs below the folder needs root")
def test_read_only_passes_on_no_mount_below_the_folder(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    # Docker 20.10 leaves the mounts below a read-only bind writable (a tmpfs is 1777): the
    # folder is bound non-recursively, so the sandbox sees an empty, read-only directory there.
    folder, below = tmp_path / "project", tmp_path / "project" / "scratch"
    below.mkdir(parents=True)
    (folder / "data.csv").write_text("x\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(below)], check=True)
    try:
        (below / "host-only.txt").write_text("on the host's tmpfs")
        look = "import os\nprint(sorted(os.listdir('notebook')), os.listdir('notebook/scratch'))"
        write = "try:\n    open('notebook/scratch/x', 'w')\nexcept OSError as exc:\n"
        write += "    print(exc.errno)"
        notebook = _notebook(REPORT_SANDBOX, look, write)
        run = asyncio.run(run_notebook(notebook, notebook_dir="read-only", cwd=folder))
        assert run.success, run.error
        assert _stdout(notebook.cells[2]) == "['data.csv', 'scratch'] []\n"
        assert _stdout(notebook.cells[3]) == "30\n"  # EROFS
        assert sorted(os.listdir(below)) == ["host-only.txt"]
        _assert_removed(docker_engine, _stdout(notebook.cells[1]).strip())
    finally:
        subprocess.run(["umount", str(below)], check=True)
