"""Kernel patch, run at start: the working directory (/workspace) back on sys.path.

The kernel starts with ``python -P``, so that nothing planted in /workspace can replace its
launcher or the modules it loads at start; that also keeps IPython from putting the working
directory on sys.path. User code expects it there, as in a stock kernel (``import helper`` for
/workspace/helper.py): after the standard library, before site-packages, as IPython puts it.
"""

import sys

at = next(
    (i for i, path in enumerate(sys.path) if path.endswith(("site-packages", "dist-packages"))),
    len(sys.path),
)
if "" not in sys.path:
    sys.path.insert(at, "")
