"""`ai-computer kernelspec install`: the shipped kernelspec and variants, installed the way a user
would, found by Jupyter's own tools; bad limits refused at install time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from ai_computer.cli import main
from ai_computer.kernel import kernelspec
from ai_computer.limits import GIB, MIB


def _specs(prefix: Path) -> KernelSpecManager:
    return KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])


def test_install_default_and_variants_into_a_prefix(tmp_path: Path) -> None:
    assert main(["kernelspec", "install", "--prefix", str(tmp_path)]) == 0
    assert main(["kernelspec", "install", "--prefix", str(tmp_path), "--memory-limit", "2G",
                 "--cpu-limit", "4"]) == 0  # fmt: skip
    assert main(["kernelspec", "install", "--prefix", str(tmp_path), "--name", "small",
                 "--display-name", "Small sandbox", "--memory-limit", "256M"]) == 0  # fmt: skip

    specs = _specs(tmp_path)
    default = specs.get_kernel_spec("ai-computer-sandbox")
    assert default.display_name == "AI Computer Sandbox"
    assert default.language == "python"
    assert default.metadata["kernel_provisioner"] == {
        "provisioner_name": "ai-computer-docker",
        "config": {"memory_limit": "512M", "cpu_limit": 1},
    }
    assert {"logo-svg.svg", "logo-64x64.png"} <= set(os.listdir(default.resource_dir))

    variant = specs.get_kernel_spec("ai-computer-sandbox-2g-4cpu")
    assert variant.display_name == "AI Computer Sandbox (2 GB, 4 CPUs)"
    assert variant.metadata["kernel_provisioner"]["config"] == {
        "memory_limit": "2G",
        "cpu_limit": 4,
    }
    assert variant.argv == default.argv

    small = specs.get_kernel_spec("small")
    assert small.display_name == "Small sandbox"
    assert small.metadata["kernel_provisioner"]["config"]["memory_limit"] == "256M"

    # Jupyter's own command finds them (and so does ours), through JUPYTER_PATH.
    environment = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")}
    listing = subprocess.run(
        [Path(sys.executable).with_name("jupyter"), "kernelspec", "list", "--json"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    names = set(json.loads(listing.stdout)["kernelspecs"])
    assert {"ai-computer-sandbox", "ai-computer-sandbox-2g-4cpu", "small"} <= names
    ours = kernelspec.installed_sandbox_kernelspecs(specs)
    assert set(ours) == {"ai-computer-sandbox", "ai-computer-sandbox-2g-4cpu", "small"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--memory-limit", "3G"], "memory_limit '3G' exceeds the maximum of 2G"),
        (["--memory-limit", "lots"], "memory_limit 'lots' is not a size"),
        (["--cpu-limit", "8"], "cpu_limit '8' exceeds the maximum of 4"),
        (["--name", "no spaces"], "kernel name 'no spaces' is not allowed"),
        (["--prestart", "9"], "prestart '9' is not a whole number from 0 to 8"),
        (["--prestart", "-1"], "prestart '-1' is not a whole number from 0 to 8"),
    ],
)
def test_bad_values_are_refused_before_anything_is_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    command = ["kernelspec", "install", "--prefix", str(tmp_path), *arguments]
    try:
        status = main(command)
    except SystemExit as exc:  # argparse refuses bad limits with status 2
        status = int(exc.code or 0)
    assert status != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "share").exists()


def test_variant_names_state_their_limits() -> None:
    assert kernelspec.variant_display_name(2 * GIB, 4) == "AI Computer Sandbox (2 GB, 4 CPUs)"
    assert (
        kernelspec.variant_display_name(GIB + GIB // 2, 1) == "AI Computer Sandbox (1.5 GB, 1 CPU)"
    )
    assert (
        kernelspec.variant_display_name(256 * MIB, 0.5) == "AI Computer Sandbox (256 MB, 0.5 CPUs)"
    )
    assert kernelspec.variant_kernel_name(256 * MIB, 0.5) == "ai-computer-sandbox-256m-0.5cpu"


def test_in_memory_spec_is_the_shipped_one_with_config_laid_over() -> None:
    spec = kernelspec.sandbox_kernel_spec({"memory_limit": 256 * MIB, "pids_limit": 64})
    shipped = json.loads((kernelspec.SHIPPED_KERNELSPEC_DIR / "kernel.json").read_text())
    assert spec.argv == shipped["argv"]
    assert spec.display_name == shipped["display_name"]
    assert spec.metadata["kernel_provisioner"]["config"] == {
        "memory_limit": 256 * MIB,
        "cpu_limit": 1,
        "pids_limit": 64,
    }


def test_prestart_is_written_into_the_provisioner_config(tmp_path: Path) -> None:
    command = ["kernelspec", "install", "--prefix", str(tmp_path), "--name", "quick"]
    assert main([*command, "--prestart", "2"]) == 0
    config = _specs(tmp_path).get_kernel_spec("quick").metadata["kernel_provisioner"]["config"]
    assert config["prestart"] == 2


def test_gvisor_variants_say_so(tmp_path: Path) -> None:
    assert main(["kernelspec", "install", "--prefix", str(tmp_path), "--runtime", "gvisor"]) == 0
    assert main(["kernelspec", "install", "--prefix", str(tmp_path), "--runtime", "gvisor",
                 "--memory-limit", "2G"]) == 0  # fmt: skip
    specs = _specs(tmp_path)
    plain = specs.get_kernel_spec("ai-computer-sandbox-gvisor")
    assert plain.display_name == "AI Computer Sandbox (gVisor)"
    assert plain.metadata["kernel_provisioner"]["config"]["runtime"] == "gvisor"
    bigger = specs.get_kernel_spec("ai-computer-sandbox-2g-1cpu-gvisor")
    assert bigger.display_name == "AI Computer Sandbox (2 GB, 1 CPU, gVisor)"


def test_notebook_dir_variants_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = ["kernelspec", "install", "--prefix", str(tmp_path)]
    assert main([*command, "--notebook-dir", "copy"]) == 0
    assert main([*command, "--notebook-dir", "read-only", "--memory-limit", "2G"]) == 0
    specs = _specs(tmp_path)
    copied = specs.get_kernel_spec("ai-computer-sandbox-folder-copy")
    assert copied.display_name == "AI Computer Sandbox (folder copied)"
    assert copied.metadata["kernel_provisioner"]["config"]["notebook_dir"] == "copy"
    mounted = specs.get_kernel_spec("ai-computer-sandbox-2g-1cpu-folder-ro")
    assert mounted.display_name == "AI Computer Sandbox (2 GB, 1 CPU, folder read-only)"
    assert main([*command, "--notebook-dir", "off", "--name", "plain"]) == 0
    assert (
        "notebook_dir"
        not in specs.get_kernel_spec("plain").metadata["kernel_provisioner"]["config"]
    )
    capsys.readouterr()
    assert main([*command, "--notebook-dir", "read-only", "--prestart", "1"]) == 2
    assert "cannot be combined with prestart" in capsys.readouterr().err
