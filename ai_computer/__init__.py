"""ai-computer: a self-hosted sandbox for untrusted Python code.

Each sandbox is an ipykernel in a resource-limited, hardened Docker container::

    async with SandboxClient(memory_limit="1G", cpu_limit=2, timeout=300) as client:
        response = await client.execute_code("print('Hello from sandbox!')")
        print(response.data["output"])
"""

from .client import SandboxClient
from .errors import (
    DockerUnavailableError,
    ImageBuildError,
    ImageNotFoundError,
    SandboxError,
    SandboxStartError,
    SandboxStateError,
)
from .models import FileOperationResponse, SandboxResponse, StreamEvent
from .pool import SandboxPool

__version__ = "0.1.0"

__all__ = [
    "DockerUnavailableError",
    "FileOperationResponse",
    "ImageBuildError",
    "ImageNotFoundError",
    "SandboxClient",
    "SandboxError",
    "SandboxPool",
    "SandboxResponse",
    "SandboxStartError",
    "SandboxStateError",
    "StreamEvent",
    "__version__",
]
