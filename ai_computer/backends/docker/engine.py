"""The Docker engine connection, and the one seam where docker-py's errors become ours.

docker-py is synchronous: in async code, call these from worker threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests

from ...errors import DockerUnavailableError, SandboxError

_clients: dict[int, docker.DockerClient] = {}
_clients_lock = threading.Lock()


def explain(exc: Exception) -> str:
    """docker-py's own explanation of an error, else its text."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def unavailable_message(exc: Exception) -> str:
    """What to tell a user whose Docker engine does not answer."""
    return (
        f"no Docker engine is reachable ({explain(exc)}); start one, e.g. "
        "`sudo systemctl start docker` or `sudo dockerd &` (`bash setup.sh setup` installs and "
        "starts one), or point DOCKER_HOST at a running engine"
    )


def docker_client() -> docker.DockerClient:
    """This process's client of the engine the environment names (DOCKER_HOST etc.).

    Connects and pings on first use; raises DockerUnavailableError when no engine answers.
    """
    with _clients_lock:
        client = _clients.get(os.getpid())  # a forked child must not share the parent's sockets
        if client is None:
            try:
                client = docker.from_env(timeout=120)
                client.ping()
            except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
                raise DockerUnavailableError(unavailable_message(exc)) from exc
            _clients[os.getpid()] = client
        return client


@contextmanager
def translate_docker_errors(
    failure: str, error: type[SandboxError] = SandboxError
) -> Iterator[None]:
    """Turn docker-py's exceptions into ours, prefixed with what was being done."""
    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise DockerUnavailableError(unavailable_message(exc)) from exc
    except docker.errors.DockerException as exc:
        raise error(f"{failure}: {explain(exc)}") from exc


def remove_quietly(remove: Callable[[], object]) -> None:
    """Run a Docker removal; a resource already gone (or going) is not an error."""
    try:
        remove()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409 or "in progress" not in str(exc):
            raise
