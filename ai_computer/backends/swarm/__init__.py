"""Sandboxes spread over a Docker Swarm: one set of services per sandbox on a node Swarm
chooses (``backend.py``), reached over CurveZMQ (``bridge.py``), with each node's daemon
checked at start for what Swarm cannot say per service (``checks.py``)."""
