"""The notebook's folder in its sandbox, when a kernelspec asks for it (``notebook_dir``).

``off`` (the default): the sandbox sees nothing of the host, the notebook's folder included.

Either other mode takes the folder the kernel was launched from (the ``cwd`` jupyter_client
hands the provisioner: the notebook's folder for Jupyter Server, nbclient and papermill). It
is refused when it is the host's root, the host user's home folder, or a folder holding that
home (Jupyter passes its ``root_dir``, often the home folder, for a notebook at the top of the
file browser): the home folder's keys, tokens and dotfiles must never reach sandboxed code.

``copy``: at the sandbox's first start, the folder is copied into ``/workspace``. The host
walks it (as the host user) without following links, counts what it holds against the disk
limit before anything is sent, and streams it as a tar archive to the file tool inside
(``extract``), which unpacks folders and regular files only, through its confined opens.
Copied: folders that others may list and enter (``o+rx``) and regular files that others may
read (``o+r``), whose names below the folder do not start with '.'. Skipped, and named in the
log: every hidden entry (``.git``, ``.env``, ``.netrc``, ... and all below them), every file
or folder that others may not read (a ``0600`` key: the host user could read it, the
sandbox's uid could not through a mount), a symlink to a folder, out of the folder, to a
hidden or unreadable file (or one in a folder others may not enter), or dangling, and every
special file (FIFO, socket, device). A symlink to a copied file is copied as that file.
Nothing is copied back.

``read-only``: the folder is bind-mounted read-only at ``/workspace/notebook`` in every kernel
container of the sandbox (non-recursively: mounts below it are not passed on, so nothing
writable of the host appears). The sandbox's uid reads it as "others" would: files and
folders with ``o+r`` (and folders with ``o+x`` to enter), hidden ones included; a ``0600``
file stays unreadable. A symlink in it resolves inside the container's own file system,
never the host's.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import limits
from ..backends.base import Backend, ExecHandle
from ..backends.image import WORKSPACE
from ..errors import SandboxStartError
from ..inside import framed, source

MODES = ("off", "copy", "read-only")
"""What ``notebook_dir`` takes."""
MAX_ENTRIES = 10_000
"""The most files and folders ``copy`` copies (a start that must walk more is refused)."""
_MAX_WALKED = 10 * MAX_ENTRIES  # entries looked at, skipped ones included
_PAGE = 4096  # what a file costs in a tmpfs at least, rounded up
_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
_IDLE_TIMEOUT = 30.0  # seconds the copy may go without progress
_OTHERS_ENTER = stat.S_IROTH | stat.S_IXOTH  # a folder the sandbox's uid could list and enter


def parse_mode(value: object) -> str:
    """``notebook_dir``'s value, checked: one of :data:`MODES`."""
    if value not in MODES:
        raise ValueError(f"notebook_dir {value!r} is not one of: {', '.join(MODES)}")
    return str(value)


def checked_folder(cwd: str) -> str:
    """The folder to copy or mount: ``cwd`` made absolute, refused unless it is a directory
    other than the host's root, the host user's home folder and the folders holding it."""
    folder = os.path.realpath(cwd)
    if not os.path.isdir(folder):
        raise SandboxStartError(f"the notebook's folder {cwd!r} is not a directory")
    if folder == os.path.realpath(os.sep):
        raise SandboxStartError(
            "the notebook's folder is the host's root directory: notebook_dir refuses to "
            "copy or mount it; start the kernel from the notebook's own folder"
        )
    home = os.path.realpath(os.path.expanduser("~"))
    if _inside(home, folder):
        what = "is the host user's home folder" if home == folder else f"holds the home {home}"
        raise SandboxStartError(
            f"the notebook's folder {folder} {what}: notebook_dir refuses to copy or mount "
            "it, since it would hand the sandbox the user's keys, tokens and dotfiles; move "
            "the notebook into a folder of its own below the home and open it from there"
        )
    return folder


@dataclass(frozen=True)
class Entry:
    """One thing to copy: a folder, or a regular file (read from ``source``)."""

    name: str
    """Its path below the folder, '/'-separated."""
    is_folder: bool
    size: int = 0
    mode: int = 0o644
    mtime: float = 0.0
    source: str = ""
    """The host file to read (a file's own path, or the target of a symlink to it)."""


