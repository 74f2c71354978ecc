"""Benchmark: our sandbox beside a stock local ipykernel and llm-sandbox, in one run, with a chart.

    .venv/bin/python benchmarks/compare.py [--repeat 10] [--peer-repeat 5] [--executes 100]
        [--sustain 30] [--no-peers] [--quick] [--out test-artifacts/compare.json]
        [--chart docs/compare.png]

For each subject it measures p50 and p90 of: cold create -> first ``print(1+1)`` result (from
nothing to the result), set-up, ``1+1`` executed, restart, clean-up, a pooled sandbox's
first result, and sandboxes per minute with 4 creators looping create -> ``print(1+1)`` ->
clean-up. The subjects:

- ours: ``async with SandboxClient() as client: await client.execute_code("print(1+1)")``;
  ``setup()``, ``execute_code``, ``restart()``, ``cleanup()``; ``SandboxPool(size=1)``.
- local: a stock ipykernel through jupyter_client: ``start_kernel`` + ``wait_for_ready`` is
  set-up, ``execute_interactive`` a round trip, ``restart_kernel`` + ``wait_for_ready`` a
  restart, ``shutdown_kernel`` the clean-up. It has no pool.
- llm-sandbox (Docker backend, in a venv of its own that this script makes; ``--no-peers``
  skips it): session open, ``run``, close; same image, no network, same memory limit. It has
  no restart, and its pool is not measured.

The subjects take turns in each round so that the machine's noise hits all of them; figures
are compared as ratios within the run. Writes a JSON file (with the machine's description)
and a PNG chart. Everything it started is removed at the end, and checked. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import venv
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
from _common import percentile, restart_local_kernel, start_local_kernel, timed
from jupyter_client.asynchronous.client import AsyncKernelClient

from ai_computer import SandboxClient, SandboxPool, __version__
from ai_computer.backends.image import default_image_tag
from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL

ROOT = Path(__file__).resolve().parent.parent
PEER_RUNNER = Path(__file__).resolve().parent / "peer_llm_sandbox.py"
LLM_SANDBOX = "llm-sandbox[docker]==0.3.46"
"""The peer's version, pinned so that runs compare."""
PEER_LABEL = "ai-computer-bench.peer"
"""Label on every llm-sandbox container this script makes; its value names the run."""


def peer_label() -> str:
    """``PEER_LABEL=<this run>``: this process's llm-sandbox containers, and no one else's."""
    return f"{PEER_LABEL}=compare-{os.getpid()}"


MEMORY_LIMIT = "512m"
"""Every subject's memory limit (ours by default; llm-sandbox given the same)."""
CREATORS = 4
"""Concurrent creators in the sandboxes-per-minute run."""
MOST_PER_CREATOR = 100
"""Most sandboxes one creator makes in that run, whatever the time left."""
REQUEST_SLACK = 180.0
"""Seconds the peer runner may take for a request beyond the work asked of it."""

OURS, LOCAL, LLM = "ours", "local", "llm-sandbox"
SUBJECTS = {
    OURS: "ai-computer",
    LOCAL: "local ipykernel",
    LLM: "llm-sandbox",
}
OPERATIONS = {
    "cold_first_result": "cold create -> first `print(1+1)` result",
    "setup": "`setup()` (local: start + ready; llm-sandbox: session open)",
    "execute": '`execute_code("1+1")` (local: a round trip; llm-sandbox: `run`)',
    "restart": "`restart()` (local: `restart_kernel` + ready)",
    "cleanup": "`cleanup()` (local: `shutdown_kernel`; llm-sandbox: close)",
    "pooled_first_result": "pooled: `acquire()` -> first `print(1+1)` result",
}
SHORT_NAMES = {
    "cold_first_result": "cold create -> first result",
    "setup": "setup",
    "execute": "execute 1+1",
    "restart": "restart",
    "cleanup": "cleanup",
    "pooled_first_result": "pooled -> first result",
}
NOT_OFFERED = {
    LOCAL: {"pooled_first_result": "jupyter_client has no pool"},
    LLM: {
        "restart": "llm-sandbox has no restart",
        "pooled_first_result": "llm-sandbox's pool is not measured",
    },
}
Figures = dict[str, list[float]]
"""Seconds per operation, for one subject."""


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    repeat: int
    peer_repeat: int
    executes: int
    sustain: float

    def executes_per_cycle(self) -> int:
        """``1+1`` executions in each cold cycle, so that ``repeat`` cycles make ``executes``."""
        return max(1, math.ceil(self.executes / self.repeat))


