"""The ``ai-computer`` command line.

Commands come in groups, one subparser each, and every command names its handler::

    ai-computer image build [--base auto|debian|python-slim] [--force]
    ai-computer image tag
    ai-computer ps [backend]
    ai-computer gc [--dry-run] [backend]
    ai-computer serve [--host H] [--port P] [--token-file F] [--max-sandboxes N] [--per-token N]
                      [--idle-timeout S] [--prestart N] [limits] [backend]

where ``backend`` is ``--backend docker|swarm`` and, for a swarm, ``--manager DOCKER_HOST``,
``--node-docker-host TEMPLATE`` and ``--registry HOST:PORT``.
    ai-computer mcp [limits]
    ai-computer kernelspec install [--sys-prefix | --user | --prefix P] [--name N]
                                   [--display-name D] [--memory-limit M] [--cpu-limit C]
                                   [--notebook-dir copy|read-only|off]
    ai-computer kernelspec list
    ai-computer run-notebook IN.ipynb [-o OUT.ipynb] [--memory-limit M] [--cpu-limit C]
                             [--timeout SECONDS] [--notebook-dir copy|read-only|off]

To add a group, write an ``_add_<group>_commands(commands)`` function that registers its
subparsers with ``set_defaults(handler=...)`` and list it in ``_COMMAND_GROUPS``.
A handler takes the parsed arguments and returns the exit status. A
:class:`~ai_computer.errors.SandboxError` becomes one line on stderr and status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ai_computer import limits
from ai_computer.backends import BACKEND_VARIABLE, default_backend_name
from ai_computer.backends.docker import image
from ai_computer.backends.image import default_image_tag
from ai_computer.errors import SandboxError

_PROGRAM = "ai-computer"

if TYPE_CHECKING:
    from typing import TypeAlias

    _Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_image_commands(commands: _Commands) -> None:
    group = commands.add_parser("image", help="build or name the sandbox image")
    image_commands = group.add_subparsers(title="image commands", required=True, metavar="COMMAND")

    build = image_commands.add_parser(
        "build",
        help="build the sandbox image unless it is up to date",
        description="Build the sandbox image in the local Docker engine. Nothing inside the "
        "build needs the network: wheels are downloaded on the host first.",
    )
    build.add_argument(
        "--base",
        choices=image.BASE_CHOICES,
        default="auto",
        help=f"base image: {image.PYTHON_SLIM_BASE} ('python-slim'), a Debian root file "
        "system made with mmdebstrap ('debian'), or the first of these that works "
        "('auto', the default)",
    )
    build.add_argument(
        "--force", action="store_true", help="build even if the image exists already"
    )
    build.set_defaults(handler=_image_build)

    tag = image_commands.add_parser("tag", help="print the tag of the sandbox image")
    tag.set_defaults(handler=_image_tag)


def _image_build(arguments: argparse.Namespace) -> int:
    progress = functools.partial(print, flush=True)
    image.build_image(base=arguments.base, force=arguments.force, progress=progress)
    return 0


def _image_tag(arguments: argparse.Namespace) -> int:
    print(default_image_tag())
    return 0


def _limit_argument(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type that refuses a bad limit at parse time, with the allowed range."""

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return value

    return check


def _timeout_argument(value: str) -> float | None:
    if value.lower() == "none":
        return None
    try:
        return limits.parse_timeout(float(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"timeout {value!r} must be a positive number of seconds or 'none'"
        ) from exc


def _add_limit_arguments(parser: argparse.ArgumentParser, *, defaults: str) -> None:
    parser.add_argument(
        "--memory-limit",
        type=_limit_argument(limits.parse_memory_limit),
        help=f"memory limit, e.g. 1G (128M to 2G; {defaults} 512M)",
    )
    parser.add_argument(
        "--cpu-limit",
        type=_limit_argument(limits.parse_cpu_limit),
        help=f"CPU limit in cores, fractions allowed (0.1 to 4; {defaults} 1)",
    )
    parser.add_argument("--image", help="sandbox image (default: the one `image build` makes)")
    parser.add_argument(
        "--runtime",
        choices=limits.RUNTIMES,
        default="runc",
        help="where the kernel runs: runc (default) or gvisor (gVisor's user-space kernel; "
        "`bash setup.sh setup --gvisor` installs and registers it)",
    )


def _add_notebook_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notebook-dir",
        choices=("copy", "read-only", "off"),
        default="off",
        help="the notebook's folder in the sandbox: 'copy' copies it into /workspace at start "
        "(within the disk limit), 'read-only' mounts it at /workspace/notebook; either way the "
        "sandboxed code can read everything in it (default 'off': nothing of the host)",
    )


