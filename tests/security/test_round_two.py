"""Hostile input, round two: each finding of the second attack on the SDK, reproduced through
the public API (SECURITY.md has a row per test)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import docker
import pytest
from sandbox_checks import leftovers, run_client, still_works

from ai_computer import FileOperationResponse, SandboxClient
from ai_computer.backends.labels import default_runtime_root

# The hostile code of the benchmark that measures these cases, shared with it.
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from bench_hostile import HUGE_LISTING, STOP_EVERY_COMMAND

# -- 1. code on the host through install_packages ----------------------------------------------

BACKEND = """
import pathlib
pathlib.Path({canary!r}).write_text("the build backend ran on the host")
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(*args, **kwargs):
    raise RuntimeError("no")
get_requires_for_build_sdist = get_requires_for_build_wheel
build_sdist = build_wheel
"""


def _hostile_project(folder: Path, canary: Path) -> None:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "evilpkg"\nversion = "1.0"\n'
    )
    (folder / "backend.py").write_text(BACKEND.format(canary=str(canary)))


async def test_install_packages_runs_no_code_on_the_host(
    shared_sandbox: SandboxClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary"
    _hostile_project(tmp_path / "x", canary)
    # A bare archive name resolves against the host process's working directory.
    os.system(f"cd {tmp_path} && tar czf evilpkg-1.0.tar.gz x")
    monkeypatch.chdir(tmp_path)
    encoded = str(tmp_path / "x").replace("/", "%2F")
    for spec in [
        f"file:{encoded}",
        "evilpkg-1.0.tar.gz",
        "file:evilpkg-1.0.tar.gz",
        f"evilpkg @ file://{tmp_path}/x",
        "./x",
        "x/",
        "evilpkg; os_name == 'posix'",
        "--editable=x",
        "-ex",
        "evilpkg#egg=evilpkg",
    ]:
        with pytest.raises(ValueError, match="is not a requirement like 'tabulate'"):
            await shared_sandbox.install_packages([spec])
    assert not canary.exists()


# -- 2. sandbox code writing to the host's disk through the runtime directory ------------------

PLANTED_LAUNCHER = """
import os, pathlib
pathlib.Path('/workspace/launcher-ran').write_text('yes')
for folder in ('/run/ai-computer-connection', '/run/ai-computer'):
    try:
        os.makedirs(folder + '/fill', exist_ok=True)
        with open(folder + '/fill/blob', 'wb') as f:
            f.write(b'x' * (8 << 20))
    except OSError:
        pass
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def _host_bytes(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*"))


async def test_sandbox_code_cannot_write_to_the_host_runtime_directory(
    hostile: SandboxClient,
) -> None:
    sandbox_dir = Path(default_runtime_root()) / hostile.sandbox_id
    probe = dedent("""
        import os
        results = {}
        for folder in ('/run/ai-computer-connection', '/run/ai-computer'):
            try:
                with open(folder + '/probe', 'wb') as f:
                    f.write(b'y' * (4 << 20))
                results[folder] = 'written'
            except OSError as exc:
                results[folder] = exc.strerror
        results
    """)
    response = await hostile.execute_code(probe)
    assert response.success, response.error
    # gVisor refuses it before the mount's read-only flag is looked at.
    refusal = "Permission denied" if hostile.runtime == "gvisor" else "Read-only file system"
    assert f"'/run/ai-computer-connection': '{refusal}'" in response.data["result"]
    written = await hostile.fs.write_file("ipykernel_launcher.py", PLANTED_LAUNCHER)
    assert written.success, written.error
    restarted = await hostile.restart()
    assert restarted.success, restarted.error
    await still_works(hostile)
    # The planted module did not replace the kernel's launcher (python -P), and nothing the
    # sandbox wrote reached the host: its directory holds connection files and sockets only.
    assert not (await hostile.fs.stat("launcher-ran")).success
    assert _host_bytes(sandbox_dir) < 64 * 1024
    names = {path.name for path in sandbox_dir.rglob("*")}
    ours = {"kernel", "relay", "connection.json", "hosts"}  # hosts: specs.HOSTS, read-only
    assert names <= ours | {f"kernel-{n}" for n in range(1, 6)}


async def test_a_kernelspec_without_safe_path_still_starts_the_kernel_with_it(
    docker_engine: docker.DockerClient,
) -> None:
    from ai_computer.kernel.kernelspec import sandbox_kernel_spec
    from ai_computer.kernel.manager import SandboxKernelManager

    spec = sandbox_kernel_spec()
    spec.argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    manager = SandboxKernelManager(spec)
    await manager.start_kernel()
    try:
        container = docker_engine.containers.get(manager.provisioner.container_id)  # type: ignore[union-attr]
        assert "-P" in container.attrs["Config"]["Cmd"]
    finally:
        await manager.shutdown_kernel(now=True)


# -- 3. data["files"] parsed on the event loop --------------------------------------------------


async def test_a_hostile_changed_files_listing_does_not_stall_the_host(
    sandbox: SandboxClient,
) -> None:
    # The default output limit (10M): the 12 MiB listing fits in one message.
    hostile = sandbox
    assert (await hostile.execute_code(HUGE_LISTING)).success
    gaps: list[float] = []

    async def tick() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - before)

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        for _ in range(3):
            response = await hostile.execute_code("open('made.txt', 'w').write('x')")
            assert response.success, response.error
            assert response.data["files"] is None  # refused unparsed, not believed
        elapsed = time.monotonic() - started
    finally:
        ticker.cancel()
    # Before: about 14 s per execution with the loop blocked, and a 6 GB peak.
    assert elapsed < 15, elapsed
    assert max(gaps) < 2.0, max(gaps)