@dataclass
class Throughput:
    """Sandboxes completed by the concurrent creators, and the wall time they took."""

    creators: int
    completed: int
    seconds: float

    @property
    def per_minute(self) -> float:
        """Completed sandboxes per minute of wall time."""
        return self.completed / self.seconds * 60

    def as_json(self) -> dict[str, Any]:
        """The JSON form, with the per-minute rate."""
        return {
            "creators": self.creators,
            "completed": self.completed,
            "seconds": round(self.seconds, 3),
            "per_minute": round(self.per_minute, 1),
        }


@dataclass
class Result:
    """What was measured of one subject."""

    figures: Figures = field(default_factory=lambda: defaultdict(list))
    throughput: Throughput | None = None
    version: str = ""


def progress(message: str) -> None:
    """A progress line on stderr (stdout has the table only)."""
    print(f"[compare] {message}", file=sys.stderr, flush=True)


def expect_two(output: str, who: str) -> None:
    """Raise unless ``output`` is what ``print(1+1)`` prints."""
    if output != "2\n":
        raise RuntimeError(f"{who}: print(1+1) gave {output!r}, expected '2\\n'")


# -- ours ------------------------------------------------------------------------------------


async def our_execute(client: SandboxClient, code: str) -> str:
    """Run ``code`` in our sandbox; its stdout (raises when it failed)."""
    response = await client.execute_code(code)
    if not response.success or response.data is None:
        raise RuntimeError(f"ai-computer: execute_code({code!r}) failed: {response.error}")
    return str(response.data["output"])


async def our_cycle(figures: Figures, executes: int) -> None:
    """One sandbox from nothing: first result, ``executes`` times ``1+1``, a restart, cleanup."""
    started = time.perf_counter()
    async with SandboxClient() as client:  # setup() ... cleanup()
        ready = time.perf_counter()
        expect_two(await our_execute(client, "print(1+1)"), "ai-computer")
        figures["cold_first_result"].append(time.perf_counter() - started)
        figures["setup"].append(ready - started)
        for _ in range(executes):
            figures["execute"].append(await timed(partial(our_execute, client, "1+1")))
        figures["restart"].append(await timed(client.restart))
        closing = time.perf_counter()
    figures["cleanup"].append(time.perf_counter() - closing)


async def our_pooled(figures: Figures, repeat: int) -> None:
    """A sandbox from a pool with one idle, until its first result (the refill done first)."""
    async with SandboxPool(size=1) as pool:
        for _ in range(repeat):
            await pool.start()  # the replacement of the last one is idle again
            started = time.perf_counter()
            client = await pool.acquire()
            try:
                expect_two(await our_execute(client, "print(1+1)"), "ai-computer pool")
                figures["pooled_first_result"].append(time.perf_counter() - started)
            finally:
                await client.cleanup()


async def our_sandbox_once() -> None:
    """What one creator does per sandbox: create, first result, cleanup."""
    async with SandboxClient() as client:
        expect_two(await our_execute(client, "print(1+1)"), "ai-computer")


# -- a stock local ipykernel -------------------------------------------------------------------


