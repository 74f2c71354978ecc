"""The architecture's rules, checked on the source (no Docker): each layer imports only the
layers below it, only the engine backends (``backends/docker``, ``backends/swarm``) talk to
engines, and light commands stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ai_computer"
# What each layer may import of the package (besides the shared modules at its root).
ALLOWED = {
    "sdk": {"sdk", "kernel", "backends", "inside"},
    "kernel": {"kernel", "backends", "inside"},
    "backends": {"backends", "inside"},
    "jupyter": {"jupyter", "sdk", "kernel", "backends", "inside"},
    "service": {"service", "sdk", "kernel", "backends", "inside"},
    "inside": {"inside"},
}
SHARED = {"errors", "limits", "models", "_version"}


def _imports(path: Path) -> list[str]:
    """The modules ``path`` imports, as dotted names (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return found


def _sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for path in _sources(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "ai_computer" or len(parts) < 2:
                continue
            if parts[1] not in ALLOWED[layer] | SHARED and parts[1] not in ("",):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []


def test_only_the_engine_backends_import_docker() -> None:
    engines = {PACKAGE / "backends" / "docker", PACKAGE / "backends" / "swarm"}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if engines & set(path.parents):
            continue
        wrong += [
            f"{path.relative_to(PACKAGE)} imports {name}"
            for name in _imports(path)
            if name.split(".")[0] in ("docker", "requests")
        ]
    assert wrong == []


def test_only_the_backends_and_the_command_line_reach_the_docker_backend() -> None:
    # The rest gets a backend through ``backends.backend()`` and the seam's types.
    allowed = {PACKAGE / "backends", PACKAGE / "cli.py"}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed or any(parent in allowed for parent in path.parents):
            continue
        wrong += [
            f"{path.relative_to(PACKAGE)} imports {name}"
            for name in _imports(path)
            if name.startswith("ai_computer.backends.docker")
        ]
    assert wrong == []


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)), file=sys.__stdout__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(run.stdout.split())


def test_the_sdk_loads_no_engine_client() -> None:
    loaded = _loaded_after("from ai_computer import SandboxClient, SandboxPool")
    assert "ai_computer.sdk.client" in loaded
    assert not {"docker", "fastapi", "httpx", "mcp"} & loaded  # the server extra stays optional


def test_the_command_line_help_loads_neither_jupyter_client_nor_zmq() -> None:
    statement = (
        "from ai_computer.cli import build_parser; import contextlib, io; "
        "f = io.StringIO(); r = contextlib.redirect_stdout(f); r.__enter__(); "
        "exec('try:\\n build_parser().parse_args([\"--help\"])\\nexcept SystemExit: pass')"
    )
    loaded = _loaded_after(statement)
    assert "ai_computer.cli" in loaded
    assert not {"jupyter_client", "zmq", "fastapi", "uvicorn"} & loaded
