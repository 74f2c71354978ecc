"""The sandbox image: its tag, the command that prints it, and the built image itself."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from importlib import resources

import docker

import ai_computer
from ai_computer.backends.docker.image import image_exists
from ai_computer.backends.image import IMAGE_REPOSITORY, default_image_tag

# Run inside the image: everything the sandbox promises about its Python environment.
_PROBE = """
import json, os, sys, warnings
warnings.simplefilter("error")
import numpy, pandas, scipy, PIL, ipykernel
import matplotlib.pyplot as plt
plt.plot([1, 2])
plt.savefig("/tmp/plot.png")
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "version": sys.version_info[:2],
    "executable": sys.executable, "cwd": os.getcwd(),
}))
"""


def test_default_image_tag_names_version_and_description_hash() -> None:
    image_directory = resources.files("ai_computer") / "data" / "image"
    description = b"".join(
        (image_directory / name).read_bytes() for name in ("Dockerfile", "requirements.txt")
    )
    expected_hash = hashlib.sha256(description).hexdigest()[:12]

    tag = default_image_tag()

    assert tag == f"{IMAGE_REPOSITORY}:{ai_computer.__version__}-{expected_hash}"
    assert re.fullmatch(r"ai-computer-sandbox:[0-9A-Za-z.+-]+-[0-9a-f]{12}", tag)


def test_default_image_tag_is_stable() -> None:
    first = default_image_tag()
    default_image_tag.cache_clear()
    assert default_image_tag() == first


def test_cli_prints_the_image_tag() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "ai_computer", "image", "tag"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert completed.stdout.strip() == default_image_tag()
    assert completed.stderr == ""


def test_built_image_runs_python_stack_as_sandbox_user(docker_engine: docker.DockerClient) -> None:
    tag = default_image_tag()
    assert image_exists(docker_engine, tag)
    assert not image_exists(docker_engine, f"{IMAGE_REPOSITORY}:no-such-tag")

    container = docker_engine.containers.run(
        tag,
        ["python", "-c", _PROBE],
        detach=True,
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": "size=64m"},
        labels={"ai-computer.test": "image"},
    )
    try:
        exit_status = container.wait(timeout=60)["StatusCode"]
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)

    assert exit_status == 0, stderr
    # Matplotlib warns on stderr (through logging) when it finds no writable config dir.
    assert stderr == ""
    probe = json.loads(stdout)
    assert probe == {
        "uid": 1000,
        "gid": 1000,
        "version": [3, 11],
        "executable": "/opt/sandbox/bin/python",
        "cwd": "/workspace",
    }
