"""The exceptions ai-computer raises.

One root to catch, a short tree under it::

    SandboxError
    ├── SandboxStateError        the call is not allowed in the client's current state
    │                            (also a RuntimeError: a misuse)
    ├── DockerUnavailableError   no Docker engine answers (says how to start one)
    ├── ImageNotFoundError       the sandbox image is missing (says how to build it)
    ├── ImageBuildError          building the sandbox image failed
    ├── RuntimeUnavailableError  runtime="gvisor" asked for, not registered with the engine
    │                            (says what to add to daemon.json)
    ├── SandboxStartError        the container or its kernel did not come up
    ├── ClusterNodeError         a swarm node lacks a setting sandboxes rely on (``problems``)
    └── SandboxFileError         a file operation in the sandbox was refused or failed
                                 (``kind`` says how: not_found, symlink, no_space, ...)

Errors carry what they are about as fields, besides the message: ``SandboxStartError`` has the
``reason`` and the kernel's ``container_log``, ``ImageNotFoundError`` the ``image``,
``SandboxFileError`` the ``kind`` and the sandbox ``path``. Engine and
protocol errors are translated into these at one seam each (``backends/docker/engine.py``,
``sdk/messages.py``), with the original as ``__cause__``.

Invalid limits raise ``ValueError`` (a bad argument, not a sandbox failure).
Failures of executed code are not exceptions: they come back as
``SandboxResponse(success=False, error=...)``.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every error raised by ai-computer."""


class SandboxStateError(SandboxError, RuntimeError):
    """The operation is not allowed in the client's current lifecycle state (a misuse, so
    also a ``RuntimeError``)."""


class DockerUnavailableError(SandboxError):
    """No Docker engine could be reached."""


class ImageNotFoundError(SandboxError):
    """The sandbox image does not exist in the local Docker engine."""

    def __init__(self, message: str, *, image: str | None = None) -> None:
        super().__init__(message)
        self.image = image
        """The image that was asked for."""


class RuntimeUnavailableError(SandboxError):
    """The engine has no runtime registered for the sandbox's ``runtime`` (never a silent
    fall-back to runc)."""

    def __init__(self, message: str, *, runtime: str) -> None:
        super().__init__(message)
        self.runtime = runtime
        """The runtime that was asked for (``gvisor``)."""


class ImageBuildError(SandboxError):
    """Building the sandbox image failed."""


class ClusterNodeError(SandboxError):
    """Nodes of a cluster lack what sandboxes rely on and the cluster cannot set per sandbox
    (a daemon setting, the image): the service refuses to start rather than drop a guarantee."""

    def __init__(self, message: str, *, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems
        """One line per node and problem."""


class SandboxStartError(SandboxError):
    """The sandbox container or its kernel failed to start."""

    def __init__(self, message: str, *, reason: str | None = None, container_log: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message
        """Why, in one line (``killed: memory limit 512M exceeded``, ...)."""
        self.container_log = container_log
        """The last lines the kernel's container wrote (empty when there were none)."""


class SandboxFileError(SandboxError):
    """A file operation in the sandbox was refused or failed (the SDK's ``client.fs`` methods
    return responses instead; what raises this says so)."""

    def __init__(self, message: str, *, kind: str, path: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        """How it failed, as the file tool inside says: ``not_found``, ``symlink``, ``outside``,
        ``not_regular``, ``is_a_directory``, ``not_a_directory``, ``exists``, ``no_space``,
        ``too_large``, ``sparse``, ``read_only``, ``permission``, ``incomplete``, ``invalid``,
        ``os_error``; ``timeout`` when it made no progress; ``unreadable`` when its answer
        made no sense; ``sandbox`` when the sandbox itself could not be reached."""
        self.path = path
        """The path in the sandbox it was about."""
