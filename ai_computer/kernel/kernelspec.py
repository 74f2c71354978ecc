"""The "AI Computer Sandbox" kernelspec: the shipped one, variants with other limits, installing.

The kernelspec shipped in the package (``ai_computer/data/kernelspec/ai-computer-sandbox/``: its
``kernel.json`` and logos) is the one source of truth. Every sandbox kernelspec is built from
it: the ones ``ai-computer kernelspec install`` writes (optionally with other limits), and the
in-memory ones the SDK and ``ai-computer run-notebook`` start without installing anything.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from .. import limits
from . import notebook_dir as notebook_folder

PROVISIONER_NAME = "ai-computer-docker"
"""Entry-point name of :class:`~ai_computer.kernel.provisioner.DockerSandboxProvisioner`."""

KERNEL_NAME = "ai-computer-sandbox"
"""Name of the default sandbox kernelspec (what ``--kernel_name`` takes)."""

DISPLAY_NAME = "AI Computer Sandbox"
"""Display name of the default sandbox kernelspec, as JupyterLab's launcher shows it."""

SHIPPED_KERNELSPEC_DIR = Path(__file__).parent.parent / "data" / "kernelspec" / KERNEL_NAME
"""The kernelspec directory shipped in the package."""

# notebook_dir -> what it adds to a kernel's name and to its display name.
_FOLDER_NAMES = {
    "copy": ("-folder-copy", "folder copied"),
    "read-only": ("-folder-ro", "folder read-only"),
}

# Jupyter's own rule for kernel names (jupyter_client.kernelspec._is_valid_kernel_name).
_KERNEL_NAME_PATTERN = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


def kernel_json(
    provisioner_config: Mapping[str, Any] | None = None, *, display_name: str | None = None
) -> dict[str, Any]:
    """The shipped ``kernel.json`` with ``provisioner_config`` laid over its provisioner config.

    Keys of ``provisioner_config`` are traits of
    :class:`~ai_computer.kernel.provisioner.DockerSandboxProvisioner` (``memory_limit``, ...).
    """
    data: dict[str, Any] = json.loads((SHIPPED_KERNELSPEC_DIR / "kernel.json").read_text())
    provisioner = data["metadata"]["kernel_provisioner"]
    provisioner["config"] = {**provisioner.get("config", {}), **(provisioner_config or {})}
    if display_name is not None:
        data["display_name"] = display_name
    return data


def sandbox_kernel_spec(
    provisioner_config: Mapping[str, Any] | None = None, *, display_name: str | None = None
) -> KernelSpec:
    """An in-memory sandbox kernelspec: :func:`kernel_json` as a ``KernelSpec``."""
    data = kernel_json(provisioner_config, display_name=display_name)
    return KernelSpec(resource_dir=str(SHIPPED_KERNELSPEC_DIR), **data)


def _format_cpus(cpu_limit: float) -> str:
    return f"{cpu_limit:g} CPU" if cpu_limit == 1 else f"{cpu_limit:g} CPUs"


def _format_memory(memory_limit: int) -> str:
    """``2 GB``, ``1.5 GB``, ``512 MB``: the way people read limits in a launcher."""
    if memory_limit >= limits.GIB:
        return f"{memory_limit / limits.GIB:.3g} GB"
    return f"{memory_limit / limits.MIB:.4g} MB"


def variant_display_name(memory_limit: int, cpu_limit: float) -> str:
    """The display name of a variant: ``AI Computer Sandbox (2 GB, 4 CPUs)``."""
    return f"{DISPLAY_NAME} ({_format_memory(memory_limit)}, {_format_cpus(cpu_limit)})"


def variant_kernel_name(memory_limit: int, cpu_limit: float) -> str:
    """The kernel name of a variant: ``ai-computer-sandbox-2g-4cpu``."""
    return f"{KERNEL_NAME}-{limits.format_size(memory_limit).lower()}-{cpu_limit:g}cpu"


