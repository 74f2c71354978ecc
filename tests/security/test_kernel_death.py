"""Case 11: the kernel killed from inside is reported with its exit code or signal, restarted,
and the files in /workspace are kept."""

from __future__ import annotations

import pytest
from sandbox_checks import still_works

from ai_computer import SandboxClient

RESTARTED = "; restarted (variables lost, files in /workspace kept)"


@pytest.mark.parametrize(
    ("code", "report"),
    [
        pytest.param("import os; os._exit(3)", "kernel died (exit code 3)", id="os-exit"),
        pytest.param(
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            "kernel died (exit code 137, SIGKILL)",
            id="kill-9-itself",
        ),
        pytest.param(
            "import ctypes; ctypes.string_at(0)",
            "kernel died (exit code 139, SIGSEGV)",
            id="segfault",
        ),
        pytest.param(
            # repr() of deeply nested lists recurses in C: the C stack overflows.
            "import sys\nsys.setrecursionlimit(10**8)\nnested = []\n"
            "for _ in range(10**6):\n    nested = [nested]\nrepr(nested)",
            "kernel died (exit code 139, SIGSEGV)",
            id="deep-recursion",
        ),
    ],
)
async def test_kernel_killed_from_inside_is_reported_and_restarted(
    hostile: SandboxClient, code: str, report: str
) -> None:
    await hostile.execute_code("open('survivor.txt', 'w').write('kept'); lost = 1")
    response = await hostile.execute_code(code)
    assert not response.success
    assert response.error == report + RESTARTED
    after = await hostile.execute_code("(open('survivor.txt').read(), 'lost' in globals())")
    assert after.data["result"] == "('kept', False)"
    await still_works(hostile)
