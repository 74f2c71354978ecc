"""The kernel's command line (``kernel/startup.py``), as pure logic."""

from __future__ import annotations

from ai_computer.inside import kernel_line, source
from ai_computer.kernel.startup import DEFAULT_KERNEL_ARGV, kernel_command

LIMIT = 64 * 1024 * 1024


def test_the_stock_launcher_starts_through_kernel_boot_with_the_collector_patch_last() -> None:
    command = kernel_command(DEFAULT_KERNEL_ARGV, "/run/c.json", LIMIT, ["--extra"])
    assert command[:5] == ["python", "-P", "-c", source("kernel_boot.py"), "-f"]
    assert command[5] == "/run/c.json" and "ipykernel_launcher" not in command[:6]
    assert command[-2:] == ["--extra", kernel_line("collector.py")]


def test_an_old_kernelspec_gets_minus_p_and_other_commands_keep_their_launcher() -> None:
    old = kernel_command(
        ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "/c", LIMIT, []
    )
    assert old[:4] == ["python3", "-P", "-c", source("kernel_boot.py")]
    other = kernel_command(
        ["python", "-m", "ipykernel", "-f", "{connection_file}"], "/c", LIMIT, []
    )
    assert other[:5] == ["python", "-P", "-m", "ipykernel", "-f"]
    shell = kernel_command(["/bin/kernel", "-m", "ipykernel_launcher"], "/c", LIMIT, [])
    assert shell[:3] == ["/bin/kernel", "-m", "ipykernel_launcher"]