@dataclass
class CopyPlan:
    """What ``copy`` sends, counted before anything is."""

    folder: str
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What is not copied, and why (``"link.csv: a symlink out of the folder"``)."""
    files: int = 0
    size: int = 0
    """Bytes of the files."""
    footprint: int = 0
    """What they take in the sandbox's tmpfs (each file rounded up to whole pages)."""


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split(os.sep))


def _others_reach(path: str, folder: str) -> bool:
    """Whether others may enter every folder from below ``folder`` down to ``path``."""
    while path != folder and _inside(path, folder):
        try:
            if os.stat(path).st_mode & _OTHERS_ENTER != _OTHERS_ENTER:
                return False
        except OSError:
            return False
        path = os.path.dirname(path)
    return True


def _classify(item: os.DirEntry[str], name: str, folder: str, plan: CopyPlan) -> Entry | None:
    """What to copy for one entry of the walk (None: skipped, and noted in the plan).
    Hidden entries and files others may not read are skipped: the walk runs as the host
    user, who may read what the sandbox must not (a ``0600`` key, ``.git``, ``.env``)."""
    if item.name.startswith("."):
        plan.skipped.append(f"{name}: hidden")
        return None
    try:
        info = item.stat(follow_symlinks=False)
    except OSError as exc:
        plan.skipped.append(f"{name}: cannot be read ({exc.strerror})")
        return None
    source = item.path
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(item.path)
        try:
            followed = os.stat(target, follow_symlinks=False)
        except OSError:
            plan.skipped.append(f"{name}: a symlink to nothing")
            return None
        if not _inside(target, folder):
            plan.skipped.append(f"{name}: a symlink out of the folder")
            return None
        if not stat.S_ISREG(followed.st_mode):
            plan.skipped.append(f"{name}: a symlink to a folder")
            return None
        if _hidden(os.path.relpath(target, folder)):
            plan.skipped.append(f"{name}: a symlink to a hidden file")
            return None
        if not _others_reach(os.path.dirname(target), folder):
            plan.skipped.append(f"{name}: a symlink into a folder others may not read")
            return None
        info, source = followed, target
    if stat.S_ISDIR(info.st_mode):
        if info.st_mode & _OTHERS_ENTER != _OTHERS_ENTER:
            plan.skipped.append(f"{name}: not readable by others (mode {info.st_mode & 0o777:o})")
            return None
        return Entry(name, True, mtime=info.st_mtime)
    if stat.S_ISREG(info.st_mode):
        if not info.st_mode & stat.S_IROTH:
            plan.skipped.append(f"{name}: not readable by others (mode {info.st_mode & 0o777:o})")
            return None
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        return Entry(name, False, info.st_size, mode, info.st_mtime, source)
    plan.skipped.append(f"{name}: not a regular file")
    return None