def _add_kernelspec_commands(commands: _Commands) -> None:
    group = commands.add_parser("kernelspec", help="install the sandbox as a Jupyter kernel")
    kernelspec_commands = group.add_subparsers(
        title="kernelspec commands", required=True, metavar="COMMAND"
    )

    install = kernelspec_commands.add_parser(
        "install",
        help="install the 'AI Computer Sandbox' kernelspec, or a variant with other limits",
        description="Install the 'AI Computer Sandbox' kernelspec for JupyterLab, nbclient and "
        "`jupyter execute`. With other limits it installs a variant under its own name, e.g. "
        "'ai-computer-sandbox-2g-4cpu' shown as 'AI Computer Sandbox (2 GB, 4 CPUs)'. "
        "An existing kernelspec of the same name is replaced.",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help="into this Python environment, sys.prefix (the default: Jupyter loads the "
        "sandbox's provisioner from the environment it runs in)",
    )
    where.add_argument("--user", action="store_true", help="into your user's Jupyter directory")
    where.add_argument("--prefix", metavar="PREFIX", help="into PREFIX/share/jupyter/kernels")
    install.add_argument("--name", help="kernel name (default: derived from the limits)")
    install.add_argument("--display-name", help="name shown in the launcher (default: derived)")
    _add_limit_arguments(install, defaults="the kernelspec's default")
    install.add_argument(
        "--prestart",
        type=_limit_argument(limits.parse_prestart),
        help="spare sandboxes a Jupyter server keeps started, so a new notebook's kernel "
        "takes one at once (0 to 8; default 0). Each uses its memory while idle",
    )
    _add_notebook_dir_argument(install)
    install.set_defaults(handler=_kernelspec_install)

    listing = kernelspec_commands.add_parser(
        "list", help="list the installed sandbox kernelspecs and their limits"
    )
    listing.set_defaults(handler=_kernelspec_list)


