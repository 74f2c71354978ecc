"""Shell commands and per-session packages in a real sandbox with no network."""

from __future__ import annotations

import pytest

from ai_computer import SandboxClient


async def test_shell_exit_codes_stdout_and_stderr(core_sandbox: SandboxClient) -> None:
    ok = await core_sandbox.execute_shell("echo", ["hello", "$HOME; rm -rf /"])
    assert ok.success and ok.error is None
    assert ok.data == {
        "stdout": "hello $HOME; rm -rf /\n",
        "stderr": "",
        "exit_code": 0,
        "truncated": False,
    }
    failed = await core_sandbox.shell.execute("ls", ["/no/such/dir"])
    assert not failed.success
    assert failed.data["exit_code"] == 2
    # (Under gVisor `ls PATH` always fails so: see test_gvisor's known difference.)
    assert "cannot access '/no/such/dir'" in failed.data["stderr"]
    assert failed.error == "command exited with status 2"
    line = await core_sandbox.execute_shell("id -u && pwd && echo err >&2")
    assert line.data["stdout"] == "1000\n/workspace\n" and line.data["stderr"] == "err\n"
    missing = await core_sandbox.execute_shell("no-such-program", [])
    assert not missing.success and missing.data["exit_code"] == 127
    # timeout(1)'s own status, returned by the command itself well within its limit.
    own = await core_sandbox.execute_shell("exit 124")
    assert own.error == "command exited with status 124"


async def test_shell_timeout_kills_the_command_and_its_children(
    core_sandbox: SandboxClient,
) -> None:
    response = await core_sandbox.execute_shell("sh -c 'sleep 60 & sleep 60'", timeout=1)
    assert not response.success
    assert response.error == "command timed out after 1 s and was killed"
    left = await core_sandbox.execute_shell("ps -eo comm | grep -c '^sleep' || true")
    assert left.data["stdout"].strip() == "0"


async def test_shell_has_no_network(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_shell("cat", ["/proc/net/dev"])
    interfaces = [line.split(":")[0].strip() for line in response.data["stdout"].splitlines()[2:]]
    assert interfaces == ["lo"]


def test_bad_shell_arguments_are_refused() -> None:
    from ai_computer.sdk.shell import command_argv

    with pytest.raises(ValueError, match="command '' must be a non-empty string"):
        command_argv("", None)
    with pytest.raises(ValueError, match="args 'x' must be a list of strings"):
        command_argv("ls", "x")  # type: ignore[arg-type]


async def test_default_packages_import_without_installing(core_sandbox: SandboxClient) -> None:
    code = "import numpy, pandas, matplotlib, scipy, PIL; 'ok'"
    assert (await core_sandbox.execute_code(code)).data["result"] == "'ok'"


async def test_install_packages_without_network(sandbox: SandboxClient) -> None:
    absent = await sandbox.execute_code("import tabulate")
    assert absent.error == "ModuleNotFoundError: No module named 'tabulate'"
    installed = await sandbox.install_packages(["tabulate", "six==1.16.0"])
    assert installed.success, installed.error
    assert sorted(installed.data["installed"])[0].startswith("six-1.16.0")
    used = await sandbox.execute_code("import tabulate, six; six.__version__")
    assert used.data["result"] == "'1.16.0'"
    # Still no network inside, and the packages survive a kernel restart.
    await sandbox.restart()
    after = await sandbox.execute_code(
        "import tabulate, socket; sorted(n for _, n in socket.if_nameindex())"
    )
    assert after.success and after.data["result"] == "['lo']"
    again = await sandbox.install_packages(["numpy"])
    assert again.success and again.data["installed"] == []


async def test_package_errors_carry_pips_reason(core_sandbox: SandboxClient) -> None:
    unknown = await core_sandbox.install_packages(["ai-computer-no-such-package-xyz"])
    assert not unknown.success
    assert "No matching distribution found for ai-computer-no-such-package-xyz" in unknown.error
    for bad in (
        ["--index-url=http://example.invalid", "x"],
        ["git+https://example.invalid/x"],
        "tabulate",
    ):
        with pytest.raises(ValueError, match=r"requirement like|non-empty list"):
            await core_sandbox.install_packages(bad)  # type: ignore[arg-type]


async def test_shell_output_is_capped(docker_engine) -> None:
    async with SandboxClient(output_limit="10K") as client:
        response = await client.execute_shell("yes | head -c 100000")
        assert response.success
        assert len(response.data["stdout"]) == 10 * 1024 and response.data["truncated"]
