"""Building the sandbox image in the local Docker engine, without network access inside it
(what the image is, and its tag: ``backends/image.py``).

A build takes three steps, each reported with its duration:

1. A base image with CPython 3.11: ``python:3.11-slim`` where it exists or can be pulled,
   else a Debian bookworm root file system made with ``mmdebstrap`` and imported as
   ``ai-computer-base:bookworm`` (made once, then reused).
2. A wheelhouse of the requirements, downloaded on the host with ``pip download`` for the
   engine's CPU architecture and cached under ``$XDG_CACHE_HOME/ai-computer``.
3. ``docker build`` of a context holding the Dockerfile, requirements.txt and the
   wheelhouse; nothing inside the build needs the network.

Docker and subprocess failures become :class:`~ai_computer.errors.ImageBuildError`, an
unreachable engine :class:`~ai_computer.errors.DockerUnavailableError`.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import requests

from ..._version import __version__
from ...errors import ImageBuildError, SandboxError
from ..image import (
    IMAGE_FILES,
    IMAGE_LABEL,
    PYTHON_VERSION,
    cache_directory,
    default_image_tag,
    description_hash,
    image_file,
    sandbox_wheel_options,
    wheel_architecture,
)
from .engine import docker_client, explain, translate_docker_errors

PYTHON_SLIM_BASE = "python:3.11-slim"
"""The base image used where it can be pulled."""

DEBIAN_BASE = "ai-computer-base:bookworm"
"""The base image made with mmdebstrap where ``python:3.11-slim`` is unavailable."""

BASE_CHOICES = ("auto", "debian", "python-slim")
"""Accepted values of ``build_image(base=...)``."""

_BUILD_STAGE_LABEL = "ai-computer.build-stage"
_MMDEBSTRAP_OPTIONS = (
    "--variant=apt",
    "--include=python3,python3-venv,passwd",
    # Documentation is of no use in a sandbox; copyright files stay with the binaries.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
_DEBIAN_SUITE = "bookworm"
# An imported root file system has no configuration; give it what a Debian image has.
_DEBIAN_BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
)
# Pull statuses worth a progress line; the rest are per-layer byte counts.
_PULL_STATUSES_SHOWN = ("Pull complete",)

Progress = Callable[[str], None]


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    """Return whether the engine behind ``client`` has an image named ``tag``."""
    with translate_docker_errors(f"looking up image {tag} failed", SandboxError):
        try:
            client.api.inspect_image(tag)
        except docker.errors.ImageNotFound:
            return False
    return True


def build_image(
    *,
    base: str = "auto",
    force: bool = False,
    progress: Progress = print,
    engine: docker.DockerClient | None = None,
) -> str:
    """Build the sandbox image unless it exists already; return its tag.

    Args:
        base: ``"auto"`` uses ``python:3.11-slim`` if it exists locally or can be pulled,
            else the Debian route; ``"debian"`` always uses a Debian bookworm root file
            system made with mmdebstrap (reused once made); ``"python-slim"`` requires
            ``python:3.11-slim``.
        force: build even if the tag exists.
        progress: receives one line of text per step and per line of tool output.
        engine: the engine to build in; by default the one the environment names.

    Raises:
        ValueError: ``base`` is not one of :data:`BASE_CHOICES`.
        DockerUnavailableError: no Docker engine answers.
        ImageBuildError: any step failed; the message says which and why.
    """
    if base not in BASE_CHOICES:
        raise ValueError(f"base {base!r} is not one of {', '.join(BASE_CHOICES)}")
    client = engine if engine is not None else docker_client()
    tag = default_image_tag()
    if not force and image_exists(client, tag):
        progress(f"{tag} is up to date")
        return tag

    build_started = time.monotonic()
    with translate_docker_errors(f"building {tag} failed", ImageBuildError):
        step_started = time.monotonic()
        base_image = _prepare_base(client, base, progress)
        progress(f"base image {base_image} ready ({_elapsed(step_started)})")

        step_started = time.monotonic()
        wheelhouse = _prepare_wheelhouse(engine_architecture(client), progress)
        progress(f"wheelhouse ready ({_elapsed(step_started)})")

        step_started = time.monotonic()
        _docker_build(client, tag, base_image, wheelhouse, progress)
        progress(f"docker build done ({_elapsed(step_started)})")
    progress(f"built {tag} in {_elapsed(build_started)}")
    return tag


def _prepare_base(client: docker.DockerClient, base: str, progress: Progress) -> str:
    if base == "debian":
        return _debian_base(client, progress)
    unavailable_reason = _pull_python_slim(client, progress)
    if unavailable_reason is None:
        return PYTHON_SLIM_BASE
    if base == "python-slim":
        raise ImageBuildError(
            f"base image {PYTHON_SLIM_BASE} is not available ({unavailable_reason}); "
            "build with base 'debian' (`ai-computer image build --base debian`) to make "
            "one with mmdebstrap instead"
        )
    progress(f"{PYTHON_SLIM_BASE} is not available ({unavailable_reason}); using Debian")
    return _debian_base(client, progress)


def _pull_python_slim(client: docker.DockerClient, progress: Progress) -> str | None:
    """Make sure ``python:3.11-slim`` is present; return why not, or None if it is."""
    if image_exists(client, PYTHON_SLIM_BASE):
        return None
    progress(f"pulling {PYTHON_SLIM_BASE}")
    repository, _, tag = PYTHON_SLIM_BASE.partition(":")
    try:
        for item in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in item:
                return str(item["error"]).strip()
            status = item.get("status")
            if status and ("id" not in item or status in _PULL_STATUSES_SHOWN):
                progress(f"pull: {status} {item.get('id', '')}".rstrip())
    # The engine answered just now, so a failing or stalled pull is the registry's doing.
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        return explain(exc)
    if not image_exists(client, PYTHON_SLIM_BASE):
        return "the pull finished without the image"
    return None


def _debian_base(client: docker.DockerClient, progress: Progress) -> str:
    """Return the Debian base image, making it with mmdebstrap first if it is missing."""
    if image_exists(client, DEBIAN_BASE):
        progress(f"reusing {DEBIAN_BASE}")
        return DEBIAN_BASE
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageBuildError(
            f"making the base image {DEBIAN_BASE} needs mmdebstrap, which is not "
            "installed: run `sudo apt-get install mmdebstrap` (a machine that can pull "
            f"{PYTHON_SLIM_BASE} needs nothing)"
        )
    with tempfile.TemporaryDirectory(prefix="ai-computer-rootfs-") as directory:
        rootfs = Path(directory) / "rootfs.tar"
        progress(f"making a Debian {_DEBIAN_SUITE} root file system with mmdebstrap")
        command = [mmdebstrap, *_MMDEBSTRAP_OPTIONS, _DEBIAN_SUITE, str(rootfs)]
        _run_streaming(command, progress, name="mmdebstrap")
        progress(f"importing it as {DEBIAN_BASE}")
        repository, _, tag = DEBIAN_BASE.partition(":")
        client.api.import_image_from_file(
            str(rootfs), repository=repository, tag=tag, changes=list(_DEBIAN_BASE_CHANGES)
        )
    if not image_exists(client, DEBIAN_BASE):
        raise ImageBuildError(f"importing the root file system did not create {DEBIAN_BASE}")
    return DEBIAN_BASE


def engine_architecture(client: docker.DockerClient) -> str:
    """Return the engine's CPU architecture as wheel tags name it (x86_64, aarch64)."""
    # The engine's, not this machine's: DOCKER_HOST may name another machine.
    architecture = str(client.version().get("Arch") or platform.machine())
    return wheel_architecture(architecture, "the Docker engine's")


