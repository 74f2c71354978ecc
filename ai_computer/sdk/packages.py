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
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..backends.image import PACKAGES_DIR, image_file, sandbox_wheel_options

_CHUNK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class PackageError(Exception):
    """pip could not resolve, download or stage the packages; the message is pip's reason."""


def canonical_name(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


# What a requirement may contain once parsed: a name, extras and version specifiers. Checked on
# the raw text too: pip decodes "%2F" and treats ":" as a scheme, "#" as a fragment, and anything
# starting with "-" as an option, before packaging's grammar is ever asked.
_ALLOWED_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~* ]*$")
# pip takes a name that ends like an archive for a file name (relative to its working directory).
_ARCHIVE_NAME = re.compile(r"\.(whl|zip|tar|tgz|tbz|txz|tlz|gz|bz2|xz|lz|lzma)$", re.IGNORECASE)
PIP_TIMEOUT = 600.0
"""Seconds one pip run (download or staging) may take."""
MAX_SPECIFIERS = 64
"""Most requirements one ``install_packages`` call may name."""
_MAX_SPECIFIER_LENGTH = 200


def check_specifier(spec: object) -> str:
    """``spec`` as a normalized requirement (``name[extras]specifiers``), or ValueError.

    Only names, extras and version specifiers from the index are allowed: no URL, no path, no
    direct reference (``@``), no environment marker, no pip option. pip builds a direct or local
    requirement from source even with ``--only-binary=:all:``, and a build runs code on the host.
    """
    allowed = "a requirement like 'tabulate' or 'requests==2.32.3' (name, extras, versions)"
    if not isinstance(spec, str):
        raise ValueError(f"package {spec!r} is not a string; give {allowed}")
    if len(spec) > _MAX_SPECIFIER_LENGTH or not _ALLOWED_TEXT.match(spec) or spec != spec.strip():
        raise ValueError(f"package {spec!r} is not {allowed}")
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise ValueError(f"package {spec!r} is not {allowed}: {exc}") from None
    if requirement.url or requirement.marker or _ARCHIVE_NAME.search(requirement.name):
        raise ValueError(f"package {spec!r} is not {allowed}")
    return str(requirement)


def check_specifiers(packages: object) -> list[str]:
    """Every entry of ``packages`` through :func:`check_specifier` (pip options above all)."""
    if isinstance(packages, str) or not isinstance(packages, list | tuple) or not packages:
        raise ValueError(f"packages {packages!r} must be a non-empty list like ['tabulate']")
    if len(packages) > MAX_SPECIFIERS:
        raise ValueError(
            f"{len(packages)} packages in one call; at most {MAX_SPECIFIERS} are allowed"
        )
    return [check_specifier(spec) for spec in packages]


@cache
def _image_projects() -> frozenset[str]:
    names = set()
    for line in image_file("requirements.txt").decode().splitlines():
        if match := _NAME.match(line.strip()):
            names.add(canonical_name(match.group(0)))
    return frozenset(names)


def _wheel_project(wheel: Path) -> str:
    return canonical_name(wheel.name.split("-", 1)[0])


def _pip(arguments: list[str], workdir: Path) -> None:
    """Run pip from an empty working directory of its own, so that no requirement can resolve
    to a local file or project, with no prompts. The host's own pip configuration (index,
    certificates, proxy) is the host user's and is kept; what callers pass is only ever names
    and versions (``check_specifiers``), and only wheels are taken (``--only-binary``)."""
    command = [
        sys.executable, "-I", "-m", "pip", "--no-input", "--disable-pip-version-check",
        "--quiet", *arguments,
    ]  # fmt: skip
    workdir.mkdir(mode=0o700, exist_ok=True)
    try:
        process = subprocess.run(
            command, capture_output=True, text=True, errors="replace", cwd=workdir,
            timeout=PIP_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PackageError(f"pip did not finish within {PIP_TIMEOUT:g} s") from None
    if process.returncode != 0:
        lines = [line for line in process.stderr.splitlines() if line.startswith("ERROR")]
        reason = "\n".join(lines) or process.stderr.strip()[-2000:] or "pip failed"
        raise PackageError(reason)


def _unpacked_size(wheels: list[Path]) -> int:
    """What the wheels take once unpacked, as their archives declare it."""
    total = 0
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as archive:
                total += sum(member.file_size for member in archive.infolist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise PackageError(f"{wheel.name} is not a readable wheel: {exc}") from None
    return total


def stage_packages(
    packages: list[str], architecture: str, staging: Path, max_size: int
) -> list[str]:
    """Download and install ``packages`` (and their dependencies) into ``staging``.

    Returns the wheels staged; the image's own packages are never staged again. Wheels that
    would unpack to more than ``max_size`` bytes (the sandbox's packages volume) are refused
    before anything is unpacked on the host. Blocking.
    """
    packages = check_specifiers(packages)  # again: this is the last stop before pip
    wheels_dir = staging.parent / "wheels"
    empty = staging.parent / "empty"
    constraints = staging.parent / "image-constraints.txt"
    constraints.write_bytes(image_file("requirements.txt"))
    options = sandbox_wheel_options(architecture)
    _pip(
        [
            "download",
            *options,
            f"--constraint={constraints}",
            f"--dest={wheels_dir}",
            "--",
            *packages,
        ],
        empty,
    )
    in_image = _image_projects()
    wheels = sorted(w for w in wheels_dir.glob("*.whl") if _wheel_project(w) not in in_image)
    unpacked = _unpacked_size(wheels)
    if unpacked > max_size:
        raise PackageError(
            f"the packages unpack to {unpacked} bytes, more than the sandbox's disk_limit of "
            f"{max_size} bytes for packages"
        )
    if wheels:
        _pip([
            "install", *options, "--no-deps", "--no-index", "--no-compile", "--upgrade",
            f"--target={staging}", *map(str, wheels),
        ], empty)  # fmt: skip
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
        PACKAGES_DIR,
        "-f",
        "-",
    ]