def _kernelspec_install(arguments: argparse.Namespace) -> int:
    from ai_computer.kernel import (
        kernelspec,  # jupyter_client: imported only by commands that use it
    )

    try:
        installed = kernelspec.install(
            user=arguments.user,
            prefix=arguments.prefix,
            name=arguments.name,
            display_name=arguments.display_name,
            memory_limit=arguments.memory_limit,
            cpu_limit=arguments.cpu_limit,
            image=arguments.image,
            prestart=arguments.prestart,
            runtime=arguments.runtime,
            notebook_dir=arguments.notebook_dir,
        )
    except ValueError as exc:  # e.g. a kernel name Jupyter does not allow
        print(f"{_PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    print(f"installed kernelspec {installed.name!r} ({installed.display_name}) in {installed.path}")
    if not installed.on_jupyter_path:
        share = os.path.dirname(os.path.dirname(installed.path))
        print(
            f"note: Jupyter does not look in {share} by default: set JUPYTER_PATH={share}",
            file=sys.stderr,
        )
    return 0


def _kernelspec_list(arguments: argparse.Namespace) -> int:
    from ai_computer.kernel import kernelspec

    for name, spec in kernelspec.installed_sandbox_kernelspecs().items():
        config = spec.metadata["kernel_provisioner"].get("config", {})
        memory = limits.format_size(
            limits.parse_memory_limit(config.get("memory_limit", limits.DEFAULT_MEMORY_LIMIT))
        )
        cpus = limits.parse_cpu_limit(config.get("cpu_limit", limits.DEFAULT_CPU_LIMIT))
        print(f"{name}\t{spec.display_name}\tmemory {memory}, CPUs {cpus:g}")
    return 0


def _add_notebook_commands(commands: _Commands) -> None:
    run = commands.add_parser(
        "run-notebook",
        help="run a notebook in a fresh sandbox",
        description="Run every code cell of a notebook in a new sandbox (removed afterwards), "
        "stopping at the first failing cell: it is shown, and the exit status is 1.",
    )
    run.add_argument("notebook", metavar="IN.ipynb", help="the notebook to run")
    run.add_argument(
        "-o", "--output", metavar="OUT.ipynb", help="write the notebook with its outputs here"
    )
    _add_limit_arguments(run, defaults="default")
    run.add_argument(
        "--timeout",
        type=_timeout_argument,
        default=limits.DEFAULT_TIMEOUT,
        help=f"time limit of each cell in seconds, or 'none' (default {limits.DEFAULT_TIMEOUT:g})",
    )
    _add_notebook_dir_argument(run)
    run.set_defaults(handler=_run_notebook)


def _run_notebook(arguments: argparse.Namespace) -> int:
    from ai_computer.jupyter import notebook  # nbclient: imported only by the command that uses it

    path = arguments.notebook
    try:
        cells = notebook.read_notebook(path)
    except (OSError, ValueError) as exc:  # nbformat's read errors are ValueErrors
        print(f"{_PROGRAM}: error: cannot read notebook {path}: {exc}", file=sys.stderr)
        return 1
    run = asyncio.run(
        notebook.run_notebook(
            cells,
            memory_limit=arguments.memory_limit or limits.DEFAULT_MEMORY_LIMIT,
            cpu_limit=float(arguments.cpu_limit or limits.DEFAULT_CPU_LIMIT),
            timeout=arguments.timeout,
            image=arguments.image,
            runtime=arguments.runtime,
            notebook_dir=arguments.notebook_dir,
            cwd=os.path.dirname(os.path.abspath(path)),
        )
    )
    if arguments.output:  # also when a cell failed: its output shows why
        notebook.write_notebook(run.notebook, arguments.output)
    if run.success:
        wrote = f"; wrote {arguments.output}" if arguments.output else ""
        print(f"{path}: {run.cells_run} code cells ran in {run.duration:.1f} s{wrote}")
        return 0
    if run.failed_cell is not None:
        number = run.failed_cell + 1
        source = run.notebook.cells[run.failed_cell].source
        print(f"--- cell {number} ---\n{source}\n---", file=sys.stderr)
        if run.traceback:
            print(run.traceback, file=sys.stderr)
        print(f"{_PROGRAM}: error: {path}: cell {number} failed: {run.error}", file=sys.stderr)
    else:
        print(f"{_PROGRAM}: error: {path}: {run.error}", file=sys.stderr)
    return 1


def _add_sandbox_commands(commands: _Commands) -> None:
    ps = commands.add_parser(
        "ps",
        help="list the sandboxes in the Docker engine, with their limits, age and owner",
    )
    _add_backend_arguments(ps)
    ps.set_defaults(handler=_sandbox_ps)
    gc = commands.add_parser(
        "gc",
        help="remove sandboxes whose owning process is gone, and orphaned runtime directories",
        description="Remove the containers, volumes and runtime directories of sandboxes whose "
        "owning process has exited (a crash, kill -9). Sandboxes of live processes, and of "
        "processes this host cannot see, are never touched. The SDK also does this, in the "
        "background, when a process starts its first sandbox.",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    _add_backend_arguments(gc)
    gc.set_defaults(handler=_sandbox_gc)


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("docker", "swarm"),
        default=None,
        help="where sandboxes run: 'docker' (the local engine, the default) or 'swarm' (a "
        "Docker Swarm: see the README's swarm section)",
    )
    parser.add_argument(
        "--manager",
        metavar="DOCKER_HOST",
        help="swarm: the Docker host URL of a manager (default: DOCKER_HOST's engine)",
    )
    parser.add_argument(
        "--node-docker-host",
        metavar="TEMPLATE",
        help="swarm: each node's engine, with {hostname}, {addr} or {id} filled in (default "
        "unix:///run/ai-computer/nodes/{hostname}.sock; only unix:// for now, e.g. sockets "
        "forwarded with ssh -L)",
    )
    parser.add_argument(
        "--registry",
        metavar="HOST:PORT",
        help="swarm: the registry the nodes pull the sandbox image from (an image named "
        "without a registry is looked up there)",
    )


def _use_backend(arguments: argparse.Namespace) -> str:
    """Make the backend the arguments name this process's (and its children's); its name."""
    name = arguments.backend or default_backend_name()
    # An explicit --backend wins over an exported AI_COMPUTER_BACKEND, here and in children.
    os.environ[BACKEND_VARIABLE] = name
    swarm_only = [
        option
        for option in ("manager", "node_docker_host", "registry")
        if getattr(arguments, option) is not None
    ]
    if name != "swarm":
        if swarm_only:
            flags = ", ".join("--" + option.replace("_", "-") for option in swarm_only)
            raise SandboxError(f"{flags} go with --backend swarm")
        return name
    from ai_computer.backends.swarm.settings import SwarmSettings

    settings = SwarmSettings.from_environment()
    settings = SwarmSettings(
        manager=arguments.manager or settings.manager,
        node_engine=arguments.node_docker_host or settings.node_engine,
        registry=arguments.registry or settings.registry,
        relay_ports=settings.relay_ports,
    )
    os.environ.update(settings.to_environment())
    return name


def _format_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _sandbox_ps(arguments: argparse.Namespace) -> int:
    _use_backend(arguments)
    from ai_computer.backends import backend
    from ai_computer.backends.labels import (
        CPU_LIMIT_LABEL,
        DISK_LIMIT_LABEL,
        MEMORY_LIMIT_LABEL,
        RUNTIME_LABEL,
    )

    rows: list[tuple[str, ...]] = [
        ("SANDBOX", "STATUS", "RUNTIME", "MEMORY", "CPUS", "DISK", "AGE", "OWNER")
    ]
    found = backend().list_sandboxes()
    on_nodes = any(info.node for info in found)
    if on_nodes:
        rows = [(*rows[0], "NODE")]
    for info in found:
        labels = info.labels
        sizes = [labels.get(label, "") for label in (MEMORY_LIMIT_LABEL, DISK_LIMIT_LABEL)]
        memory, disk = (limits.format_size(int(v)) if v.isdigit() else "?" for v in sizes)
        alive = {True: "running", False: "gone", None: "elsewhere"}[info.owner_alive]
        owner = f"pid {info.owner_pid} ({alive})" if info.owner_pid else "?"
        cpus = labels.get(CPU_LIMIT_LABEL, "?")
        runtime = labels.get(RUNTIME_LABEL, "runc")  # sandboxes from before the label: runc
        age = _format_age(info.age)
        row = (info.sandbox_id, info.status, runtime, memory, cpus, disk, age, owner)
        rows.append((*row, info.node or "?") if on_nodes else row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for shown in rows:
        cells = (cell.ljust(width) for cell, width in zip(shown, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _sandbox_gc(arguments: argparse.Namespace) -> int:
    import logging

    from ai_computer.backends import backend

    logging.basicConfig(format="ai-computer gc: %(message)s")  # what could not be removed
    _use_backend(arguments)
    removed = backend().collect_garbage(dry_run=arguments.dry_run)
    verb = "would remove" if arguments.dry_run else "removed"
    for sandbox_id in removed:
        print(f"{verb} {sandbox_id}")
    print(f"{verb} {len(removed)} orphaned sandbox(es)")
    return 0


def _add_service_commands(commands: _Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service the original AI Computer client speaks (and MCP at /mcp)",
        description="Serve sandboxes over HTTP: the API of the original AI Computer service, "
        "for its client, our SDK's remote mode (SandboxClient(base_url=..., token=...)) and "
        "MCP at /mcp. Needs the server extra: pip install 'ai-computer[server]'. Every route "
        "but /dev/token and /healthz needs a bearer token from the token file. SIGTERM or "
        "Ctrl-C removes every sandbox it made.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument(
        "--token-file",
        default=None,
        help="bearer tokens, one per line, mode 0600; created with a new token (printed "
        "once) when missing (default: ~/.config/ai-computer/tokens)",
    )
    serve.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="accept this bearer token (repeatable; at least 16 characters). Other users of "
        "this machine can read command lines: prefer --token-file. With --token and no "
        "--token-file, no token file is read or made",
    )
    serve.add_argument(
        "--give-tokens-to-anyone",
        action="store_true",
        help="let POST /dev/token hand a new token to anyone who can reach the server "
        "(for the original client's token=None; never on a shared network)",
    )
    serve.add_argument(
        "--max-sandboxes", type=_count_argument, default=16, help="sandboxes in all (16)"
    )
    serve.add_argument(
        "--per-token", type=_count_argument, default=4, help="sandboxes per token (4)"
    )
    serve.add_argument(
        "--idle-timeout",
        type=_timeout_argument,
        default=600.0,
        help="remove a sandbox unused for this many seconds, or 'none' (default 600)",
    )
    serve.add_argument(
        "--prestart",
        type=_prestart_argument,
        default=0,
        help=f"sandboxes kept started ahead, 0 to {limits.MAX_PRESTART} (default 0)",
    )
    _add_sandbox_options(serve)
    _add_backend_arguments(serve)
    serve.set_defaults(handler=_serve)

    mcp = commands.add_parser(
        "mcp",
        help="an MCP server on stdin/stdout: one sandbox for the session",
        description="Run the Model Context Protocol server on stdio (for agent hosts that "
        "start tools as programs). Its tools run in one sandbox, created on first use and "
        "removed when the session ends. Needs the server extra.",
    )
    _add_sandbox_options(mcp)
    mcp.set_defaults(handler=_mcp)


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    _add_limit_arguments(parser, defaults="default")
    parser.add_argument(
        "--disk-limit",
        type=_limit_argument(limits.parse_disk_limit),
        help="size of each sandbox's /workspace (default 256M)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout_argument,
        default=limits.DEFAULT_TIMEOUT,
        help=f"time limit of each execution in seconds, or 'none' "
        f"(default {limits.DEFAULT_TIMEOUT:g})",
    )


def _prestart_argument(value: str) -> int:
    try:
        return limits.parse_prestart(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _count_argument(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 10_000:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number from 1 to 10000")
    return count


def _sandbox_options(arguments: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {"timeout": arguments.timeout}
    for name in ("memory_limit", "cpu_limit", "disk_limit", "image", "runtime"):
        if getattr(arguments, name) is not None:
            options[name] = getattr(arguments, name)
    if "cpu_limit" in options:
        options["cpu_limit"] = float(str(options["cpu_limit"]))
    return options


def _serve(arguments: argparse.Namespace) -> int:
    from ai_computer.service import server  # FastAPI and uvicorn: the server extra

    if _use_backend(arguments) == "swarm":
        _prepare_swarm(arguments.image or default_image_tag())

    return server.serve(
        host=arguments.host,
        port=arguments.port,
        token_file=arguments.token_file,
        extra_tokens=arguments.token,
        give_tokens_to_anyone=arguments.give_tokens_to_anyone,
        max_sandboxes=arguments.max_sandboxes,
        per_token=arguments.per_token,
        idle_timeout=arguments.idle_timeout,
        prestart=arguments.prestart,
        options=_sandbox_options(arguments),
    )


def _prepare_swarm(image: str) -> None:
    """Before serving on a swarm: refuse nodes that would drop a guarantee (their daemon's
    settings, the image: ``backends/swarm/checks.py``), then remove what an earlier run of
    this service left (sandboxes whose owner process is gone)."""
    from ai_computer.backends import backend

    swarm = backend("swarm")
    swarm.check(image)  # type: ignore[attr-defined]
    removed = swarm.collect_garbage()
    if removed:
        print(f"{_PROGRAM} serve: removed {len(removed)} orphaned sandbox(es)", flush=True)


def _mcp(arguments: argparse.Namespace) -> int:
    from ai_computer.service import server

    return server.serve_mcp_stdio(_sandbox_options(arguments))


_COMMAND_GROUPS: tuple[Callable[[_Commands], None], ...] = (
    _add_image_commands,
    _add_kernelspec_commands,
    _add_notebook_commands,
    _add_sandbox_commands,
    _add_service_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the whole command line."""
    parser = argparse.ArgumentParser(
        prog=_PROGRAM,
        description="A self-hosted sandbox for untrusted Python code.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add_commands in _COMMAND_GROUPS:
        add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    arguments = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    try:
        return handler(arguments)
    except SandboxError as exc:
        print(f"{_PROGRAM}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROGRAM}: interrupted", file=sys.stderr)
        return 130
