"""The exceptions ai-computer raises.

One root to catch, a short tree under it::

    SandboxError
    ├── SandboxStateError        the call is not allowed in the client's current state
    │                            (also a RuntimeError: a misuse)
    ├── DockerUnavailableError   no Docker engine answers (says how to start one)
    ├── ImageNotFoundError       the sandbox image is missing (says how to build it)
    ├── ImageBuildError          building the sandbox image failed
    └── SandboxStartError        the container or its kernel did not come up

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


class ImageBuildError(SandboxError):
    """Building the sandbox image failed."""


class SandboxStartError(SandboxError):
    """The sandbox container or its kernel failed to start."""
