"""Spare sandboxes started ahead of need, for Jupyter: ``DockerSandboxProvisioner.prestart``.

Each notebook opened in JupyterLab waits while its sandbox starts (a workspace, three containers
and a kernel: about half a second). With ``prestart = N`` in a kernelspec's provisioner config,
the first launch of that configuration in a process also starts N spare sandboxes; each later
launch takes a spare at once, and a replacement starts in the background.

A spare is a whole sandbox that no code has run in. It goes to one kernel only, for good; a spare
whose kernel died while idle is removed, never handed out. Spares left when the process exits are
removed then (or by ``ai-computer gc`` if the process was killed: they carry its owner labels).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sandboxes import remove_sandbox

if TYPE_CHECKING:
    from .provisioner import DockerSandboxProvisioner

log = logging.getLogger(__name__)


@dataclass
class _Spares:
    """The spares of one configuration, in one event loop."""

    ready: list[DockerSandboxProvisioner] = field(default_factory=list)
    starting: dict[asyncio.Task[DockerSandboxProvisioner], DockerSandboxProvisioner] = field(
        default_factory=dict
    )


_SPARES: dict[tuple[int, str], _Spares] = {}


def _settings(provisioner: DockerSandboxProvisioner) -> dict[str, object]:
    """What a spare must share with a kernel to stand in for it (all but ``prestart``)."""
    names = sorted(set(provisioner.trait_names(config=True)) - {"prestart"})
    return {name: getattr(provisioner, name) for name in names}


def _spares_for(provisioner: DockerSandboxProvisioner) -> _Spares:
    spec = provisioner.kernel_spec
    described = {
        **_settings(provisioner),
        "argv": list(spec.argv) if spec else None,
        "env": dict(spec.env) if spec else None,
        "name": getattr(spec, "name", None),
    }
    key = (id(asyncio.get_running_loop()), json.dumps(described, sort_keys=True, default=str))
    return _SPARES.setdefault(key, _Spares())


async def take(provisioner: DockerSandboxProvisioner) -> DockerSandboxProvisioner | None:
    """A launched spare with the provisioner's configuration, or None if none is ready."""
    spares = _spares_for(provisioner)
    while spares.ready:
        spare = spares.ready.pop(0)
        if await spare.poll() is None:
            return spare
        await spare.cleanup()  # its kernel died while idle: remove it, never hand it out
    return None


def replenish(provisioner: DockerSandboxProvisioner) -> None:
    """Start spares in the background until ``provisioner.prestart`` are ready or starting."""
    spares = _spares_for(provisioner)
    while len(spares.ready) + len(spares.starting) < provisioner.prestart:
        spare = type(provisioner)(
            kernel_id=str(uuid.uuid4()),
            kernel_spec=provisioner.kernel_spec,
            log=provisioner.log,
            **_settings(provisioner),
        )
        task = asyncio.create_task(_launch(spare))
        spares.starting[task] = spare
        task.add_done_callback(lambda done, spares=spares: _launched(spares, done))


async def _launch(spare: DockerSandboxProvisioner) -> DockerSandboxProvisioner:
    try:
        arguments = await spare.pre_launch()
        await spare.launch_kernel(arguments.pop("cmd"), **arguments)
    except BaseException:
        await spare.cleanup()
        raise
    return spare


def _launched(spares: _Spares, task: asyncio.Task[DockerSandboxProvisioner]) -> None:
    spares.starting.pop(task, None)
    if task.cancelled():
        return
    failure = task.exception()
    if failure is not None:  # it removed what it made; the next launch tries again
        log.warning("a spare sandbox failed to start: %s", failure)
        return
    spares.ready.append(task.result())


@atexit.register
def remove_spares() -> None:
    """Remove every spare not handed out (at exit; the loop that started them is gone)."""
    for spares in list(_SPARES.values()):
        unclaimed = [*spares.ready, *spares.starting.values()]
        spares.ready.clear()
        spares.starting.clear()
        for spare in unclaimed:
            with contextlib.suppress(Exception):
                remove_sandbox(spare.sandbox_id, spare.runtime_root)
