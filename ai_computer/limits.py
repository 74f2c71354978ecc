"""Resource limits of a sandbox: parsing, validation, defaults and maxima.

Sizes are binary, as Docker counts them: ``"1G"`` is 1024**3 bytes. Invalid values raise
``ValueError`` with a message naming the value and the allowed range.
"""

from __future__ import annotations

import enum
import math
import re

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_MEMORY_LIMIT = 512 * MIB
MIN_MEMORY_LIMIT = 128 * MIB
MAX_MEMORY_LIMIT = 2 * GIB

DEFAULT_CPU_LIMIT = 1.0
MIN_CPU_LIMIT = 0.1
MAX_CPU_LIMIT = 4.0

DEFAULT_TIMEOUT = 300.0
DEFAULT_OUTPUT_LIMIT = 10 * MIB

DEFAULT_DISK_LIMIT = 256 * MIB
MIN_DISK_LIMIT = 16 * MIB
MAX_DISK_LIMIT = 2 * GIB
MAX_PRESTART = 8

DEFAULT_PIDS_LIMIT = 256
"""Most processes and threads a sandbox may have (stops fork bombs)."""
DEFAULT_STARTUP_TIMEOUT = 60.0
"""Seconds a sandbox has to start and answer (its relay binds, its kernel replies)."""

_UNITS = {"": 1, "b": 1, "k": KIB, "m": MIB, "g": GIB}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: str | int, *, name: str = "size") -> int:
    """Return ``value`` ("512M", "1g", "1.5GiB", "2048" or an int) as a number of bytes."""
    if isinstance(value, bool):
        raise ValueError(
            f"{name} {value!r} is not a size: use bytes or a string like '512M' or '1G'"
        )
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = match.groups()
        size = int(float(number) * _UNITS[unit.lower()])
    else:
        raise ValueError(
            f"{name} {value!r} is not a size: use bytes or a string like '512M' or '1G'"
        )
    if size <= 0:
        raise ValueError(f"{name} {value!r} must be positive")
    return size


def format_size(size: int) -> str:
    """Format bytes the way limits are written: ``536870912`` -> ``"512M"``."""
    for unit, factor in (("G", GIB), ("M", MIB), ("K", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    if size >= MIB:
        return f"{size / MIB:.1f}M"
    return f"{size}B"


def parse_memory_limit(value: str | int) -> int:
    """Validate a memory limit; return bytes within [128M, 2G]."""
    size = parse_size(value, name="memory_limit")
    if not MIN_MEMORY_LIMIT <= size <= MAX_MEMORY_LIMIT:
        relation = (
            "exceeds the maximum of" if size > MAX_MEMORY_LIMIT else "is below the minimum of"
        )
        bound = MAX_MEMORY_LIMIT if size > MAX_MEMORY_LIMIT else MIN_MEMORY_LIMIT
        raise ValueError(
            f"memory_limit {value!r} {relation} {format_size(bound)} "
            f"(allowed: {format_size(MIN_MEMORY_LIMIT)} to {format_size(MAX_MEMORY_LIMIT)})"
        )
    return size


def parse_disk_limit(value: str | int) -> int:
    """Validate the size of /workspace (and of /opt/packages); return bytes within [16M, 2G]."""
    size = parse_size(value, name="disk_limit")
    if not MIN_DISK_LIMIT <= size <= MAX_DISK_LIMIT:
        raise ValueError(
            f"disk_limit {value!r} is out of range "
            f"(allowed: {format_size(MIN_DISK_LIMIT)} to {format_size(MAX_DISK_LIMIT)})"
        )
    return size


def parse_cpu_limit(value: float | int | str) -> float:
    """Validate a CPU limit in cores (fractions allowed); return it within [0.1, 4]."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        cpus = math.nan
    if isinstance(value, bool) or not math.isfinite(cpus):
        raise ValueError(f"cpu_limit {value!r} is not a number of cores (allowed: 0.1 to 4)")
    if not MIN_CPU_LIMIT <= cpus <= MAX_CPU_LIMIT:
        relation = (
            "exceeds the maximum of 4" if cpus > MAX_CPU_LIMIT else "is below the minimum of 0.1"
        )
        raise ValueError(f"cpu_limit {value!r} {relation} cores (allowed: 0.1 to 4)")
    return cpus


def parse_prestart(value: int | str) -> int:
    """Validate a number of spare sandboxes to keep started (``prestart``): 0 to 8."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_PRESTART:
        raise ValueError(f"prestart {value!r} is not a whole number from 0 to {MAX_PRESTART}")
    return int(text)


GVISOR_MAX_PIDS = 256
"""Most processes (``pids_limit``) a sandbox may be allowed under gVisor."""
RUNTIMES = ("runc", "gvisor")
"""Where a sandbox's kernel runs: Docker's default runtime, or gVisor's user-space kernel."""


def parse_runtime(value: object) -> str:
    """Validate a sandbox runtime: ``runc`` (the default) or ``gvisor``."""
    if not isinstance(value, str) or value not in RUNTIMES:
        raise ValueError(f"runtime {value!r} is not one of: {', '.join(RUNTIMES)}")
    return value


class _ClientDefault(enum.Enum):
    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"

    __str__ = __repr__


USE_CLIENT_DEFAULT = _ClientDefault.USE_CLIENT_DEFAULT
"""A call's ``timeout`` when it was not given: the client's own. ``None`` means no limit."""

Timeout = float | int | None | _ClientDefault
"""What a call's ``timeout`` may be: seconds, ``None`` (no limit) or ``USE_CLIENT_DEFAULT``."""


def call_timeout(value: Timeout, default: float | None) -> float | None:
    """A call's time limit: ``default`` when not given, else the value checked (None: none)."""
    if value is USE_CLIENT_DEFAULT:
        return default
    return parse_timeout(value)


def parse_timeout(value: float | int | None, *, name: str = "timeout") -> float | None:
    """Validate a time limit in seconds; ``None`` means no limit."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} {value!r} must be a positive number of seconds or None")
    return seconds


def format_seconds(seconds: float) -> str:
    """``3.0`` -> ``"3 s"``, ``0.5`` -> ``"0.5 s"``."""
    return f"{seconds:g} s"
