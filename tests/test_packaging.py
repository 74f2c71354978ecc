"""The wheel, built the way a release would be: it carries the kernelspec, the server extension
(enabled on install) and the prebuilt JupyterLab extension, and nothing from the npm build."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = "ai_computer-0.1.0.data/data/"
LABEXTENSION = DATA + "share/jupyter/labextensions/ai-computer-jupyterlab/"


def test_wheel_layout(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        config = json.loads(
            archive.read(DATA + "etc/jupyter/jupyter_server_config.d/ai_computer.json")
        )
        labextension = json.loads(archive.read(LABEXTENSION + "package.json"))
    assert {
        "ai_computer/data/kernelspec/ai-computer-sandbox/kernel.json",
        "ai_computer/data/kernelspec/ai-computer-sandbox/logo-svg.svg",
        "ai_computer/data/kernelspec/ai-computer-sandbox/logo-64x64.png",
        "ai_computer/data/image/Dockerfile",
        "ai_computer/data/image/requirements.txt",
        "ai_computer/jupyter/server_extension.py",
        "ai_computer/server_extension.py",  # for configuration written by older versions
    } <= names
    extension = "ai_computer.jupyter.server_extension"
    assert config == {"ServerApp": {"jpserver_extensions": {extension: True}}}
    assert LABEXTENSION + labextension["jupyterlab"]["_build"]["load"] in names
    assert not [name for name in names if "node_modules" in name or name.endswith(".ts")]


def test_installed_labextension_is_the_prebuilt_one() -> None:
    # An editable install copies the prebuilt extension: after a rebuild, reinstall.
    installed = Path(sys.prefix) / "share/jupyter/labextensions/ai-computer-jupyterlab"
    prebuilt = json.loads((ROOT / "jupyter_ext/prebuilt/package.json").read_text())
    message = "the installed JupyterLab extension is stale: run `pip install -e .`"
    assert json.loads((installed / "package.json").read_text()) == prebuilt, message
