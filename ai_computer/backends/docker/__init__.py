"""The local Docker engine: the first backend (``backend.py``: ``DockerBackend``).

Nothing is imported here, so that ``ai-computer image build`` (``image.py``) loads no ZMQ.
"""