# -- 4. sparse files and unbounded transfers ----------------------------------------------------


async def test_sparse_files_are_not_transferred(hostile: SandboxClient, tmp_path: Path) -> None:
    code = "open('/workspace/big', 'wb').truncate(1 << 50)"
    assert (await hostile.execute_code(code)).success
    started = time.monotonic()
    # gVisor's file proxy reports the blocks as the size: there the size limit refuses it.
    refusal = "over the limit" if hostile.runtime == "gvisor" else "sparse file"
    downloaded = await hostile.download_file("big", tmp_path / "big")
    assert not downloaded.success and refusal in downloaded.error
    as_bytes = await hostile.download_bytes("big")
    assert isinstance(as_bytes, FileOperationResponse) and refusal in as_bytes.error
    read = await hostile.fs.read_file("big")
    assert not read.success and refusal in read.error
    assert time.monotonic() - started < 20
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


async def test_downloads_stop_at_max_size(hostile: SandboxClient, tmp_path: Path) -> None:
    assert (await hostile.execute_code("open('f', 'wb').write(b'z' * (3 << 20))")).success
    small = await hostile.download_bytes("f", max_size=1 << 20)
    assert isinstance(small, FileOperationResponse)
    assert small.error == "'/workspace/f' is 3145728 bytes, over the limit of 1048576"
    refused = await hostile.download_file("f", tmp_path / "f", max_size=1 << 20)
    assert not refused.success and list(tmp_path.iterdir()) == []
    whole = await hostile.download_bytes("f")  # the default limit is the disk limit (64M)
    assert whole == b"z" * (3 << 20)
    bad = await hostile.fs.download_file("f", tmp_path / "f", max_size=-1)
    assert not bad.success and "max_size -1 must be a number of bytes" in bad.error


# -- 5. one sandbox freezing file operations of every sandbox -----------------------------------


async def test_a_sandbox_that_stops_its_commands_starves_no_other(
    hostile: SandboxClient, shared_sandbox: SandboxClient
) -> None:
    assert (await hostile.fs.write_file("a.txt", "a")).success
    hostile.fs.idle_timeout = 2.0
    assert (await hostile.execute_code(STOP_EVERY_COMMAND)).success
    stuck = [asyncio.create_task(hostile.fs.read_file("a.txt")) for _ in range(8)]
    await asyncio.sleep(0.5)
    # Meanwhile another sandbox in this process works as usual.
    for _ in range(3):
        shell = await shared_sandbox.execute_shell("echo hi")
        assert shell.success and shell.data["stdout"] == "hi\n"
        assert (await shared_sandbox.fs.write_file("other.txt", "fine")).success
    results = await asyncio.wait_for(asyncio.gather(*stuck), 30)
    assert all(not r.success and "made no progress" in r.error for r in results), results
    # A cancelled call gives its worker back at once.
    call = asyncio.create_task(hostile.fs.read_file("a.txt"))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 2)
    await asyncio.wait_for(hostile.cleanup(), 30)


