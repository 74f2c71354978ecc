"""Kernel patch, run at start by SDK kernels: lets an execution report the files it created or
changed under /workspace (``data["files"]``).

The helper lives in a module object named ``_ai_computer`` in ``sys.modules``; the host asks for
``__import__('_ai_computer').changed_files_json()`` in each execution's ``user_expressions``.
``LIMIT`` (most files listed) is given by the host when the patch runs.
"""

import json
import os
import sys
import types

from IPython import get_ipython

LIMIT = int(globals()["LIMIT"])  # given by the host (kernel/startup.py: CHANGED_FILES_LIMIT)

module = types.ModuleType("_ai_computer")
# On a volume like /workspace's, so that both times come from the same clock: under gVisor
# /tmp is the sandbox's own kernel's, the volumes the host's (a few ms apart). /tmp when the
# packages volume is full.
markers = ("/opt/packages/.ai-computer-cell-start", "/tmp/.ai-computer-cell-start")
state = {"since": 0}


def before_cell(*_):
    # File times come from the kernel's coarse clock: take "now" from a file, not time.time().
    # Code in the sandbox may plant a symlink or a FIFO there: never followed, never waited on.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
    for marker in markers:
        try:
            descriptor = os.open(marker, flags, 0o600)
        except OSError:
            continue
        try:
            os.utime(descriptor)  # an existing marker is not written by O_TRUNC alone
            state["since"] = os.fstat(descriptor).st_mtime_ns
            return
        except OSError:
            continue
        finally:
            os.close(descriptor)


class Listing:
    # Shown as its JSON text, so the host parses it as JSON (the repr of a str would need
    # Python's parser, on text the kernel controls).
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.text)


def changed_files_json(root="/workspace", limit=LIMIT):
    found = []
    for folder, folders, names in os.walk(root):
        folders.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_mtime_ns >= state["since"]:
                found.append({"path": path, "size": info.st_size})
                if len(found) >= limit:
                    return Listing(json.dumps(found))
    return Listing(json.dumps(found))


module.changed_files_json = changed_files_json
sys.modules["_ai_computer"] = module
get_ipython().events.register("pre_run_cell", before_cell)
