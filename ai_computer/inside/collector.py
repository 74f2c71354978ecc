"""Kernel patch, run at start (the last one): the garbage collector back on.

The kernel's launcher (``kernel_boot.py``) turns the collector off while ipykernel and IPython
load. What is alive now lives as long as the kernel: it is frozen out of later collections
(``gc.freeze``), so that each full collection in the user's code no longer walks ~40,000 objects
of the kernel's own (about 13 ms). The few cycles the start left (under a thousand objects) are
frozen with them.
"""

import gc

gc.freeze()
gc.enable()
