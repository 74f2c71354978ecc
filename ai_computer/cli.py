"""The ``ai-computer`` command line.

Commands come in groups, one subparser each, and every command names its handler::

    ai-computer image build [--base auto|debian|python-slim] [--force]
    ai-computer image tag

To add a group, write an ``_add_<group>_commands(commands)`` function that registers its
subparsers with ``set_defaults(handler=...)`` and list it in ``_COMMAND_GROUPS``.
A handler takes the parsed arguments and returns the exit status. A
:class:`~ai_computer.errors.SandboxError` becomes one line on stderr and status 1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ai_computer import image
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
    print(image.default_image_tag())
    return 0


_COMMAND_GROUPS: tuple[Callable[[_Commands], None], ...] = (_add_image_commands,)


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
