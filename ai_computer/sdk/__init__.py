"""What agent code calls: ``SandboxClient`` (the facade), its session, execution, files, shell,
packages and ``SandboxPool``. Nothing here imports an engine's client: containers are reached
through the session's backend (``backends/base.py``)."""
