"""ai-computer: a self-hosted sandbox for untrusted Python code.

Each sandbox is an ipykernel in a resource-limited, hardened Docker container::

    async with SandboxClient(memory_limit="1G", cpu_limit=2, timeout=300) as client:
        response = await client.execute_code("print('Hello from sandbox!')")
        print(response.data["output"])
"""

from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (
    DockerUnavailableError,
    ImageBuildError,
    ImageNotFoundError,
    RuntimeUnavailableError,
    SandboxError,
    SandboxStartError,
    SandboxStateError,
)
from .limits import USE_CLIENT_DEFAULT
from .models import FileOperationResponse, SandboxResponse, StreamEvent

if TYPE_CHECKING:
    from .sdk.client import SandboxClient
    from .sdk.pool import SandboxPool

# The SDK's classes are loaded on first use: `ai-computer --help`, the image module and the
# kernelspec tools need neither jupyter_client nor zmq, and nothing imports this package back
# while it is half-initialised.
_LAZY = {"SandboxClient": ".sdk.client", "SandboxPool": ".sdk.pool"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "USE_CLIENT_DEFAULT",
    "DockerUnavailableError",
    "FileOperationResponse",
    "ImageBuildError",
    "ImageNotFoundError",
    "RuntimeUnavailableError",
    "SandboxClient",
    "SandboxError",
    "SandboxPool",
    "SandboxResponse",
    "SandboxStartError",
    "SandboxStateError",
    "StreamEvent",
    "__version__",
]