def plan_copy(folder: str, disk_limit: int) -> CopyPlan:
    """Walk ``folder`` (from :func:`checked_folder`) without following links and list what
    ``copy`` sends. Raises ``SandboxStartError`` naming the size when it does not fit in
    ``disk_limit``, when it holds more than :data:`MAX_ENTRIES` entries to copy, or more than
    ten times that to look at. Blocking: call it from a worker thread."""
    plan = CopyPlan(folder)
    pending = [""]
    walked = 0
    while pending and walked <= _MAX_WALKED:  # past MAX_ENTRIES only sizes are counted
        relative = pending.pop()
        try:
            with os.scandir(os.path.join(folder, relative)) as scan:
                found = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            plan.skipped.append(f"{relative or '.'}: cannot be read ({exc.strerror})")
            continue
        for item in found:
            name = f"{relative}/{item.name}" if relative else item.name
            walked += 1
            entry = _classify(item, name, folder, plan)
            if entry is None:
                continue
            if entry.is_folder:
                pending.append(name)
            else:
                plan.files += 1
                plan.size += entry.size
                plan.footprint += -(-entry.size // _PAGE) * _PAGE
            if plan.footprint <= disk_limit:
                plan.entries.append(entry)
    if plan.footprint > disk_limit:
        held = f"{plan.footprint / limits.MIB:.1f} MiB in {plan.files} files"
        raise SandboxStartError(
            f"the notebook's folder {folder} holds {'more than ' if pending else ''}{held}, "
            f"more than the sandbox's /workspace can take (disk_limit "
            f"{limits.format_size(disk_limit)}): raise disk_limit (at most "
            f"{limits.format_size(limits.MAX_DISK_LIMIT)}), or use notebook_dir='read-only', "
            "which copies nothing"
        )
    if len(plan.entries) > MAX_ENTRIES:
        raise SandboxStartError(
            f"the notebook's folder {folder} holds more than {MAX_ENTRIES} files and folders, "
            "more than notebook_dir='copy' copies: use notebook_dir='read-only', or start "
            "the kernel from a smaller folder"
        )
    if pending:  # the walk stopped at its cap: what is left unwalked would be missing
        raise SandboxStartError(
            f"the notebook's folder {folder} holds more than {_MAX_WALKED} entries to look "
            "at (most of them skipped), more than notebook_dir='copy' walks: use "
            "notebook_dir='read-only', or start the kernel from a smaller folder"
        )
    return plan


class CopyFailed(Exception):
    """A file of the plan could not be read as it was counted."""


def tar_stream(plan: CopyPlan) -> Iterator[bytes]:
    """The plan as a tar archive, in chunks of about 1 MiB: folders and regular files only.
    Each file is opened without following a link and must still be the regular file of its
    size that was counted (``CopyFailed`` otherwise)."""
    buffer = bytearray()
    for entry in plan.entries:
        header = tarfile.TarInfo(entry.name)
        header.mtime = int(entry.mtime)
        if entry.is_folder:
            header.type, header.mode = tarfile.DIRTYPE, 0o755
            buffer += header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            continue
        header.type, header.mode, header.size = tarfile.REGTYPE, entry.mode, entry.size
        buffer += header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        try:
            descriptor = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise CopyFailed(f"{entry.name}: {exc.strerror}") from exc
        with os.fdopen(descriptor, "rb") as source:
            info = os.fstat(source.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size < entry.size:
                raise CopyFailed(f"{entry.name} changed while it was copied")
            remaining = entry.size
            while remaining > 0:
                data = source.read(min(_CHUNK, remaining))
                if not data:
                    raise CopyFailed(f"{entry.name} changed while it was copied")
                buffer += data
                remaining -= len(data)
                if len(buffer) >= _CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
        buffer += b"\0" * (-entry.size % _BLOCK)
        if len(buffer) >= _CHUNK:
            yield bytes(buffer)
            buffer.clear()
    buffer += b"\0" * (2 * _BLOCK)
    yield bytes(buffer)


def copy_into(
    backend: Backend, instance: str, user: str, plan: CopyPlan, handle: ExecHandle | None = None
) -> None:
    """Copy the plan into ``/workspace`` of the running kernel instance, through the file
    tool's ``extract`` (run as the sandbox's ``user``). Raises ``SandboxStartError`` saying
    why when it fails (a file changed meanwhile, the disk filled). Blocking: call it from a
    worker thread; ``handle.abort()`` ends it at once."""
    failure: list[str] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield from tar_stream(plan)
        except CopyFailed as exc:
            failure.append(str(exc))
            raise

    tool = ["python3", "-I", "-S", "-c", source("file_tool.py")]
    argv = [*tool, "extract", WORKSPACE.encode().hex()]
    result = backend.run(
        instance,
        argv,
        user=user,
        stdin=framed(chunks()),
        workdir="/",
        idle_timeout=_IDLE_TIMEOUT,
        handle=handle,
    )
    what = f"copying the notebook's folder {plan.folder} into the sandbox failed"
    if failure:
        raise SandboxStartError(f"{what}: {failure[0]}")
    if result.exit_code != 0:
        reason = "it made no progress for too long" if result.timed_out else result.failure()
        raise SandboxStartError(f"{what}: {reason}")