def _prepare_wheelhouse(architecture: str, progress: Progress) -> Path:
    """Return a directory holding a wheel for every requirement, downloading it once."""
    wheelhouse = cache_directory() / f"wheelhouse-{description_hash()}-{architecture}"
    if wheelhouse.is_dir():
        progress(f"reusing {wheelhouse}")
        return wheelhouse
    if importlib.util.find_spec("pip") is None:
        raise ImageBuildError(
            f"downloading the image's wheels needs pip, which {sys.executable} lacks: "
            f"run `{sys.executable} -m ensurepip`"
        )
    wheelhouse.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the final directory and rename it into place, so an interrupted
    # download never looks like a complete wheelhouse.
    with tempfile.TemporaryDirectory(
        prefix=f"{wheelhouse.name}.partial-", dir=wheelhouse.parent
    ) as directory:
        requirements = Path(directory) / "requirements.txt"
        requirements.write_bytes(image_file("requirements.txt"))
        download = Path(directory) / "wheels"
        progress(f"downloading wheels for CPython {PYTHON_VERSION} {architecture}")
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            *sandbox_wheel_options(architecture), "--no-deps", f"--requirement={requirements}",
            f"--dest={download}",
        ]  # fmt: skip
        _run_streaming(command, progress, name="pip download")
        try:
            download.rename(wheelhouse)
        except OSError:
            # Another build finished the same download first: use that one.
            if not wheelhouse.is_dir():
                raise
    progress(f"saved wheels in {wheelhouse}")
    return wheelhouse


def _docker_build(
    client: docker.DockerClient, tag: str, base_image: str, wheelhouse: Path, progress: Progress
) -> None:
    # Inside the cache directory, so the wheelhouse can be hard-linked rather than copied.
    with tempfile.TemporaryDirectory(prefix="build-context-", dir=wheelhouse.parent) as directory:
        context = Path(directory)
        for name in IMAGE_FILES:
            (context / name).write_bytes(image_file(name))
        shutil.copytree(wheelhouse, context / "wheelhouse", copy_function=_link_or_copy)
        progress(f"building {tag} from {base_image}")
        output = client.api.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base_image, "AI_COMPUTER_VERSION": __version__},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for item in output:
            if "error" in item:
                raise ImageBuildError(f"docker build of {tag} failed: {str(item['error']).strip()}")
            for line in str(item.get("stream", "")).splitlines():
                if line.strip():
                    progress(line)
    # The install stage's image and a replaced image of the same tag are left untagged;
    # prune skips any that a container still uses.
    for label in (_BUILD_STAGE_LABEL, IMAGE_LABEL):
        client.images.prune(filters={"dangling": True, "label": label})


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _run_streaming(command: list[str], progress: Progress, *, name: str) -> None:
    """Run ``command``, passing each line it prints to ``progress``; raise if it fails."""
    last_lines: collections.deque[str] = collections.deque(maxlen=20)
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as exc:
        raise ImageBuildError(f"could not run {name}: {exc}") from exc
    with process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            last_lines.append(line)
            progress(f"{name}: {line}")
    if process.returncode != 0:
        output = "\n".join(last_lines)
        raise ImageBuildError(
            f"{name} failed with exit status {process.returncode}; its last lines:\n{output}"
        )


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
