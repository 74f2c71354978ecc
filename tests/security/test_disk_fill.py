"""Case 3: filling every writable place gives the code ENOSPC (or EACCES where it may not write),
the kernel keeps running, and the host's disk is not written."""

from __future__ import annotations

import ast
import asyncio
import shutil
from textwrap import dedent

from sandbox_checks import still_works

from ai_computer import SandboxClient
from ai_computer.limits import MIB

FILL = dedent("""
    import errno, os

    def writable_mounts():
        for line in open('/proc/self/mounts'):
            device, point, fstype, options = line.split()[:4]
            if 'rw' not in options.split(',') or fstype in ('proc', 'sysfs', 'mqueue', 'devpts'):
                continue
            if point.startswith(('/proc', '/sys')) or point in ('/dev', '/sys/fs/cgroup'):
                continue
            yield point, fstype

    def fill(path, size):
        written = 0
        names = []
        try:
            if os.path.isdir(path):
                target = os.path.join(path, 'fill')
                while True:
                    name = f'{target}-{len(names)}'
                    names.append(name)
                    with open(name, 'wb') as file:
                        while written < (1 << 34):
                            file.write(b'x' * size)
                            written += size
                            if size < 65536:
                                break
            else:  # a file Docker mounted (/etc/hosts, ...)
                with open(path, 'ab') as file:
                    file.write(b'x')
            return 'written', written
        except OSError as exc:
            return errno.errorcode[exc.errno], written
        finally:
            for name in names:
                if os.path.exists(name):
                    os.remove(name)

    report = {}
    for point, fstype in writable_mounts():
        info = os.statvfs(point) if os.path.isdir(point) else None
        capacity = info.f_blocks * info.f_frsize if info else None
        one_big = fill(point, 1 << 20)
        many_small = fill(point, 4096) if os.path.isdir(point) else one_big
        report[point] = (fstype, capacity, one_big[0], many_small[0], one_big[1])
    report
""")


async def test_filling_every_writable_place_gives_enospc(hostile: SandboxClient) -> None:
    used_before = shutil.disk_usage("/var/lib/docker").used
    peak_growth = 0
    execution = asyncio.ensure_future(hostile.execute_code(FILL, timeout=120))
    while not execution.done():
        peak_growth = max(peak_growth, shutil.disk_usage("/var/lib/docker").used - used_before)
        await asyncio.sleep(0.05)
    response = execution.result()
    assert response.success, response.error
    report = ast.literal_eval(response.data["result"])
    # The kernel's sockets' volume is the sandbox's own too (1 MiB, in its memory).
    directories = {
        "/workspace",
        "/opt/packages",
        "/tmp",
        "/home/sandbox",
        "/dev/shm",
        "/run/ai-computer",
    }
    assert directories <= set(report), report
    for point, (fstype, capacity, one_big, many_small, written) in report.items():
        if point in directories:
            # Under gVisor the volumes (host tmpfs) arrive through its file proxy, as 9p.
            volume = point in ("/workspace", "/opt/packages", "/run/ai-computer")
            gvisor_volume = hostile.runtime == "gvisor" and volume
            assert fstype == ("9p" if gvisor_volume else "tmpfs"), (point, fstype)
            assert capacity <= 64 * MIB, (point, capacity)
            assert (one_big, many_small) == ("ENOSPC", "ENOSPC"), (point, report[point])
            assert written <= capacity
        else:  # the files Docker mounts: not the sandbox's to write
            assert (one_big, many_small) == ("EACCES", "EACCES"), (point, report[point])
    # The sandbox wrote gigabytes' worth of attempts; the host's disk saw none of it.
    assert peak_growth < 32 * MIB, peak_growth
    await still_works(hostile)
