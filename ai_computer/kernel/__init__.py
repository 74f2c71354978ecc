"""jupyter_client's side: the provisioner's hooks, its configuration, the sandbox kernelspecs,
the kernel manager, and the spares started ahead of need."""
