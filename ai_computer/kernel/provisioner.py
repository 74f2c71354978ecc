"""DockerSandboxProvisioner: the jupyter_client kernel provisioner that runs each kernel in a
sandbox: a resource-limited, hardened container with no network (``backends/docker``).

This module holds jupyter_client's hooks only. What may be configured, and how it is checked,
is ``config.py``; what a sandbox is on the engine, and every call to the engine, is the
backend's (``backends/base.py``); the kernel's command line is ``startup.py``; spares started
ahead of need are ``spares.py``.

The host never connects to the kernel's own sockets: a relay between them (``inside/relay.py``)
refuses messages no real kernel sends, and a message too big to hold kills the relay (reported
as such), never the host's process. ``/workspace`` outlives kernel restarts (each launch is a
new kernel instance in the same sandbox) and is removed with the sandbox.

The engine's client is synchronous: every backend call runs in a worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.session import new_id_bytes

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from .. import limits
from ..backends import backend as named_backend
from ..backends import reaper, removals
from ..backends.base import Backend, ContainerExit, ExecHandle, SandboxSpec
from ..backends.labels import owner_labels
from ..errors import SandboxError, SandboxStartError
from . import notebook_dir, spares
from .config import SandboxProvisionerConfig
from .startup import kernel_command

_KILL_WAIT = 2.0  # seconds a killed kernel's exit is awaited in kill() (KernelManager then waits)


class DockerSandboxProvisioner(SandboxProvisionerConfig):
    """Runs a kernel in a hardened, resource-limited container with no network.

    Configure it through a kernelspec's ``metadata.kernel_provisioner.config``: each key is a
    trait of :class:`~ai_computer.kernel.config.SandboxProvisionerConfig` (``memory_limit``,
    ``cpu_limit``, ``image``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_reset = False
        """True when the last launch found the workspace unmounted (so emptied), e.g. because
        the engine restarted."""
        self._container_id: str | None = None
        self._relay_id: str | None = None
        self._launched = False
        self._exit_future: asyncio.Future[ContainerExit] | None = None
        self._relay_exit_future: asyncio.Future[ContainerExit] | None = None
        self.last_exit: ContainerExit | None = None
        """How the most recent kernel ended (kept across restarts, for reporting)."""
        # Set before a restart stops the kernel or relay (_hold_volumes): whether the storage was
        # found emptied; the next launch reports it.
        self._volumes_reset: bool | None = None
        self._holding: asyncio.Task[None] | None = None  # hold_for_restart
        self._sandbox_id: str | None = None  # a spare's, once this kernel took it
        self._took_spare = False
        # notebook_dir: the folder of the first launch's cwd, and what it copies in (if 'copy').
        self._notebook_folder: str | None = None
        self._notebook_copy: notebook_dir.CopyPlan | None = None

    # -- what the SDK and the server extension read ---------------------------------------

    @property
    def backend(self) -> Backend:
        """Where this sandbox runs: the process's backend (the local Docker engine, or a swarm
        with ``AI_COMPUTER_BACKEND=swarm``: ``backends/__init__.py``)."""
        return named_backend()

    @property
    def sandbox_id(self) -> str:
        """The sandbox's id, stable across kernel restarts: the kernel id, or the id of the
        spare sandbox the kernel took (``prestart``)."""
        return self._sandbox_id or str(self.kernel_id)

    @property
    def container_id(self) -> str | None:
        """The current kernel instance, if one was launched and not yet cleaned up."""
        return self._container_id

    @property
    def relay_id(self) -> str | None:
        """The current relay instance, if one was launched and not yet cleaned up."""
        return self._relay_id

    @property
    def spec(self) -> SandboxSpec:
        """This sandbox's identity and limits, as the backend takes them."""
        return SandboxSpec(
            sandbox_id=self.sandbox_id,
            image=self.image,
            user=self.sandbox_user,
            memory_limit=int(self.memory_limit),
            cpu_limit=self.cpu_limit,
            pids_limit=self.pids_limit,
            disk_limit=int(self.disk_limit),
            tmp_size=limits.parse_size(self.tmp_size, name="tmp_size"),
            log_max_size=self.log_max_size,
            message_limit=int(self.message_limit),
            relay_memory_limit=int(self.relay_memory_limit),
            runtime_root=self.runtime_root,
            environment={
                **(dict(self.kernel_spec.env) if self.kernel_spec else {}),
                **self.environment,
            },
            owner_labels=owner_labels(),
            runtime=self.runtime,
            notebook_folder=self._notebook_folder if self.notebook_dir == "read-only" else None,
        )

    async def exited(self) -> ContainerExit:
        """Wait until the current kernel instance ends (without blocking the loop); say how."""
        if self._exit_future is None:
            raise SandboxError("no sandbox container has been launched")
        ended = await asyncio.shield(self._exit_future)
        self.last_exit = ended
        return ended

    async def relay_exited(self) -> ContainerExit:
        """Wait until the current relay ends; say how."""
        if self._relay_exit_future is None:
            raise SandboxError("no sandbox relay has been launched")
        return await asyncio.shield(self._relay_exit_future)

    # -- jupyter_client's hooks ------------------------------------------------------------

    @property
    @override
    def has_process(self) -> bool:
        """Read by ``KernelManager.has_kernel``: True from a launch until ``wait()`` or
        ``cleanup()`` saw the kernel end."""
        return self._launched

    @override
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Called by ``KernelManager.pre_start_kernel`` before every launch (the first and
        each restart): prepare the host side and the kernel's command.

        The host's environment and working directory (``env``, ``cwd`` from the caller) are
        deliberately dropped: the kernel runs in /workspace with only the variables we set.
        Only ``notebook_dir`` uses the first launch's ``cwd`` (this process's own without
        one): its folder is checked, and with 'copy' counted against the disk limit, before
        anything starts. A first launch with ``prestart`` takes a spare sandbox instead, if
        one is ready.
        """
        kwargs = await super().pre_launch(**kwargs)
        self._holding = None  # each launch attempt checks the storage afresh (_hold_volumes)
        kwargs.pop("env", None)
        cwd = kwargs.pop("cwd", None)
        if self.notebook_dir != "off" and self._notebook_folder is None:
            await asyncio.to_thread(self._plan_notebook_folder, cwd or os.getcwd())
        if self.prestart and not self.connection_info:  # a first launch: a spare will do
            spare = await spares.take(self)
            if spare is not None:
                self._take_over(spare)
                kwargs["cmd"] = []  # nothing to launch: launch_kernel() returns the spare's
                return kwargs
        old_key = (self.connection_info or {}).get("key")
        key = old_key or getattr(getattr(self.parent, "session", None), "key", None)
        kernel_name = self.kernel_spec.name if self.kernel_spec else ""
        spec = self.spec
        info = await asyncio.to_thread(self._prepare, spec, key or new_id_bytes(), kernel_name)
        self.connection_info = info  # type: ignore[assignment]  # KernelConnectionInfo is loose
        argv = list(self.kernel_spec.argv) if self.kernel_spec and self.kernel_spec.argv else []
        extra = kwargs.pop("extra_arguments", None) or []
        message_limit = int(self.message_limit)
        kwargs["cmd"] = kernel_command(
            argv, self.backend.kernel_connection_file, message_limit, extra
        )
        return kwargs

    @override
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Called by ``KernelManager._launch_kernel`` after ``pre_launch``: start the sandbox's
        kernel and companions (at the first launch with ``notebook_dir='copy'``, then copy the
        notebook's folder in); return the host-side connection info once the relay has bound
        its sockets (or the kernel has exited: the caller's handshake reports that)."""
        if self._took_spare:
            self._took_spare = False
        else:
            await self._launch(cmd)
        if self._notebook_copy is not None:
            plan, self._notebook_copy = self._notebook_copy, None
            await self._copy_notebook_folder(plan)
        if self.prestart:  # after this kernel's own start, which spares would slow down
            spares.replenish(self)
        if self.parent is not None:
            # jupyter_client writes the host side's connection file (the key included) where
            # it is told: in the sandbox's private directory, removed with the sandbox, rather
            # than the Jupyter runtime directory, where a killed process would leave it.
            self.parent.connection_file = self.backend.connection_file(self.spec)
        return self.connection_info

    @override
    async def poll(self) -> int | None:
        """Called by ``KernelManager.is_alive`` (and the restarter): None while the kernel and
        its relay run, else an exit code (-1 if it was lost). Without its relay a kernel cannot
        be reached, so Jupyter restarts both."""
        if self._exit_future is not None and self._exit_future.done():
            ended = self._exit_future.result()
            self.last_exit = ended
        elif self._relay_exit_future is not None and self._relay_exit_future.done():
            ended = self._relay_exit_future.result()
        else:
            return None
        return ended.exit_code if ended.exit_code is not None else -1

    @override
    async def wait(self) -> int | None:
        """Called by ``KernelManager`` shutdown and restart after a kill or shutdown request:
        wait for the kernel to end; the process is then no longer ours."""
        if self._exit_future is None:
            return None
        ended = await self.exited()
        self._launched = False
        return ended.exit_code

    @override
    async def send_signal(self, signum: int) -> None:
        """Called by ``KernelManager.signal_kernel`` and ``interrupt_kernel`` (SIGINT, the
        kernelspec's ``interrupt_mode`` being ``signal``): the instance's init passes it on to
        the kernel."""
        if self._container_id is None or self._exit_future is None or self._exit_future.done():
            return
        await asyncio.to_thread(self.backend.signal, self._container_id, signum)

    @override
    async def kill(self, restart: bool = False) -> None:
        """Called by ``KernelManager._kill_kernel`` (a forced shutdown or restart), which then
        polls ``poll()`` every 0.1 s until the kernel is gone: waiting here for the exit (it
        comes within milliseconds of SIGKILL) makes its first poll the last.

        The kernel and its relay hold the sandbox's storage between them: killing the kernel
        of a restart, or one whose relay has ended, first makes the storage outlive it (a
        restart with ``now=True`` calls this with ``restart=False``, hence the relay's check)."""
        relay_ended = self._relay_exit_future is not None and self._relay_exit_future.done()
        if restart or relay_ended:
            await self._hold_volumes()
        await self.send_signal(signal.SIGKILL)
        if self._exit_future is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exit_future), _KILL_WAIT)

    @override
    async def terminate(self, restart: bool = False) -> None:
        """Called by ``KernelManager`` when a kernel did not honour a shutdown request."""
        await self.send_signal(signal.SIGTERM)

    @override
    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        """Called by ``KernelManager.finish_shutdown``: how long a kernel gets to exit."""
        return min(recommended, self.stop_timeout)

    @override
    async def cleanup(self, restart: bool = False) -> None:
        """Called by ``KernelManager.cleanup_resources`` after the kernel ended: remove its
        instance; unless restarting, the whole sandbox (its ``/workspace`` too), in a worker
        thread with ``remove_in_background`` (``backends/removals.py``)."""
        if restart:
            await self._hold_volumes()
        container_id, self._container_id = self._container_id, None
        relay_id, self._relay_id = self._relay_id, None
        if container_id is not None and self._exit_future is not None:
            if not self._exit_future.done():
                await asyncio.to_thread(self.backend.signal, container_id, signal.SIGKILL)
            await self.exited()
        self._launched = False
        backend = self.backend
        if restart:
            # A new launch starts a new relay (libzmq state and all). The old one is killed
            # now, so that it cannot connect to the new kernel's sockets; the dead instances
            # are removed while the new ones start.
            if relay_id is not None:
                await asyncio.to_thread(backend.signal, relay_id, signal.SIGKILL)
            for instance in (relay_id, container_id):
                if instance is not None:
                    removals.submit(self.sandbox_id, backend.remove_instance, instance)
            return
        await self.settle()  # a holder being made (for a restart that failed)
        if self.remove_in_background:  # the kernel is dead: nothing runs in the sandbox
            removals.submit(self.sandbox_id, backend.remove, self.sandbox_id, self.runtime_root)
            self.connection_info = {}
        else:  # after the removals of a restart still under way (two at once would clash)
            await asyncio.to_thread(removals.wait, [self.sandbox_id])
            await asyncio.to_thread(backend.remove, self.sandbox_id, self.runtime_root)
            self.connection_info = {}

    @override
    def resolve_path(self, path: str) -> str | None:
        """Called by Jupyter Server to map a notebook path into the kernel's file system:
        host paths mean nothing inside the sandbox, and its layout is not revealed."""
        return None

    @override
    async def get_provisioner_info(self) -> dict[str, Any]:
        """Called by ``KernelManager`` when a kernel's state is persisted (e.g. by gateways)."""
        info: dict[str, Any] = await super().get_provisioner_info()
        info["container_id"] = self._container_id
        info["relay_id"] = self._relay_id
        return info

    @override
    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Called when a persisted kernel is loaded again: the instances it names."""
        await super().load_provisioner_info(provisioner_info)
        self._container_id = provisioner_info.get("container_id")
        self._relay_id = provisioner_info.get("relay_id")

    # -- launching -------------------------------------------------------------------------

    def _plan_notebook_folder(self, cwd: str) -> None:
        """In a worker thread, at the first launch with ``notebook_dir``: the folder, and what
        'copy' sends (``SandboxStartError`` when it does not fit)."""
        folder = notebook_dir.checked_folder(cwd)
        if self.notebook_dir == "copy":
            self._notebook_copy = notebook_dir.plan_copy(folder, int(self.disk_limit))
        self._notebook_folder = folder

    async def _copy_notebook_folder(self, plan: notebook_dir.CopyPlan) -> None:
        """The first launch with ``notebook_dir='copy'``: the folder into /workspace, before
        the kernel's client connects. A copy that fails or is cancelled removes the sandbox
        (the caller gets the error: nothing else of this start would)."""
        instance = self._container_id
        if instance is None or self._exit_future is None or self._exit_future.done():
            return  # the kernel is gone already: the caller's handshake says why
        handle = ExecHandle()
        try:
            await asyncio.to_thread(
                notebook_dir.copy_into, self.backend, instance, self.sandbox_user, plan, handle
            )
        except BaseException:
            handle.abort()
            await self.kill()
            await self.cleanup()
            raise
        for note in plan.skipped:
            self.log.warning("notebook_dir 'copy' skipped %s", note)

    def _prepare(self, spec: SandboxSpec, key: bytes | str, kernel_name: str) -> dict[str, Any]:
        """In a worker thread: this process's watchdog (the sandbox dies with its owner), then
        the backend's host side."""
        reaper.watch(self.runtime_root)
        return self.backend.prepare(spec, key, kernel_name)

    def _take_over(self, spare: DockerSandboxProvisioner) -> None:
        """Become the provisioner of a launched spare sandbox (its kernel is this kernel now)."""
        self._sandbox_id, self._took_spare = spare.sandbox_id, True
        self.connection_info = spare.connection_info
        self._container_id, self._relay_id = spare.container_id, spare.relay_id
        self._exit_future, self._relay_exit_future = spare._exit_future, spare._relay_exit_future
        self.workspace_reset = spare.workspace_reset
        self._launched = True

    async def _launch(self, cmd: list[str]) -> None:
        start = asyncio.ensure_future(asyncio.to_thread(self.backend.start, self.spec, cmd))
        try:
            launched = await asyncio.shield(start)
        except asyncio.CancelledError:
            # The engine call goes on in its thread: a removal now would race what it still
            # makes. Wait for it, so that the cleanup that follows finds everything.
            with contextlib.suppress(Exception):
                made = await start
                self._container_id, self._relay_id = made.kernel, made.relay
            raise
        self._container_id, self._relay_id = launched.kernel, launched.relay
        self.workspace_reset = launched.workspace_reset or bool(self._volumes_reset)
        self._volumes_reset, self._holding = None, None
        self._launched = True
        self._exit_future = self._watch(launched.kernel)
        self._relay_exit_future = self._watch(launched.relay)
        await self._await_bind()

    def hold_for_restart(self) -> None:
        """Start making the sandbox's storage outlive its kernel and relay, for a restart about
        to stop them (the SDK's ``restart()``): the kill need not wait for it while the relay
        still holds the storage; the relay is killed once it is done."""
        if self._holding is None:
            self._holding = asyncio.ensure_future(self._hold_volumes_now())

    async def _hold_volumes(self) -> None:
        self.hold_for_restart()
        await self.settle()

    async def _hold_volumes_now(self) -> None:
        """Before a restart stops the kernel or its relay (which hold the sandbox's storage
        between them): the backend's holder, once per launch attempt. If that fails the
        storage is reported emptied, as it will be once both are stopped; a reset found stays
        reported until a launch succeeds (a retry after a failed one checks again)."""
        instances = [i for i in (self._container_id, self._relay_id) if i is not None]
        try:
            emptied = await asyncio.to_thread(self.backend.hold, self.spec, instances)
        except Exception as exc:  # the engine gone (requests' errors are not docker-py's), ...
            self.log.warning("the sandbox's files may not outlive this restart: %s", exc)
            emptied = True
        self._volumes_reset = bool(self._volumes_reset) or emptied

    async def settle(self) -> None:
        """Wait for a holder being made (before a restart stops the relay, or the sandbox is
        removed by other means)."""
        if self._holding is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._holding)

    def _watch(self, instance: str) -> asyncio.Future[ContainerExit]:
        """A future that resolves when the instance ends (watched in a dedicated thread)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ContainerExit] = loop.create_future()
        backend = self.backend

        def watch() -> None:
            ended = backend.wait(instance)

            def resolve() -> None:
                if not future.done():
                    future.set_result(ended)

            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        name = f"ai-computer-wait-{instance[:12]}"
        threading.Thread(target=watch, name=name, daemon=True).start()
        return future

    async def _await_bind(self) -> None:
        """Wait until the relay's endpoints exist (the host connects to those). Requests sent
        before the kernel has bound its own wait in the relay; the client's handshake tells
        when the kernel answers.

        There is no event for "a socket file appeared" short of inotify, hence the short polls.
        """
        assert self._exit_future is not None and self._relay_exit_future is not None
        deadline = time.monotonic() + limits.DEFAULT_STARTUP_TIMEOUT
        spec, backend = self.spec, self.backend
        while not backend.reachable(spec):
            if self._exit_future.done() or self._relay_exit_future.done():
                return
            if time.monotonic() > deadline:
                await self.kill()
                raise SandboxStartError(
                    "the sandbox relay did not create its sockets within "
                    f"{limits.DEFAULT_STARTUP_TIMEOUT:g} s"
                )
            await asyncio.sleep(0.005)