async def local_execute(kc: AsyncKernelClient, code: str) -> str:
    """Run ``code`` in a local kernel; its stdout (raises when it failed)."""
    printed: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
            printed.append(message["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=30, output_hook=collect)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"local ipykernel: {code!r} ended {reply['content']['status']}")
    return "".join(printed)


async def local_cycle(figures: Figures, executes: int) -> None:
    """One local kernel from nothing: first result, ``1+1`` ``executes`` times, a restart, its
    shutdown (graceful, as Jupyter does)."""
    started = time.perf_counter()
    km, kc = await start_local_kernel()
    try:
        ready = time.perf_counter()
        expect_two(await local_execute(kc, "print(1+1)"), "local ipykernel")
        figures["cold_first_result"].append(time.perf_counter() - started)
        figures["setup"].append(ready - started)
        for _ in range(executes):
            figures["execute"].append(await timed(partial(local_execute, kc, "1+1")))
        figures["restart"].append(await timed(partial(restart_local_kernel, km, kc)))
    finally:
        closing = time.perf_counter()
        kc.stop_channels()
        await km.shutdown_kernel()
        figures["cleanup"].append(time.perf_counter() - closing)


async def local_kernel_once() -> None:
    """What one creator does per kernel: start, first result, shutdown."""
    km, kc = await start_local_kernel()
    try:
        expect_two(await local_execute(kc, "print(1+1)"), "local ipykernel")
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()


async def sustained(once: Callable[[], Awaitable[None]], seconds: float) -> Throughput:
    """``CREATORS`` concurrent loops of ``once`` for ``seconds`` (each at most
    ``MOST_PER_CREATOR`` times); a loop finishes the sandbox it is making when time is up."""
    deadline = time.perf_counter() + seconds

    async def creator() -> int:
        made = 0
        while made < MOST_PER_CREATOR and time.perf_counter() < deadline:
            await once()
            made += 1
        return made

    started = time.perf_counter()
    made = await asyncio.gather(*(creator() for _ in range(CREATORS)))
    return Throughput(CREATORS, sum(made), time.perf_counter() - started)


# -- llm-sandbox, in a venv and a process of its own ---------------------------------------------


def peers_python(folder: Path) -> Path:
    """The python of a venv with llm-sandbox (made once, then reused); raises when it cannot
    be installed."""
    python = folder / "bin" / "python"
    wanted = LLM_SANDBOX.rpartition("==")[2]
    query = "from importlib.metadata import version; print(version('llm-sandbox'))"
    check = [str(python), "-c", query]
    found = None
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, timeout=60)
    if found is None or found.stdout.strip() != wanted:
        progress(f"installing {LLM_SANDBOX} into {folder} (not into .venv)")
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        install = [str(python), "-m", "pip", "install", "-q", LLM_SANDBOX]
        subprocess.run(install, check=True, timeout=600, stdout=subprocess.DEVNULL)
    return python


class PeerRunner:
    """``peer_llm_sandbox.py`` running in the peers' venv: one JSON request and reply a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, python: Path, image: str) -> PeerRunner:
        """Start the runner; its containers will carry ``peer_label()``."""
        process = await asyncio.create_subprocess_exec(
            str(python), str(PEER_RUNNER), "--image", image, "--memory-limit", MEMORY_LIMIT,
            "--label", peer_label(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def request(self, work_seconds: float, **request: Any) -> dict[str, Any]:
        """Send one request and wait for its reply (at most ``work_seconds`` + slack)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), work_seconds + REQUEST_SLACK)
        if not line:
            raise RuntimeError(f"the llm-sandbox runner exited (status {self.process.returncode})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"llm-sandbox: {request['op']}: {reply['error']}")
        return reply

    async def cycle(self, figures: Figures, executes: int) -> None:
        """One session from nothing (see ``peer_llm_sandbox.Driver.cycle``)."""
        reply = await self.request(15 + executes, op="cycle", executes=executes)
        for name in ("cold_first_result", "setup", "cleanup"):
            figures[name].append(reply[name])
        figures["execute"] += reply["execute"]

    async def sustained(self, seconds: float) -> Throughput:
        """Sandboxes per minute with ``CREATORS`` threads in the runner."""
        reply = await self.request(
            seconds, op="throughput", creators=CREATORS, seconds=seconds, most=MOST_PER_CREATOR
        )
        return Throughput(CREATORS, reply["completed"], reply["seconds"])

    async def close(self) -> None:
        """End the runner: its input closed, then killed (by its pid) if it lingers."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# -- the run ---------------------------------------------------------------------------------


async def measure(settings: Settings, peer_python: Path | None) -> dict[str, Result]:
    """Every subject's figures: warm-up, interleaved cold cycles, the pool, then throughput."""
    results = {OURS: Result(version=__version__), LOCAL: Result(version=version("ipykernel"))}
    executes = settings.executes_per_cycle()
    runner = None
    if peer_python is not None:
        runner = await PeerRunner.start(peer_python, default_image_tag())
        results[LLM] = Result(version=(await runner.request(10, op="version"))["version"])
    try:
        cycles: dict[str, Callable[[Figures, int], Awaitable[None]]] = {
            OURS: our_cycle,
            LOCAL: local_cycle,
        }
        if runner is not None:
            cycles[LLM] = runner.cycle
        # Warm each path once (image layers, imports, the engine's caches): not counted.
        for cycle in cycles.values():
            await cycle(defaultdict(list), 2)
        for round_number in range(settings.repeat):
            names = list(cycles)
            turn = round_number % len(names)  # each subject goes first in turn
            for name in names[turn:] + names[:turn]:
                if name == LLM and round_number >= settings.peer_repeat:
                    continue
                progress(f"round {round_number + 1}/{settings.repeat}: {name}")
                await cycles[name](results[name].figures, executes)
        progress("pool")
        await our_pooled(results[OURS].figures, settings.repeat)
        progress(f"sandboxes per minute, {CREATORS} creators, {settings.sustain:g} s each")
        results[OURS].throughput = await sustained(our_sandbox_once, settings.sustain)
        results[LOCAL].throughput = await sustained(local_kernel_once, settings.sustain)
        if runner is not None:
            results[LLM].throughput = await runner.sustained(settings.sustain)
    finally:
        if runner is not None:
            await runner.close()
    return results


# -- what is left, and the machine -------------------------------------------------------------


@contextlib.contextmanager
def engine() -> Iterator[docker.DockerClient]:
    """A docker-py client of the local engine, closed afterwards."""
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


def remove_leftovers() -> list[str]:
    """Remove the containers and volumes this run left (ours by owner pid, llm-sandbox's by
    label: never another process's); what was found."""
    ours = {"label": [SANDBOX_LABEL, f"{OWNER_PID_LABEL}={os.getpid()}"]}
    found = []
    with engine() as client:
        containers = client.api.containers(all=True, filters=ours)
        containers += client.api.containers(all=True, filters={"label": peer_label()})
        for container in containers:
            found.append(f"container {container['Id'][:12]} ({container['Image']})")
            client.api.remove_container(container["Id"], force=True)
        for volume in client.api.volumes(filters=ours).get("Volumes") or []:
            found.append(f"volume {volume['Name']}")
            client.api.remove_volume(volume["Name"], force=True)
    return found


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.partition(":")[2].strip()
            break
    with engine() as client:
        docker_version = client.version()["Version"]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2, 1),
        "kernel": platform.release(),
        "docker": docker_version,
        "docker_host": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        "python": platform.python_version(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "git_commit": commit,
        "git_changed_files": [line[3:] for line in changed if line.strip()],
        "image": default_image_tag(),
    }


