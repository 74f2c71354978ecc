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
    └── SandboxStartError        the container or its kernel did not come up

Errors carry what they are about as fields, besides the message: ``SandboxStartError`` has the
``reason`` and the kernel's ``container_log``, ``ImageNotFoundError`` the ``image``. Engine and
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


class SandboxStartError(SandboxError):
    """The sandbox container or its kernel failed to start."""

    def __init__(self, message: str, *, reason: str | None = None, container_log: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message
        """Why, in one line (``killed: memory limit 512M exceeded``, ...)."""
        self.container_log = container_log
        """The last lines the kernel's container wrote (empty when there were none)."""
