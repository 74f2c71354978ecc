"""The sandbox provisioner's configuration: its traits, each with ``help=`` and a validator.

These are the keys a kernelspec's ``metadata.kernel_provisioner.config`` may hold, and only
these: any other key (``privileged``, ``cap_add``, ``devices``, ``volumes``, ...) is refused, so
isolation cannot be weakened by configuration. Values are checked here, with messages that name
the value and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, Union, default, validate

from .. import limits
from ..backends.image import default_image_tag
from ..backends.labels import default_runtime_root
from . import notebook_dir

T = TypeVar("T")

# What traitlets' Configurable takes besides traits, when the provisioner is built directly.
_CONFIGURABLE_KEYWORDS = {"parent", "config", "log"}


class SandboxProvisionerConfig(KernelProvisionerBase):
    """The configurable part of the sandbox provisioner (``provisioner.py`` has its hooks)."""

    image = Unicode(
        help="Docker image of the sandbox (default: the one `ai-computer image build` makes)."
    ).tag(config=True)
    memory_limit = Union(
        [Int(), Unicode()],
        default_value=limits.DEFAULT_MEMORY_LIMIT,
        help="Memory limit ('512M', '1G' or bytes; 128M to 2G). Swap is off.",
    ).tag(config=True)
    cpu_limit = Float(limits.DEFAULT_CPU_LIMIT, help="CPU limit in cores (0.1 to 4).").tag(
        config=True
    )
    pids_limit = Int(
        limits.DEFAULT_PIDS_LIMIT,
        help="Most processes and threads the sandbox may have (stops fork bombs).",
    ).tag(config=True)
    runtime = Unicode(
        "runc",
        help="Where the kernel runs: 'runc' (Docker's default) or 'gvisor' (gVisor's runsc, a "
        "user-space kernel between the code and the host's; registered with the engine as "
        "'ai-computer-gvisor', see the README).",
    ).tag(config=True)
    tmp_size = Unicode(
        "64M", help="Size of the writable /tmp and home tmpfs (each; counted against memory)."
    ).tag(config=True)
    disk_limit = Union(
        [Int(), Unicode()],
        default_value=limits.DEFAULT_DISK_LIMIT,
        help="Size of /workspace and of /opt/packages (each; 16M to 2G). They are tmpfs volumes: "
        "writes past the size fail with ENOSPC, and their files count against memory_limit.",
    ).tag(config=True)
    environment = Dict(
        value_trait=Unicode(),
        help="Environment variables for the kernel. Nothing from the host's environment is passed.",
    ).tag(config=True)
    runtime_root = Unicode(
        help="Host directory holding one runtime directory (connection file, sockets) per sandbox."
    ).tag(config=True)
    sandbox_user = Unicode(
        help="uid:gid the kernel runs as: never root, never the uid of this process "
        "(default 1000:1000, or 1001:1001 when this process runs as uid 1000)."
    ).tag(config=True)
    log_max_size = Unicode("1m", help="Largest size of the container's log.").tag(config=True)
    message_limit = Union(
        [Int(), Unicode()],
        default_value=64 * limits.MIB,
        help="Largest message (all its parts) the relay passes from the kernel (1M to 256M); a "
        "larger one ends the relay and the kernel must be restarted.",
    ).tag(config=True)
    relay_memory_limit = Union(
        [Int(), Unicode()],
        default_value=256 * limits.MIB,
        help="Memory limit of the relay between the kernel and this process (64M to 2G). It "
        "must hold a few messages of message_limit; a message too big to hold kills it.",
    ).tag(config=True)
    stop_timeout = Float(5.0, help="Seconds the kernel is given to exit before it is killed.").tag(
        config=True
    )
    remove_in_background = Bool(
        False,
        help="Whether the sandbox's removal at shutdown (once its kernel is dead) runs in a "
        "worker thread rather than in the shutdown itself (see backends/removals.py: it still "
        "finishes before the process exits). The SDK turns it on, so cleanup() returns fast.",
    ).tag(config=True)
    notebook_dir = Unicode(
        "off",
        help="The notebook's folder in the sandbox (the folder the kernel is launched from): "
        "'off' (the default: nothing of the host), 'copy' (copied into /workspace at the "
        "sandbox's first start, within disk_limit) or 'read-only' (mounted read-only at "
        "/workspace/notebook). Either way the sandboxed code can read everything in it; see "
        "kernel/notebook_dir.py. 'read-only' cannot be combined with prestart.",
    ).tag(config=True)
    prestart = Int(
        0,
        help="Spare sandboxes of this configuration kept started in this process (0 to 8), so "
        "that a kernel launch takes one at once (see kernel/spares.py). Each costs its memory "
        "while idle. For Jupyter servers; leave it 0 for one-off runs.",
    ).tag(config=True)

    @default("image")
    def _default_image(self) -> str:
        return default_image_tag()

    @default("runtime_root")
    def _default_runtime_root(self) -> str:
        return default_runtime_root()

    @default("sandbox_user")
    def _default_sandbox_user(self) -> str:
        # The runtime directory is closed to the sandbox by ownership: the sandbox's uid must
        # differ from ours, or code inside could open it again.
        return "1001:1001" if os.getuid() == 1000 else "1000:1000"

    @validate("memory_limit")
    def _validate_memory_limit(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_memory_limit, proposal["value"])

    @validate("cpu_limit")
    def _validate_cpu_limit(self, proposal: dict[str, Any]) -> float:
        return self._checked(limits.parse_cpu_limit, proposal["value"])

    @validate("pids_limit")
    def _validate_pids_limit(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 32 <= value <= 4096:
            raise TraitError(f"pids_limit {value} is out of range (allowed: 32 to 4096)")
        return value

    @validate("runtime")
    def _validate_runtime(self, proposal: dict[str, Any]) -> str:
        return self._checked(limits.parse_runtime, proposal["value"])

    @validate("disk_limit")
    def _validate_disk_limit(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_disk_limit, proposal["value"])

    @validate("message_limit")
    def _validate_message_limit(self, proposal: dict[str, Any]) -> int:
        return self._sized("message_limit", proposal["value"], limits.MIB, 256 * limits.MIB)

    @validate("relay_memory_limit")
    def _validate_relay_memory_limit(self, proposal: dict[str, Any]) -> int:
        return self._sized("relay_memory_limit", proposal["value"], 64 * limits.MIB, limits.GIB * 2)

    def _sized(self, name: str, value: Any, smallest: int, largest: int) -> int:
        size = self._checked(partial(limits.parse_size, name=name), value)
        if not smallest <= size <= largest:
            allowed = f"{limits.format_size(smallest)} to {limits.format_size(largest)}"
            raise TraitError(f"{name} {value!r} is out of range (allowed: {allowed})")
        return size

    @validate("prestart")
    def _validate_prestart(self, proposal: dict[str, Any]) -> int:
        return self._checked(limits.parse_prestart, proposal["value"])

    @validate("notebook_dir")
    def _validate_notebook_dir(self, proposal: dict[str, Any]) -> str:
        return self._checked(notebook_dir.parse_mode, proposal["value"])

    @validate("tmp_size")
    def _validate_tmp_size(self, proposal: dict[str, Any]) -> str:
        size = self._checked(partial(limits.parse_size, name="tmp_size"), proposal["value"])
        if size > limits.MAX_MEMORY_LIMIT:
            raise TraitError(f"tmp_size {proposal['value']!r} exceeds the maximum of 2G")
        return str(proposal["value"])

    @validate("log_max_size")
    def _validate_log_max_size(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        size = self._checked(partial(limits.parse_size, name="log_max_size"), value)
        if size > 64 * limits.MIB:
            raise TraitError(f"log_max_size {value!r} exceeds the maximum of 64M")
        return value

    @validate("runtime_root")
    def _validate_runtime_root(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value):
            raise TraitError(f"runtime_root {value!r} must be an absolute path")
        return value

    @validate("sandbox_user")
    def _validate_sandbox_user(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        uid, _, gid = value.partition(":")
        if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
            raise TraitError(f"sandbox_user {value!r} must be 'uid:gid' with non-zero numbers")
        if int(uid) == os.getuid():
            raise TraitError(
                f"sandbox_user {value!r} has the uid of this process ({os.getuid()}): the "
                "sandbox's processes and files must never share the host user's uid; choose "
                "another uid"
            )
        return value

    @staticmethod
    def _checked(parse: Callable[[Any], T], value: Any) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise TraitError(str(exc)) from exc

    def __init__(self, **kwargs: Any) -> None:
        """Built by jupyter_client's provisioner factory with the kernelspec's
        ``metadata.kernel_provisioner.config`` as keywords (or directly, with traits): any key
        of that config that is not one of the traits below is refused. What the factory passes
        besides (``kernel_id``, ``kernel_spec``, ``parent``...) is left to the base class, so a
        keyword a new jupyter_client adds does not refuse every launch."""
        spec = kwargs.get("kernel_spec")
        metadata = getattr(spec, "metadata", None) or {}
        configured = (metadata.get("kernel_provisioner") or {}).get("config")
        if isinstance(configured, dict):
            given = set(configured)
        else:
            given = set(kwargs) - set(self.class_trait_names()) - _CONFIGURABLE_KEYWORDS
        unknown = sorted(given - set(self.class_trait_names(config=True)))
        if unknown:
            allowed = ", ".join(sorted(self.class_trait_names(config=True)))
            raise TraitError(
                f"unknown sandbox configuration {', '.join(map(repr, unknown))} (kernelspec "
                "metadata.kernel_provisioner.config): options that weaken isolation (privileged, "
                f"capabilities, host namespaces, devices, host mounts) are not supported; allowed: "
                f"{allowed}"
            )
        super().__init__(**kwargs)
        if self.prestart and self.notebook_dir == "read-only":
            # A spare starts before anyone knows the notebook's folder: it has no mount.
            raise TraitError(
                "notebook_dir 'read-only' cannot be combined with prestart (a spare sandbox "
                "starts before the notebook's folder is known); use notebook_dir 'copy' or "
                "prestart 0"
            )
