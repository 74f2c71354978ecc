"""``notebook_dir``'s host side without Docker: what 'copy' plans to send (links, special files,
the disk limit), the archive it streams, unpacked by the file tool with its root moved, and the
configuration's checks."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from traitlets import TraitError

from ai_computer.errors import SandboxStartError
from ai_computer.inside import file_tool, framed
from ai_computer.kernel import notebook_dir
from ai_computer.kernel.provisioner import DockerSandboxProvisioner


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A notebook's folder beside a secret it must never give away."""
    (tmp_path / "secret.txt").write_text("host secret")
    notebook = tmp_path / "notebook"
    (notebook / "data").mkdir(parents=True)
    (notebook / "data.csv").write_text("x,y\n1,2\n")
    (notebook / "data" / "image.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 40)
    (notebook / "run.sh").write_text("echo hi\n")
    (notebook / "run.sh").chmod(0o755)
    (notebook / "latest.csv").symlink_to("data.csv")  # inside: copied as the file
    (notebook / "secret-link.txt").symlink_to(tmp_path / "secret.txt")  # out of the folder
    (notebook / "relative-secret.txt").symlink_to("../secret.txt")
    (notebook / "folder-link").symlink_to("data")
    (notebook / "dangling").symlink_to("nowhere")
    os.mkfifo(notebook / "pipe")
    return notebook


def _unpacked(plan: notebook_dir.CopyPlan, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the plan's archive through the file tool's extract, as the sandbox would."""
    monkeypatch.setattr(file_tool, "ROOT", str(root))
    stdin = io.TextIOWrapper(io.BytesIO(b"".join(framed(notebook_dir.tar_stream(plan)))))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert file_tool.main(["tool", "extract", ""]) == 0, err.getvalue()
    report: dict = json.loads(out.getvalue())
    return report


def test_copy_sends_files_and_folders_and_never_follows_a_link_out(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = notebook_dir.plan_copy(notebook_dir.checked_folder(str(folder)), 16 << 20)
    assert sorted(plan.skipped) == [
        "dangling: a symlink to nothing",
        "folder-link: a symlink to a folder",
        "pipe: not a regular file",
        "relative-secret.txt: a symlink out of the folder",
        "secret-link.txt: a symlink out of the folder",
    ]
    sandbox = tmp_path / "workspace"
    sandbox.mkdir()
    report = _unpacked(plan, sandbox, monkeypatch)
    assert report["files"] == 4 and report["folders"] == 1
    copied = sorted(str(p.relative_to(sandbox)) for p in sandbox.rglob("*"))
    assert copied == ["data", "data.csv", "data/image.png", "latest.csv", "run.sh"]
    assert (sandbox / "latest.csv").read_text() == "x,y\n1,2\n"
    assert not (sandbox / "latest.csv").is_symlink()
    assert (sandbox / "data" / "image.png").read_bytes() == (folder / "data/image.png").read_bytes()
    assert os.stat(sandbox / "run.sh").st_mode & 0o111
    assert all(
        "host secret" not in p.read_text("latin-1") for p in sandbox.rglob("*") if p.is_file()
    )


def test_a_folder_over_the_disk_limit_is_refused_before_anything_is_sent(folder: Path) -> None:
    (folder / "big.bin").write_bytes(b"\0" * (3 << 20))
    (folder / "more").mkdir()
    (folder / "more" / "big2.bin").write_bytes(b"\0" * (3 << 20))
    with pytest.raises(SandboxStartError) as caught:
        notebook_dir.plan_copy(str(folder), 4 << 20)
    message = str(caught.value)
    assert f"the notebook's folder {folder} holds 6.0 MiB in 6 files" in message
    assert "disk_limit 4M" in message and "notebook_dir='read-only'" in message


def test_a_file_changed_after_counting_fails_the_copy(folder: Path) -> None:
    plan = notebook_dir.plan_copy(str(folder), 16 << 20)
    (folder / "data.csv").write_text("x")  # shorter than counted
    with pytest.raises(notebook_dir.CopyFailed, match="changed while it was copied"):
        b"".join(notebook_dir.tar_stream(plan))


def test_the_hosts_root_and_non_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="host's root directory"):
        notebook_dir.checked_folder("/")
    (tmp_path / "file").write_text("")
    with pytest.raises(SandboxStartError, match="is not a directory"):
        notebook_dir.checked_folder(str(tmp_path / "file"))


def test_copy_skips_hidden_entries_and_files_others_may_not_read(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk runs as the host user, who may read all of these: the sandbox must not.
    (folder / ".env").write_text("API_KEY=host secret")
    (folder / ".netrc").write_text("machine x password host secret")
    (folder / ".netrc").chmod(0o600)
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[credential] host secret")
    (folder / "data" / ".ssh").mkdir()
    (folder / "data" / ".ssh" / "id_ed25519").write_text("host secret")
    (folder / "private.txt").write_text("host secret")
    (folder / "private.txt").chmod(0o600)
    (folder / "closed").mkdir()
    (folder / "closed" / "inside.txt").write_text("host secret")
    (folder / "closed").chmod(0o700)
    (folder / "settings.txt").symlink_to(".env")  # a visible name for a hidden file
    (folder / "git-config").symlink_to(".git/config")
    (folder / "private-link.txt").symlink_to("private.txt")
    (folder / "closed-link.txt").symlink_to("closed/inside.txt")
    plan = notebook_dir.plan_copy(notebook_dir.checked_folder(str(folder)), 16 << 20)
    assert {note for note in plan.skipped if "symlink out" not in note} >= {
        ".env: hidden",
        ".git: hidden",
        ".netrc: hidden",
        "data/.ssh: hidden",
        "closed: not readable by others (mode 700)",
        "private.txt: not readable by others (mode 600)",
        "private-link.txt: not readable by others (mode 600)",
        "settings.txt: a symlink to a hidden file",
        "git-config: a symlink to a hidden file",
        "closed-link.txt: a symlink into a folder others may not read",
    }
    sandbox = tmp_path / "workspace"
    sandbox.mkdir()
    _unpacked(plan, sandbox, monkeypatch)
    copied = sorted(str(p.relative_to(sandbox)) for p in sandbox.rglob("*"))
    assert copied == ["data", "data.csv", "data/image.png", "latest.csv", "run.sh"]


def test_a_walk_stopped_at_its_cap_is_refused_not_copied_in_part(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(4):
        (folder / f"more{index}").mkdir()
        (folder / f"more{index}" / "file.txt").write_text("x")
    monkeypatch.setattr(notebook_dir, "_MAX_WALKED", 12)  # fewer than the folder holds
    with pytest.raises(SandboxStartError, match="more than 12 entries to look at"):
        notebook_dir.plan_copy(str(folder), 16 << 20)
    monkeypatch.setattr(notebook_dir, "_MAX_WALKED", 100)
    assert len(notebook_dir.plan_copy(str(folder), 16 << 20).entries) == 13


def test_the_home_folder_and_the_folders_holding_it_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "users" / "ada"
    (home / "project").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(SandboxStartError) as caught:
        notebook_dir.checked_folder(str(home))
    assert f"the notebook's folder {home} is the host user's home folder" in str(caught.value)
    assert "keys, tokens and dotfiles" in str(caught.value)
    for above in (home.parent, tmp_path):
        with pytest.raises(SandboxStartError, match=f"{above} holds the home {home}"):
            notebook_dir.checked_folder(str(above))
    with pytest.raises(SandboxStartError, match="home folder"):
        notebook_dir.checked_folder(f"{home}/project/..")  # the path as resolved
    assert notebook_dir.checked_folder(str(home / "project")) == str(home / "project")


def test_the_configuration_takes_three_modes_and_read_only_refuses_prestart() -> None:
    assert DockerSandboxProvisioner(notebook_dir="copy").notebook_dir == "copy"
    with pytest.raises(TraitError, match="notebook_dir 'rw' is not one of: off, copy, read-only"):
        DockerSandboxProvisioner(notebook_dir="rw")
    with pytest.raises(TraitError, match="cannot be combined with prestart"):
        DockerSandboxProvisioner(notebook_dir="read-only", prestart=1)