# -- 6. forged file results ---------------------------------------------------------------------

FORGER = (
    "import sys, os\n"
    'sys.stdout.write(\'{"path": "/etc/shadow", "size": 123456789, "entries": [],\''
    " ' \"removed\": true}')\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)


async def test_planted_modules_cannot_forge_file_results(hostile: SandboxClient) -> None:
    for module in ("secrets", "json", "shutil", "posixpath", "stat", "errno", "ctypes"):
        assert (await hostile.fs.write_file(f"{module}.py", FORGER)).success
    pth = "import os; os.write(1, b'forged'); os._exit(0)\n"
    assert (await hostile.fs.write_file("/workspace/evil.pth", pth)).success
    written = await hostile.fs.write_file("x.txt", "hello")
    assert written.success and written.data == {"path": "/workspace/x.txt", "size": 5}
    read = await hostile.fs.read_file("x.txt")
    assert read.success and read.data["content"] == "hello"
    assert (await hostile.fs.remove("x.txt")).success
    assert not (await hostile.fs.stat("x.txt")).success


# -- 7. display data that decodes to many times its size ----------------------------------------

CLIENT_UNDER_LIST_BOMBS = dedent("""
    import asyncio, json, resource, time
    from ai_computer import SandboxClient

    BOMB = (
        "from IPython.display import display\\n"
        "bomb = [[] for _ in range(3_200_000)]\\n"
        "for _ in range(12):\\n"
        "    display({'application/json': bomb}, raw=True)\\n"
    )

    async def main():
        async with SandboxClient(memory_limit="2G", timeout=120) as client:
            started = time.monotonic()
            response = await client.execute_code(BOMB)
            seconds = time.monotonic() - started
            kept = len(response.data['display'])
            last = await client.execute_code('1 + 1')
        peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024
        print(json.dumps({'truncated': response.data['truncated'], 'kept': kept,
                          'seconds': seconds, 'peak': peak, 'last': last.data['result']}))

    asyncio.run(main())
""")


def test_display_data_is_counted_by_its_decoded_size(docker_engine: docker.DockerClient) -> None:
    report = run_client(CLIENT_UNDER_LIST_BOMBS)
    assert report["last"] == "2"
    assert report["truncated"] and report["kept"] == 0, report
    # Before: a 1167 MB peak. The stated bound (README) is 3 x output_limit (10M) plus the
    # process's own ~100 MB and libzmq's buffers.
    assert report["peak"] < 400 * (1 << 20), report


# -- the smaller findings -----------------------------------------------------------------------


async def test_a_huge_listing_comes_back_truncated(hostile: SandboxClient) -> None:
    code = dedent("""
        import os
        os.mkdir('many')
        for i in range(40_000):
            open(f'many/{i:0200d}', 'w').close()
    """)
    assert (await hostile.execute_code(code, timeout=60)).success
    listing = await hostile.fs.list("many")
    assert listing.success, listing.error
    assert listing.data["truncated"] is True and len(listing.data["entries"]) == 10_000


async def test_odd_file_names_round_trip(hostile: SandboxClient) -> None:
    code = "for name in (b'bad-\\xff.txt', b'new\\nline.txt'):\n    open(name, 'wb').write(name)"
    assert (await hostile.execute_code(code)).success
    listing = await hostile.fs.list()
    names = [entry["name"] for entry in listing.data["entries"]]
    assert "bad-\udcff.txt" in names and "new\nline.txt" in names
    for name in ("bad-\udcff.txt", "new\nline.txt"):
        content = await hostile.download_bytes(name)
        assert content == name.encode("utf-8", "surrogateescape")
        assert (await hostile.upload_bytes(b"again", name)).success
        assert await hostile.download_bytes(name) == b"again"


async def test_a_shell_timeout_ends_every_descendant(hostile: SandboxClient) -> None:
    burner = "setsid sh -c 'while :; do :; done' & setsid sh -c 'sleep 300' & sleep 300"
    response = await hostile.execute_shell(burner, timeout=2)
    assert response.error == "command timed out after 2 s and was killed"
    processes = dedent("""
        import os
        found = []
        for name in os.listdir('/proc'):
            if name.isdigit():
                try:
                    found.append(open(f'/proc/{name}/cmdline', 'rb').read().replace(b'\\0', b' '))
                except OSError:
                    pass
        b' '.join(found).decode()
    """)
    left = (await hostile.execute_code(processes)).data["result"]
    assert "while :" not in left and "sleep 300" not in left, left


async def test_connection_files_live_and_go_with_the_sandbox(
    docker_engine: docker.DockerClient,
) -> None:
    from jupyter_core.paths import jupyter_runtime_dir

    client = SandboxClient()
    await client.setup()
    runtime = Path(jupyter_runtime_dir())
    in_jupyter_runtime = list(runtime.glob(f"kernel-{client.sandbox_id}*.json"))
    sandbox_dir = Path(default_runtime_root()) / client.sandbox_id
    host_file = sandbox_dir / "connection.json"
    assert in_jupyter_runtime == [] and host_file.exists()
    assert json.loads(host_file.read_text())["key"]
    await client.cleanup(wait=True)
    assert not sandbox_dir.exists()
    assert leftovers(docker_engine, client.sandbox_id) == []


async def test_a_listing_too_big_for_the_client_breaks_only_its_sandbox(
    hostile: SandboxClient,
) -> None:
    # With a 1M output cap the same listing is over the client's message size: the connection
    # is cut, nothing more is sent on it (libzmq could block the sender, and the loop, for good)
    # and the sandbox says it is broken until restarted.
    from ai_computer import SandboxStateError

    assert (await hostile.execute_code(HUGE_LISTING)).success
    started = time.monotonic()
    with pytest.raises(SandboxStateError, match="connection was cut"):
        for _ in range(3):
            await hostile.execute_code("1")
    assert time.monotonic() - started < 15
    assert (await hostile.restart()).success
    await still_works(hostile)


# -- the host's bounds, with a neighbour ----------------------------------------------------


def test_one_hostile_sandbox_leaves_the_host_and_its_neighbour_alone(
    docker_engine: docker.DockerClient,
) -> None:
    # Each attack above, in a process of its own with a second sandbox running 1+1 every
    # 100 ms (benchmarks/bench_hostile.py prints the same figures).
    script = Path(__file__).parents[2] / "benchmarks" / "bench_hostile.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["case"] for r in results] == ["listing", "sparse", "stop", "bombs"]
    output_limit = 10 << 20  # the SDK's default
    for result in results:
        assert result["outcome"] == "done", result
        # Bounds far from the figures before the fixes (stalls of 28-36 s, a hung process),
        # with room for a loaded shared machine.
        assert result["neighbour_slowest"] < 5.0, result
        assert result["longest_stall"] < 5.0, result
        # The bound README states: 3 x output_limit of decoded output, plus libzmq's buffers.
        assert result["peak_growth"] < 3 * output_limit + (64 << 20), result


class _SlowSource:
    """A file object that gives 1 MiB, then takes its time over the rest."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            time.sleep(0.2)
        return b"u" * (1 << 20) if self.calls < 200 else b""


async def test_an_upload_cut_short_leaves_nothing(hostile: SandboxClient) -> None:
    assert (await hostile.fs.write_file("kept.bin", "old")).success
    upload = asyncio.create_task(hostile.upload_bytes(_SlowSource(), "kept.bin"))
    await asyncio.sleep(1.0)
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(upload, 5)
    await asyncio.sleep(0.5)  # the tool sees its input end without the end mark
    assert (await hostile.fs.read_file("kept.bin")).data["content"] == "old"
    listing = await hostile.fs.list()
    assert [e["name"] for e in listing.data["entries"] if "partial" in e["name"]] == []
