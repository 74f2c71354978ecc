"""Running a whole notebook in a fresh sandbox with nbclient, with limits chosen per run.

The sandbox is started from an in-memory kernelspec (nothing to install or edit) and is always
removed afterwards. As with the SDK, a failing cell is not an exception: it comes back as a
:class:`NotebookRun` with ``success=False``, the index of the cell and a one-line reason.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from .. import limits
from ..backends.base import describe_exit
from ..kernel.kernelspec import sandbox_kernel_spec
from ..kernel.manager import SandboxKernelManager, shut_down_sandbox
from ..kernel.notebook_dir import parse_mode
from ..kernel.provisioner import DockerSandboxProvisioner
from ..sdk.execution import strip_ansi


@dataclass
class NotebookRun:
    """The outcome of :func:`run_notebook`. ``notebook`` holds the outputs of every cell run."""

    notebook: NotebookNode
    success: bool
    duration: float
    """Seconds from the sandbox's start to its removal."""
    cells_run: int
    """Code cells started (the failing one included)."""
    error: str | None = None
    """Why the run stopped, in one line: ``ZeroDivisionError: division by zero``."""
    failed_cell: int | None = None
    """Index in ``notebook.cells`` of the cell that failed."""
    traceback: str = ""
    """The failing cell's traceback, without colour codes."""


def read_notebook(path: str | os.PathLike[str]) -> NotebookNode:
    """Read a notebook file (nbformat 4). ``OSError`` or ``ValueError`` when it cannot be read."""
    notebook: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def write_notebook(notebook: NotebookNode, path: str | os.PathLike[str]) -> None:
    """Write a notebook file."""
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]


def _cell_traceback(cell: NotebookNode) -> str:
    """The plain traceback of a cell's error output, if it has one."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return strip_ansi("\n".join(output.get("traceback", [])))
    return ""


async def run_notebook(
    notebook: NotebookNode,
    *,
    memory_limit: str | int = limits.DEFAULT_MEMORY_LIMIT,
    cpu_limit: float = limits.DEFAULT_CPU_LIMIT,
    timeout: float | None = limits.DEFAULT_TIMEOUT,
    startup_timeout: float = limits.DEFAULT_STARTUP_TIMEOUT,
    image: str | None = None,
    runtime: str = "runc",
    notebook_dir: str = "off",
    cwd: str | os.PathLike[str] | None = None,
) -> NotebookRun:
    """Execute every code cell of ``notebook`` (in place) in a new sandbox; stop at the first
    failure. ``timeout`` is per cell (``None``: no limit). ``notebook_dir`` (``"copy"``,
    ``"read-only"``) gives the sandbox the folder ``cwd`` (the notebook's; default: this
    process's working directory), see ``kernel/notebook_dir.py``.

    Limits are validated first (``ValueError``). A sandbox that cannot start raises
    :class:`~ai_computer.errors.SandboxError`; failures of the notebook's code do not raise.
    """
    config: dict[str, Any] = {
        "memory_limit": limits.parse_memory_limit(memory_limit),
        "cpu_limit": limits.parse_cpu_limit(cpu_limit),
        "runtime": limits.parse_runtime(runtime),
        "notebook_dir": parse_mode(notebook_dir),
    }
    if image is not None:
        config["image"] = image
    cell_timeout = limits.parse_timeout(timeout)
    km = SandboxKernelManager(sandbox_kernel_spec(config))
    run = NotebookRun(notebook, success=True, duration=0.0, cells_run=0)

    def on_cell_execute(cell: NotebookNode, cell_index: int) -> None:
        run.failed_cell = cell_index  # kept only if the run fails
        run.cells_run += 1

    client = NotebookClient(
        notebook,
        km=km,
        kernel_name=km.kernel_name,
        # Per cell; None: no limit. nbclient counts whole seconds.
        timeout=None if cell_timeout is None else math.ceil(cell_timeout),
        startup_timeout=math.ceil(startup_timeout),
        on_cell_execute=on_cell_execute,  # called for code cells only
    )
    started = time.monotonic()
    provisioner: DockerSandboxProvisioner | None = None
    try:
        # Started here rather than by nbclient, so that a sandbox that cannot start raises our
        # error cleanly (nbclient would leave an atexit clean-up behind).
        await km.start_kernel(cwd=os.fspath(cwd) if cwd is not None else os.getcwd())
        if isinstance(km.provisioner, DockerSandboxProvisioner):
            provisioner = km.provisioner  # to say why the kernel died, once nbclient is done
        # cleanup_kc: nbclient shuts down only kernels it made itself unless told to.
        await client.async_execute(cleanup_kc=True)
    except CellExecutionError as exc:
        run.success, run.error = False, f"{exc.ename}: {exc.evalue}"
    except CellTimeoutError:
        assert cell_timeout is not None
        run.success = False
        run.error = f"cell timed out after {limits.format_seconds(cell_timeout)}"
    except DeadKernelError:
        ended = provisioner.last_exit if provisioner is not None else None
        run.success = False
        run.error = (
            describe_exit(ended, int(config["memory_limit"])) if ended else "the kernel died"
        )
    finally:
        if km.kernel_id:  # nbclient may have shut the kernel down; the sandbox goes here
            await shut_down_sandbox(km, km.kernel_id)
        run.duration = time.monotonic() - started
    if run.success:
        run.failed_cell = None
    elif run.failed_cell is not None:
        run.traceback = _cell_traceback(notebook.cells[run.failed_cell])
    return run
