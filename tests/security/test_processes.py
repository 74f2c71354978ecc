"""Case 7: zombies and orphans are reaped, and their number is bounded."""

from __future__ import annotations

import ast
from textwrap import dedent

from sandbox_checks import still_works

from ai_computer import SandboxClient

COUNT_ZOMBIES = """
import os
def zombies():
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            stat = open(f'/proc/{pid}/stat').read()
        except OSError:
            continue
        fields = stat.rpartition(')')[2].split()
        if fields[0] == 'Z':
            found.append(int(fields[1]))  # the parent's pid
    return found
"""


async def test_orphans_are_reaped_by_init(hostile: SandboxClient) -> None:
    code = COUNT_ZOMBIES + dedent("""
        import time
        for _ in range(50):  # double fork: the grandchild is orphaned, then exits
            child = os.fork()
            if child == 0:
                if os.fork() == 0:
                    time.sleep(0.2)
                os._exit(0)
            os.waitpid(child, 0)
        time.sleep(1)
        zombies()
    """)
    response = await hostile.execute_code(code)
    assert response.success, response.error
    assert response.data["result"] == "[]"
    await still_works(hostile)


async def test_unwaited_children_are_bounded_and_reaped(hostile: SandboxClient) -> None:
    code = COUNT_ZOMBIES + dedent("""
        import subprocess, time
        children = []
        try:
            for _ in range(1000):  # never waited for: each stays a zombie while referenced
                children.append(subprocess.Popen(['true']))
        except OSError as exc:
            print('refused', exc.errno)
        time.sleep(0.5)
        peak = len(zombies())
        del children  # Popen objects reap their process when they are collected
        time.sleep(0.5)
        (peak, len(zombies()))
    """)
    response = await hostile.execute_code(code, timeout=60)
    assert response.success, response.error
    peak, left = ast.literal_eval(response.data["result"])
    assert "refused" in response.data["output"]  # the pids limit stopped the pile of zombies
    assert 100 < peak < 256
    assert left == 0
    await still_works(hostile)
