"""The sandbox kernel's launcher: ``python -P -c <this> -f <connection file> ...``, in place of
``-m ipykernel_launcher`` (``kernel/startup.py``), which it then runs as ``-m`` would.

Two things make the kernel start sooner, neither of which changes what it runs:

- The garbage collector is off while ipykernel and IPython load: their ~480 modules make
  objects in bulk, and the collections that set off took about 30 ms of a 220 ms start here.
  The last start-up patch (``collector.py``) turns it on again.
- jupyter_client's package is entered without running its ``__init__``, which imports every
  client, manager and provisioner it has (and ``importlib.metadata`` for entry points) though a
  kernel uses only its session and connection modules. The names ipykernel reads from the
  package while it starts come from the modules that define them; the first other name asked
  for (``import jupyter_client; jupyter_client.KernelManager`` in user code, say) runs the real
  ``__init__`` first, so everything is there as usual.
"""

import gc
import importlib
import importlib.util
import runpy
import sys

gc.disable()


def defer_package_init(name: str, known: dict[str, str]) -> None:
    """Put package ``name`` in sys.modules without running its ``__init__`` (its submodules
    import as usual); ``known`` maps names read early to the submodules that define them."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)

    loader = spec.loader

    def missing(attribute: str) -> object:  # the module's __getattr__ (PEP 562)
        if attribute in known:
            return getattr(importlib.import_module(known[attribute]), attribute)
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, attribute)

    module.__dict__["__getattr__"] = missing
    sys.modules[name] = module


defer_package_init(
    "jupyter_client",
    {
        "write_connection_file": "jupyter_client.connect",
        "find_connection_file": "jupyter_client.connect",
        "BlockingKernelClient": "jupyter_client.blocking",
    },
)
runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
