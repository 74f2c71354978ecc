"""The sandbox kernel's launcher: ``python -P -c <this> -f <connection file> ...``, in place of
``-m ipykernel_launcher`` (``kernel/startup.py``), which it then runs as ``-m`` would.

The garbage collector is off while ipykernel and IPython load: their ~480 modules make objects
in bulk, and the collections that sets off took about 30 ms of a 220 ms start here. The last
start-up patch (``collector.py``) turns it on again. Nothing else differs from a stock start.
"""

import gc
import runpy

if __name__ == "__main__":
    gc.disable()
    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
