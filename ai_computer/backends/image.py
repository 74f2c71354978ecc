"""The sandbox image, as every engine sees it: the files that describe it, its tag, and the
wheels that fit its Python (for ``install_packages`` and the image build alike).

The image is described by two files shipped in the package, ``data/image/Dockerfile`` and
``data/image/requirements.txt`` (every package pinned). Its tag,
``ai-computer-sandbox:<version>-<hash12>``, ends in a hash of both, so an existing tag means
there is nothing to build and an edited description means a new tag. Building it is the
engine's job (``backends/docker/image.py``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path

from .._version import __version__
from ..errors import ImageBuildError

IMAGE_REPOSITORY = "ai-computer-sandbox"
"""Repository of sandbox images; their tags are ``<version>-<hash12>``."""

IMAGE_LABEL = "ai-computer.image"
"""Label carried by every sandbox image (value ``"1"``)."""

WORKSPACE = "/workspace"
"""The sandbox's working directory and the only place its file operations reach."""
PACKAGES_DIR = "/opt/packages"
"""Packages installed per session; on sys.path through a .pth file in the image."""
HOME = "/home/sandbox"
"""The sandbox user's home (a small tmpfs)."""
NOTEBOOK_FOLDER = f"{WORKSPACE}/notebook"
"""Where the kernel sees the notebook's folder when its kernelspec asks for it read-only."""

IMAGE_FILES = ("Dockerfile", "requirements.txt")
# The Python the image's base provides, which the wheelhouse must match.
PYTHON_VERSION = "3.11"
_PYTHON_ABI = "cp311"
_MANYLINUX_TAGS = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")
# Docker's and Python's names of a CPU architecture -> the name in manylinux wheel tags.
_WHEEL_ARCHITECTURES = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
}


def image_file(name: str) -> bytes:
    """One of the files describing the image (``Dockerfile``, ``requirements.txt``)."""
    return (resources.files("ai_computer") / "data" / "image" / name).read_bytes()


@functools.lru_cache(maxsize=1)
def description_hash() -> str:
    """The first 12 hex digits of the SHA-256 of the files describing the image."""
    digest = hashlib.sha256()
    for name in IMAGE_FILES:
        digest.update(image_file(name))
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def default_image_tag() -> str:
    """Return the tag of the sandbox image this version of ai-computer uses.

    ``ai-computer-sandbox:<version>-<hash12>``, where ``hash12`` starts the SHA-256 of the
    shipped Dockerfile and requirements.txt. Computed once per process.
    """
    return f"{IMAGE_REPOSITORY}:{__version__}-{description_hash()}"


def wheel_architecture(architecture: str, whose: str) -> str:
    """An engine's name of a CPU architecture as wheel tags name it (x86_64, aarch64)."""
    try:
        return _WHEEL_ARCHITECTURES[architecture]
    except KeyError:
        raise ImageBuildError(
            f"{whose} CPU architecture {architecture!r} is not supported; "
            "supported are amd64 (x86_64) and arm64 (aarch64)"
        ) from None


def sandbox_wheel_options(architecture: str) -> list[str]:
    """pip options that select wheels for the sandbox image's Python, whatever the host's."""
    platforms = [f"--platform={tag}_{architecture}" for tag in _MANYLINUX_TAGS]
    return [
        "--only-binary=:all:", f"--python-version={PYTHON_VERSION}", "--implementation=cp",
        f"--abi={_PYTHON_ABI}", *platforms,
    ]  # fmt: skip


def cache_directory() -> Path:
    """Where wheels downloaded for sandboxes are cached (``$XDG_CACHE_HOME/ai-computer``)."""
    xdg_cache_home = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative path.
    cache_home = Path(xdg_cache_home) if os.path.isabs(xdg_cache_home) else Path.home() / ".cache"
    return cache_home / "ai-computer"
