"""Kernel patch, run at start (the last one): the garbage collector back on.

The kernel's command (``kernel/startup.py``: ``KERNEL_BOOT``) turns the collector off while
ipykernel and IPython load: their ~480 modules make objects in bulk, and the collections that
sets off took about 30 ms of a 220 ms start here. What is alive now lives as long as the kernel:
it is frozen out of later collections (``gc.freeze``), so that each full collection in the user's
code no longer walks ~40,000 objects of the kernel's own (about 13 ms). The few cycles the start
left (under a thousand objects) are frozen with them.
"""

import gc

gc.freeze()
gc.enable()
