"""File operations run *inside* a sandbox container
(``python3 -I -S -c <this file> OP HEX-PATH [MAX-SIZE]``, from ``/``).

The host runs this with ``docker exec`` as the sandbox's unprivileged user, so it sees only the
container's file system. ``-I -S`` from ``/``: no module of the sandbox's (a ``secrets.py`` planted
in /workspace, a .pth in /opt/packages) is imported, so its reports are this file's. It also
makes itself non-dumpable at once, so code of the same uid cannot ptrace it.

The path travels hex-encoded (its bytes, as the file system has them), and names come back as
``os.fsdecode`` gives them: a name that is not UTF-8, or holds a newline, round-trips exactly.

On top of that, every path is confined to /workspace without a
check-then-use race: each component is opened relative to its parent's descriptor with
``O_NOFOLLOW``, so a symlink (or a symlink swapped in during the operation) is refused rather
than followed, and only regular files are read (a FIFO cannot make a download hang).

Operations: ``read`` (the file's bytes on stdout), ``stat``, ``write`` (framed bytes on stdin),
``list``, ``remove``, ``mkdir``, ``disk`` (how full /workspace is) and ``extract`` (a framed tar
stream of folders and regular files only, unpacked through the same confined opens: the
notebook's folder copied in at start).

Standard library only: it runs with the image's Python, whatever else is installed.
Protocol: data on stdout (``read``) or a JSON object on stdout (other operations); on failure
exit status 1 and ``{"error": ..., "kind": ...}`` on stderr.

Sizes are what was really written: ``read`` refuses a file whose apparent size exceeds the
blocks it holds (a sparse file costs the sandbox nothing and could claim petabytes), a file
larger than the caller's MAX-SIZE, and sends no more than the size it saw when it opened the file.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from typing import Any

ROOT = "/workspace"
CHUNK = 1 << 20
MAX_ENTRIES = 10_000  # a listing stops here (or at MAX_LISTING bytes) and says it was truncated
MAX_LISTING = 8 * 1024 * 1024
SPARSE_SLACK = 64 * 1024  # file systems may report a few blocks fewer than the size rounds to
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def relative_parts(path: str) -> list[str]:
    """The components of ``path`` below ROOT; refuses anything that leaves it."""
    if "\x00" in path:
        raise Refused("invalid", "the path contains a NUL byte")
    absolute = posixpath.normpath(posixpath.join(ROOT, path))
    if absolute != ROOT and not absolute.startswith(ROOT + "/"):
        raise Refused("outside", f"{path!r} is outside the sandbox's {ROOT}")
    return [part for part in absolute[len(ROOT) :].split("/") if part]


def open_directory(parts: list[str], create: bool = False) -> int:
    """A descriptor of ROOT/parts, opened one component at a time without following links."""
    fd = os.open(ROOT, DIRECTORY_FLAGS)
    try:
        for index, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as exc:
                shown = "/".join(parts[: index + 1])
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    kind = "symlink" if is_link(fd, part) else "not_a_directory"
                    raise Refused(kind, f"{shown!r} is a {kind.replace('_', ' ')}") from None
                raise
            try:
                same_entry(fd, part, child, "/".join(parts[: index + 1]))
            except BaseException:
                os.close(child)
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def same_entry(dir_fd: int, name: str, opened: int, shown: str) -> None:
    """Refuse unless ``opened`` is the entry ``name`` itself, not what a symlink there leads
    to: some kernels (gVisor's, for one) follow a symlink despite O_NOFOLLOW when it names a
    directory. A swap between the open and this check is refused too (another inode)."""
    try:
        entry = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        raise Refused("symlink", f"{shown!r} changed while it was opened") from None
    if stat.S_ISLNK(entry.st_mode):
        raise Refused("symlink", f"{shown!r} is a symlink")
    info = os.fstat(opened)
    if (entry.st_dev, entry.st_ino) != (info.st_dev, info.st_ino):
        raise Refused("symlink", f"{shown!r} changed while it was opened")


def is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def split(path: str) -> tuple[list[str], str]:
    parts = relative_parts(path)
    if not parts:
        raise Refused("is_a_directory", f"{path!r} is the workspace itself, not a file")
    return parts[:-1], parts[-1]


def open_regular_file(path: str) -> tuple[int, os.stat_result]:
    parents, name = split(path)
    directory = open_directory(parents)
    try:
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer.
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused("symlink", f"{path!r} is a symlink") from None
            raise
        try:
            same_entry(directory, name, fd, path)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(directory)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "is_a_directory" if stat.S_ISDIR(info.st_mode) else "not_regular"
        raise Refused(kind, f"{path!r} is not a regular file")
    os.set_blocking(fd, True)
    return fd, info


def display_path(parts: list[str]) -> str:
    return posixpath.join(ROOT, *parts)


def op_read(path: str, max_size: int) -> None:
    fd, info = open_regular_file(path)
    with os.fdopen(fd, "rb") as source:
        if info.st_size > info.st_blocks * 512 + SPARSE_SLACK:
            raise Refused(
                "sparse",
                f"{path!r} is a sparse file ({info.st_size} bytes claimed, "
                f"{info.st_blocks * 512} stored); sparse files are not transferred",
            )
        if info.st_size > max_size:
            raise Refused(
                "too_large", f"{path!r} is {info.st_size} bytes, over the limit of {max_size}"
            )
        out = sys.stdout.buffer
        remaining = info.st_size  # a file that grows meanwhile is sent as it was
        while remaining > 0 and (chunk := source.read(min(CHUNK, remaining))):
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()


def op_stat(path: str) -> dict[str, Any]:
    fd, info = open_regular_file(path)
    os.close(fd)
    parents, name = split(path)
    return {"path": display_path([*parents, name]), "size": info.st_size}


def framed_chunks(source: Any) -> Any:
    """The chunks of a framed upload (an 8-byte big-endian length before each, a zero length
    at the end). An upload cut short (a cancelled call, a lost connection) never reaches the
    end mark, and is refused: stdin ends the same way whether the host finished or gave up."""
    while True:
        header = source.read(8)
        if len(header) < 8:
            raise Refused("incomplete", "the upload was cut short; nothing was written")
        size = int.from_bytes(header, "big")
        if size == 0:
            return
        if size > CHUNK:
            raise Refused("invalid", f"an upload frame of {size} bytes (at most {CHUNK})")
        chunk = source.read(size)
        if len(chunk) < size:
            raise Refused("incomplete", "the upload was cut short; nothing was written")
        yield chunk


def write_file(parents: list[str], name: str, chunks: Any, mode: int = 0o644) -> int:
    """Write ``chunks`` to ROOT/parents/name (parents made if missing): into a temporary file,
    renamed over the target only when complete. Returns the size written."""
    directory = open_directory(parents, create=True)
    temporary = f".{name}.partial-{secrets.token_hex(6)}"
    size = 0
    try:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
            dir_fd=directory,
        )
        try:
            with os.fdopen(fd, "wb") as target:
                for chunk in chunks:
                    target.write(chunk)
                    size += len(chunk)
            # A rename replaces a symlink planted at the target name; it never follows it.
            os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=directory)
            except OSError:
                pass
            raise
    finally:
        os.close(directory)
    return size


def op_write(path: str) -> dict[str, Any]:
    """Write stdin (framed) to path: into a temporary file, renamed over the target only when
    complete."""
    parents, name = split(path)
    size = write_file(parents, name, framed_chunks(sys.stdin.buffer))
    return {"path": display_path([*parents, name]), "size": size}


class FramedReader:
    """A binary file object over framed chunks, for ``tarfile``'s stream mode."""

    def __init__(self, source: Any) -> None:
        self._chunks: Iterator[bytes] = framed_chunks(source)
        self._chunk = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self._offset >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._offset = chunk, 0
            end = len(self._chunk) if size < 0 else min(len(self._chunk), self._offset + size)
            parts.append(self._chunk[self._offset : end])
            if size > 0:
                size -= end - self._offset
            self._offset = end
        return b"".join(parts)

    def drain(self) -> None:
        """Read to the end mark (refused as cut short when it never comes)."""
        while self.read(CHUNK):
            pass


def member_chunks(source: Any, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining > 0:
        chunk = source.read(min(CHUNK, remaining))
        if not chunk:
            raise Refused("incomplete", "the copy was cut short")
        remaining -= len(chunk)
        yield chunk


def op_extract(path: str) -> dict[str, Any]:
    """Unpack a tar stream (framed on stdin) of folders and regular files into the folder
    ``path`` (made if missing). Every member lands under it through the same confined opens;
    a member of any other kind (a link, a device) or with a name leading out is refused."""
    import tarfile  # here: the other operations start without it

    base = display_path(relative_parts(path))
    reader = FramedReader(sys.stdin.buffer)
    files = folders = size = 0
    stream: Any = reader  # tarfile's stream mode only reads
    with tarfile.open(
        fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for member in archive:
            parts = relative_parts(posixpath.join(base, member.name.lstrip("/")))
            if member.isdir():
                os.close(open_directory(parts, create=True))
                folders += 1
            elif member.isreg() and parts:
                source = archive.extractfile(member)
                mode = 0o755 if member.mode & 0o111 else 0o644
                size += write_file(parts[:-1], parts[-1], member_chunks(source, member.size), mode)
                files += 1
            else:
                message = f"{member.name!r}: only folders and regular files are copied"
                raise Refused("not_regular", message)
    reader.drain()
    return {"path": base, "files": files, "folders": folders, "size": size}


def op_mkdir(path: str) -> dict[str, Any]:
    """Make the folder ``path`` (its parents too); refused if something is there already."""
    parents, name = split(path)
    directory = open_directory(parents, create=True)
    try:
        try:
            os.mkdir(name, 0o755, dir_fd=directory)
        except FileExistsError:
            raise Refused("exists", f"{display_path([*parents, name])!r} exists already") from None
    finally:
        os.close(directory)
    return {"path": display_path([*parents, name]), "created": True}


def op_disk(path: str) -> dict[str, Any]:
    """How much of ROOT's file system is used, and its size (bytes)."""
    info = os.statvfs(ROOT)
    size = info.f_blocks * info.f_frsize
    return {"path": ROOT, "size": size, "used": size - info.f_bfree * info.f_frsize}


def op_list(path: str) -> dict[str, Any]:
    parts = relative_parts(path)
    directory = open_directory(parts)
    entries: list[dict[str, Any]] = []
    truncated = False
    listed = 0
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if len(entries) >= MAX_ENTRIES or listed > MAX_LISTING:
                    truncated = True
                    break
                info = entry.stat(follow_symlinks=False)
                kind = (
                    "directory"
                    if stat.S_ISDIR(info.st_mode)
                    else "file"
                    if stat.S_ISREG(info.st_mode)
                    else "symlink"
                    if stat.S_ISLNK(info.st_mode)
                    else "other"
                )
                item = {
                    "name": entry.name,
                    "path": display_path([*parts, entry.name]),
                    "type": kind,
                    "size": info.st_size,
                    "modified": info.st_mtime,
                }
                entries.append(item)
                # Names that are not UTF-8 take 6 bytes a byte in JSON (\udcXX): count them.
                listed += len(json.dumps(item))
    finally:
        os.close(directory)
    entries.sort(key=lambda item: item["name"])
    return {"path": display_path(parts), "entries": entries, "truncated": truncated}


def op_remove(path: str) -> dict[str, Any]:
    parents, name = split(path)
    directory = open_directory(parents)
    try:
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, DIRECTORY_FLAGS, dir_fd=directory)
            os.close(child)
            # rmtree on a path would re-resolve it; with dir_fd it walks by descriptor.
            shutil.rmtree(name, dir_fd=directory)
        else:
            os.unlink(name, dir_fd=directory)  # a symlink itself, never its target
    finally:
        os.close(directory)
    return {"path": display_path([*parents, name]), "removed": True}


OPERATIONS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "read": op_read,
    "stat": op_stat,
    "write": op_write,
    "list": op_list,
    "remove": op_remove,
    "extract": op_extract,
    "mkdir": op_mkdir,
    "disk": op_disk,
}
ERRNO_KINDS = {
    errno.ENOENT: "not_found",
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EACCES: "permission",
    errno.EPERM: "permission",
    errno.EISDIR: "is_a_directory",
    errno.ENOTDIR: "not_a_directory",
    errno.EROFS: "read_only",
    errno.ENAMETOOLONG: "invalid",
    errno.EEXIST: "exists",
}


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: processes of the same uid can no longer ptrace this one."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    not_dumpable()
    operation = argv[1]
    path = os.fsdecode(bytes.fromhex(argv[2]))
    try:
        result = OPERATIONS[operation](path, *map(int, argv[3:]))  # read: its max size
    except Refused as exc:
        failure = {"error": str(exc), "kind": exc.kind}
    except OSError as exc:
        failure = {
            "error": f"{path!r}: {exc.strerror}",
            "kind": ERRNO_KINDS.get(exc.errno or 0, "os_error"),
        }
    except Exception as exc:  # tarfile's errors (extract): a stream that is no valid archive
        if type(exc).__module__ != "tarfile":
            raise
        failure = {"error": f"{path!r}: not a valid copy ({exc})", "kind": "invalid"}
    else:
        if result is not None:
            sys.stdout.write(json.dumps(result))
        return 0
    sys.stderr.write(json.dumps(failure))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
