"""Installing Python packages into a sandbox that has no network (``install_packages``).

The host does the networking: pip resolves and downloads wheels for the *image's* Python and
platform (constrained to the versions the image already has, so nothing shadows them), then
installs them into a staging folder with ``--target``. The staged files are streamed into the
sandbox as a tar archive and unpacked by ``tar`` running inside the container as the sandbox user
into /opt/packages: a per-sandbox volume on ``sys.path`` that survives kernel restarts. pip's own
cache on the host is shared by every sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from .image import image_file, sandbox_wheel_options
from .provisioner import CONTAINER_PACKAGES

_CHUNK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class PackageError(Exception):
    """pip could not resolve, download or stage the packages; the message is pip's reason."""


def canonical_name(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_specifiers(packages: list[str]) -> list[str]:
    """Refuse anything that is not a requirement specifier (pip options above all)."""
    if isinstance(packages, str) or not isinstance(packages, list | tuple) or not packages:
        raise ValueError(f"packages {packages!r} must be a non-empty list like ['tabulate']")
    for spec in packages:
        if (
            not isinstance(spec, str)
            or not _NAME.match(spec)
            or spec.strip() != spec
            or any(mark in spec for mark in ("/", "\\", "@", " "))  # URLs, paths, direct refs
        ):
            raise ValueError(
                f"package {spec!r} is not a requirement like 'tabulate' or 'requests==2.32.3'"
            )
    return list(packages)


@cache
def _image_projects() -> frozenset[str]:
    names = set()
    for line in image_file("requirements.txt").decode().splitlines():
        if match := _NAME.match(line.strip()):
            names.add(canonical_name(match.group(0)))
    return frozenset(names)


def _wheel_project(wheel: Path) -> str:
    return canonical_name(wheel.name.split("-", 1)[0])


def _pip(arguments: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *arguments]
    process = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if process.returncode != 0:
        lines = [line for line in process.stderr.splitlines() if line.startswith("ERROR")]
        reason = "\n".join(lines) or process.stderr.strip()[-2000:] or "pip failed"
        raise PackageError(reason)


def stage_packages(packages: list[str], architecture: str, staging: Path) -> list[str]:
    """Download and install ``packages`` (and their dependencies) into ``staging``.

    Returns the wheels staged; the image's own packages are never staged again. Blocking.
    """
    wheels_dir = staging.parent / "wheels"
    constraints = staging.parent / "image-constraints.txt"
    constraints.write_bytes(image_file("requirements.txt"))
    options = sandbox_wheel_options(architecture)
    _pip(["download", *options, f"--constraint={constraints}", f"--dest={wheels_dir}", *packages])
    in_image = _image_projects()
    wheels = sorted(w for w in wheels_dir.glob("*.whl") if _wheel_project(w) not in in_image)
    if wheels:
        _pip([
            "install", *options, "--no-deps", "--no-index", "--no-compile", "--upgrade",
            f"--target={staging}", *map(str, wheels),
        ])  # fmt: skip
    return [wheel.name for wheel in wheels]


def tar_chunks(directory: Path) -> Iterator[bytes]:
    """Stream ``directory``'s contents as a tar archive, through a temporary file on disk."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for entry in sorted(os.listdir(directory)):
                tar.add(directory / entry, arcname=entry)
        archive.seek(0)
        while chunk := archive.read(_CHUNK):
            yield chunk


def unpack_argv() -> list[str]:
    """The command that unpacks the staged archive inside the sandbox."""
    return [
        "tar",
        "-x",
        "--no-same-owner",
        "--no-same-permissions",
        "-C",
        CONTAINER_PACKAGES,
        "-f",
        "-",
    ]
