"""Pure-logic tests of limit parsing (no Docker needed)."""

import pytest

from ai_computer.limits import (
    GIB,
    MIB,
    format_size,
    parse_cpu_limit,
    parse_memory_limit,
    parse_timeout,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512M", 512 * MIB),
        ("1G", GIB),
        ("256m", 256 * MIB),
        ("1.5G", 3 * GIB // 2),
        ("2GiB", 2 * GIB),
        ("512MB", 512 * MIB),
        (256 * MIB, 256 * MIB),
        (str(GIB), GIB),
    ],
)
def test_memory_limit_accepts_docker_style_sizes(value, expected):
    assert parse_memory_limit(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3G", "'3G' exceeds the maximum of 2G"),
        ("64M", "'64M' is below the minimum of 128M"),
        ("lots", "'lots' is not a size"),
        ("-1G", "is not a size"),
        (0, "must be positive"),
        (True, "is not a size"),
        (None, "is not a size"),
    ],
)
def test_memory_limit_rejects_with_a_clear_message(value, message):
    with pytest.raises(ValueError, match=message):
        parse_memory_limit(value)


def test_cpu_limit_range():
    assert parse_cpu_limit(1) == 1.0
    assert parse_cpu_limit(0.5) == 0.5
    assert parse_cpu_limit("2") == 2.0
    for bad, message in [
        (5, "exceeds the maximum of 4"),
        (0, "below the minimum"),
        ("x", "not a number"),
        (float("nan"), "not a number"),
    ]:
        with pytest.raises(ValueError, match=f"cpu_limit .*{message}"):
            parse_cpu_limit(bad)


def test_timeout():
    assert parse_timeout(None) is None
    assert parse_timeout(3) == 3.0
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            parse_timeout(bad)


def test_format_size():
    assert format_size(512 * MIB) == "512M"
    assert format_size(2 * GIB) == "2G"
    assert format_size(1536 * MIB) == "1536M"