# -- the report ------------------------------------------------------------------------------


def summary(samples: list[float] | None) -> dict[str, Any] | None:
    """p50, p90 (ms) and the count of ``samples`` (seconds); None when not measured."""
    if not samples:
        return None
    return {
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p90_ms": round(percentile(samples, 0.9) * 1000, 2),
        "n": len(samples),
        "samples_ms": [round(sample * 1000, 2) for sample in samples],
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing."""
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 3)


def report(
    results: dict[str, Result], settings: Settings, about: dict[str, Any], peers_note: str
) -> dict[str, Any]:
    """The JSON document: machine, settings, each subject's figures, and the ratios."""
    subjects: dict[str, Any] = {}
    for name, result in results.items():
        subjects[name] = {
            "label": SUBJECTS[name],
            "version": result.version,
            "operations": {
                operation: summary(result.figures.get(operation)) for operation in OPERATIONS
            },
            "not_offered": NOT_OFFERED.get(name, {}),
            "throughput": result.throughput.as_json() if result.throughput else None,
        }
    ratios: dict[str, dict[str, float | None]] = {}
    for operation in [*OPERATIONS, "per_minute"]:
        ours = p50(subjects, OURS, operation)
        ratios[operation] = {
            f"{OURS}/{other}": ratio(ours, p50(subjects, other, operation))
            for other in (LOCAL, LLM)
        }
    return {
        "machine": about,
        "settings": {**settings.__dict__, "creators": CREATORS, "memory_limit": MEMORY_LIMIT},
        "peers": peers_note,
        "subjects": subjects,
        "ratios": ratios,
    }


def p50(subjects: dict[str, Any], name: str, operation: str) -> float | None:
    """A subject's p50 in ms (or its sandboxes per minute for ``per_minute``), if measured."""
    subject = subjects.get(name)
    if subject is None:
        return None
    if operation == "per_minute":
        return subject["throughput"]["per_minute"] if subject["throughput"] else None
    figures = subject["operations"][operation]
    return figures["p50_ms"] if figures else None


def milliseconds(value: float) -> str:
    """A time in ms, to a precision that suits its size."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(document: dict[str, Any]) -> str:
    """The figures as a Markdown table (times p50 / p90 in ms; ratios of the p50s)."""
    subjects = document["subjects"]
    names = [name for name in SUBJECTS if name in subjects]
    others = [name for name in (LOCAL, LLM) if name in subjects]
    header = [
        "",
        *(f"{SUBJECTS[name]} p50 / p90" for name in names),
        *(f"ours / {SUBJECTS[other]}" for other in others),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def ratios(operation: str) -> list[str]:
        values = [document["ratios"][operation][f"{OURS}/{other}"] for other in others]
        return ["n/a" if value is None else f"x{value:.2f}" for value in values]

    for operation, label in OPERATIONS.items():
        cells = [label]
        for name in names:
            figures = subjects[name]["operations"][operation]
            if figures:
                cells.append(
                    f"{milliseconds(figures['p50_ms'])} / {milliseconds(figures['p90_ms'])} ms"
                )
            else:
                cells.append("n/a")
        lines.append("| " + " | ".join([*cells, *ratios(operation)]) + " |")
    cells = [f"sandboxes per minute, {CREATORS} creators (higher is better)"]
    for name in names:
        throughput = subjects[name]["throughput"]
        cells.append(f"{throughput['per_minute']:.0f}" if throughput else "n/a")
    lines.append("| " + " | ".join([*cells, *ratios("per_minute")]) + " |")
    return "\n".join(lines)


def notes(document: dict[str, Any]) -> str:
    """What the n/a cells mean, and what was measured on what."""
    about = document["machine"]
    lines = [
        f"{about['date']}, {about['nproc']} vCPUs ({about['cpu']}), {about['memory_gib']} GiB, "
        f"Linux {about['kernel']}, Docker {about['docker']}, commit {about['git_commit']}"
        + (" (with local changes)" if about["git_changed_files"] else ""),
        "versions: "
        + ", ".join(f"{SUBJECTS[n]} {s['version']}" for n, s in document["subjects"].items()),
    ]
    for name, subject in document["subjects"].items():
        for operation, why in subject["not_offered"].items():
            lines.append(f"n/a: {SUBJECTS[name]} {SHORT_NAMES[operation]}: {why}")
    if document["peers"]:
        lines.append(f"llm-sandbox: {document['peers']}")
    return "\n".join(lines)


def chart(document: dict[str, Any], path: Path) -> None:
    """Grouped horizontal bars of p50 (log ms) with p90 whiskers per operation and subject,
    and sandboxes per minute beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subjects = document["subjects"]
    names = [name for name in SUBJECTS if name in subjects]
    colours = {OURS: "#2b6cb0", LOCAL: "#a0aec0", LLM: "#dd6b20"}
    operations = list(OPERATIONS)
    height = 0.8 / len(names)
    figure, (times, rates) = plt.subplots(
        1, 2, figsize=(12, 6.5), gridspec_kw={"width_ratios": [3, 1]}
    )
    for index, name in enumerate(names):
        for row, operation in enumerate(operations):
            y = row + (index - (len(names) - 1) / 2) * height
            figures = subjects[name]["operations"][operation]
            if figures is None:
                times.text(1.1, y, "n/a", va="center", fontsize=7, color=colours[name])
                continue
            low, high = figures["p50_ms"], figures["p90_ms"]
            times.barh(
                y, low, height, color=colours[name], label=SUBJECTS[name],
                xerr=[[0], [high - low]], capsize=2, error_kw={"elinewidth": 0.8},
            )  # fmt: skip
            times.text(high * 1.08, y, milliseconds(low), va="center", fontsize=7)
    handles, labels = times.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per subject
    figure.legend(unique.values(), unique.keys(), loc="lower center", ncol=len(names))
    times.set_xscale("log")
    times.set_xlim(1, times.get_xlim()[1] * 3)  # room for the labels right of the whiskers
    times.set_yticks(range(len(operations)), [SHORT_NAMES[op] for op in operations])
    times.set_ylim(len(operations) - 0.4, -0.6)  # the first operation on top
    times.set_xlabel("ms, log scale: bar p50, whisker p90 (lower is better)")
    times.grid(axis="x", which="both", alpha=0.25)
    for index, name in enumerate(names):
        throughput = subjects[name]["throughput"]
        value = throughput["per_minute"] if throughput else 0.0
        rates.barh(index, value, 0.6, color=colours[name])
        rates.text(value, index, f" {value:.0f}", va="center", fontsize=8)
    rates.set_yticks(range(len(names)), [SUBJECTS[name] for name in names])
    rates.invert_yaxis()
    rates.set_xlabel(f"sandboxes per minute, {CREATORS} creators\n(higher is better)")
    rates.margins(x=0.25)
    about = document["machine"]
    versions = ", ".join(f"{SUBJECTS[name]} {subjects[name]['version']}" for name in names)
    figure.suptitle(
        f"Sandbox lifecycle, one run: {versions}\n{about['date'][:10]}, {about['nproc']} vCPUs, "
        f"{about['memory_gib']} GiB, Linux {about['kernel']}, Docker {about['docker']}",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.05, 1, 1))  # the legend goes below
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def settings_from(arguments: argparse.Namespace) -> Settings:
    """The amounts to measure: the options given, else the defaults (smaller with --quick)."""
    quick = arguments.quick
    return Settings(
        repeat=arguments.repeat or (2 if quick else 10),
        peer_repeat=arguments.peer_repeat or (1 if quick else 5),
        executes=arguments.executes or (6 if quick else 100),
        sustain=arguments.sustain or (4.0 if quick else 30.0),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, help="cold cycles per subject (10; --quick 2)")
    parser.add_argument("--peer-repeat", type=int, help="llm-sandbox's cycles (5; --quick 1)")
    parser.add_argument("--executes", type=int, help="1+1 executions (100; --quick 6)")
    parser.add_argument("--sustain", type=float, help="seconds per throughput run (30; quick 4)")
    parser.add_argument("--no-peers", action="store_true", help="skip llm-sandbox")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "compare.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "compare.png")
    parser.add_argument("--peers-venv", type=Path, default=ROOT / "test-artifacts" / "peers-venv")
    arguments = parser.parse_args()
    settings = settings_from(arguments)
    about = machine()
    peer_python, peers_note = None, ""
    if arguments.no_peers:
        peers_note = "skipped (--no-peers)"
    else:
        try:
            peer_python = peers_python(arguments.peers_venv)
        except (OSError, subprocess.SubprocessError) as exc:
            peers_note = f"skipped: {LLM_SANDBOX} could not be installed ({exc})"
            progress(peers_note)
    try:
        results = asyncio.run(measure(settings, peer_python))
    finally:
        left = remove_leftovers()
    about["load_average_after"] = [round(load, 2) for load in os.getloadavg()]
    document = report(results, settings, about, peers_note)
    document["leftovers"] = left
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(document, indent=2) + "\n")
    chart(document, arguments.chart)
    print(table(document))
    print()
    print(notes(document))
    print(f"\nJSON: {arguments.out}\nchart: {arguments.chart}")
    if left:
        print(f"left behind and removed now: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