@dataclass(frozen=True)
class InstalledKernelSpec:
    """Where a sandbox kernelspec was installed, and what it says."""

    name: str
    display_name: str
    path: str
    memory_limit: int
    cpu_limit: float
    on_jupyter_path: bool
    """False when Jupyter will not find it unless ``JUPYTER_PATH`` names its prefix."""


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    name: str | None = None,
    display_name: str | None = None,
    memory_limit: str | int | None = None,
    cpu_limit: float | str | None = None,
    image: str | None = None,
    prestart: int | None = None,
    runtime: str = "runc",
    notebook_dir: str = "off",
    kernel_spec_manager: KernelSpecManager | None = None,
) -> InstalledKernelSpec:
    """Install the sandbox kernelspec, or a variant with other limits, through KernelSpecManager.

    Where: ``user=True`` for the user's Jupyter data directory, else ``prefix``
    (``PREFIX/share/jupyter/kernels``); the default prefix is ``sys.prefix``, the environment
    that has the provisioner (Jupyter hides kernelspecs whose provisioner it cannot load).

    Limits are validated first (``ValueError`` names the value and the allowed range). A variant
    (limits other than the shipped ones) gets its own name and a display name stating its limits,
    e.g. ``ai-computer-sandbox-2g-4cpu`` and "AI Computer Sandbox (2 GB, 4 CPUs)", unless
    ``name`` / ``display_name`` say otherwise. Installing replaces a kernelspec of the same name.
    ``prestart`` (0 to 8) keeps that many spare sandboxes started in a Jupyter server, so that
    opening a notebook does not wait for one. ``runtime="gvisor"`` runs the kernel under gVisor:
    ``ai-computer-sandbox-gvisor``, "AI Computer Sandbox (gVisor)" (suffixes to a variant's).
    ``notebook_dir`` gives the sandbox the notebook's folder: ``"copy"`` (copied into
    /workspace at start) or ``"read-only"`` (mounted at /workspace/notebook); names and
    display names say so (``-folder-copy``, "folder copied"), see ``kernel/notebook_dir.py``.
    """
    runtime = limits.parse_runtime(runtime)
    notebook_dir = notebook_folder.parse_mode(notebook_dir)
    if notebook_dir == "read-only" and prestart:
        raise ValueError(
            "notebook_dir 'read-only' cannot be combined with prestart (a spare sandbox starts "
            "before the notebook's folder is known); use notebook_dir 'copy' or prestart 0"
        )
    if user and prefix is not None:
        raise ValueError("choose one of user=True or prefix, not both")
    shipped_config = kernel_json()["metadata"]["kernel_provisioner"]["config"]
    memory = limits.parse_memory_limit(
        memory_limit if memory_limit is not None else shipped_config["memory_limit"]
    )
    cpus = limits.parse_cpu_limit(
        cpu_limit if cpu_limit is not None else shipped_config["cpu_limit"]
    )
    is_variant = memory != limits.parse_memory_limit(
        shipped_config["memory_limit"]
    ) or cpus != limits.parse_cpu_limit(shipped_config["cpu_limit"])
    if name is None:
        name = variant_kernel_name(memory, cpus) if is_variant else KERNEL_NAME
        if runtime == "gvisor":
            name += "-gvisor"
        if notebook_dir != "off":
            name += _FOLDER_NAMES[notebook_dir][0]
    if not _KERNEL_NAME_PATTERN.match(name):
        raise ValueError(
            f"kernel name {name!r} is not allowed: use letters, digits, '.', '_' and '-'"
        )
    if display_name is None:
        notes = []  # "AI Computer Sandbox (2 GB, 4 CPUs, gVisor, folder copied)"
        if is_variant:
            notes.append(variant_display_name(memory, cpus)[len(DISPLAY_NAME) + 2 : -1])
        if runtime == "gvisor":
            notes.append("gVisor")
        if notebook_dir != "off":
            notes.append(_FOLDER_NAMES[notebook_dir][1])
        display_name = f"{DISPLAY_NAME} ({', '.join(notes)})" if notes else DISPLAY_NAME
    config: dict[str, Any] = {
        "memory_limit": limits.format_size(memory),
        "cpu_limit": int(cpus) if cpus.is_integer() else cpus,
    }
    if image is not None:
        config["image"] = image
    if runtime != "runc":
        config["runtime"] = runtime
    if prestart:  # spare sandboxes kept started by the Jupyter server (see kernel/spares.py)
        config["prestart"] = limits.parse_prestart(prestart)
    if notebook_dir != "off":
        config["notebook_dir"] = notebook_dir
    spec = kernel_json(config, display_name=display_name)

    specs = kernel_spec_manager or KernelSpecManager()
    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory(prefix="ai-computer-kernelspec-") as staging:
        source = Path(staging) / name
        shutil.copytree(SHIPPED_KERNELSPEC_DIR, source)
        (source / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        path = specs.install_kernel_spec(str(source), name, user=user, prefix=prefix)
    return InstalledKernelSpec(
        name=name,
        display_name=display_name,
        path=path,
        memory_limit=memory,
        cpu_limit=cpus,
        on_jupyter_path=str(Path(path).parent) in specs.kernel_dirs,
    )


def installed_sandbox_kernelspecs(
    kernel_spec_manager: KernelSpecManager | None = None,
) -> dict[str, KernelSpec]:
    """The installed kernelspecs (by name) that start an AI Computer sandbox."""
    specs = kernel_spec_manager or KernelSpecManager()
    found: dict[str, KernelSpec] = {}
    for name in sorted(specs.find_kernel_specs()):
        try:
            spec = specs.get_kernel_spec(name)
        except Exception:  # a broken kernel.json elsewhere is not our business here
            continue
        provisioner = (spec.metadata or {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name") == PROVISIONER_NAME:
            found[name] = spec
    return found
