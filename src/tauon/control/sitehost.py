"""The daemon's side of its sites' listening sockets (server/site.py): it binds them itself, lets a
port that a removed or renamed app still drains finish before binding it again, and keeps the worker
processes' copies of each socket in step (they stop accepting when the daemon does)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tauon.errors import BindError
from tauon.runtimeconfig.memory import store_dirs
from tauon.server.generation import Generation
from tauon.server.listener import Listener
from tauon.workers.pool import ProcessPool


class DaemonSiteHost:
    def __init__(self, tg: TaskGroup, drain_timeout: float, pool: ProcessPool | None) -> None:
        self.tg = tg
        self.drain_timeout = drain_timeout
        self.pool = pool
        self.shares = pool.shares if pool is not None else None
        self._closing_ports: dict[int, anyio.Event] = {}

    def socket_for(self, app_id: str, key: int | None) -> socket.socket | None:
        return None  # the listener binds its address

    async def start(self, listener: Listener, previous: Listener | None) -> None:
        port = listener.address.port
        closing = self._closing_ports.get(port)
        if closing is not None:  # a removed or renamed app still drains this port: let it finish
            with anyio.move_on_after(self.drain_timeout + 1):
                await closing.wait()
        try:
            await self.tg.start(listener.run)
        except BindError as exc:
            # Moving to another host on the same port: the old socket must go first (a short gap).
            if previous is None or previous.address.port != port or not exc.in_use:
                raise
            await self.close(previous)
            await self.tg.start(listener.run)

    async def close(self, listener: Listener) -> None:
        port = listener.address.port
        event = self._closing_ports.setdefault(port, anyio.Event())
        try:
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    if self.pool is not None:  # their copies of the socket must go too
                        tg.start_soon(self.pool.close_listener, listener.key)
                    await listener.stop()
        finally:
            if self._closing_ports.get(port) is event:
                del self._closing_ports[port]
            event.set()

    async def drop(self, app_id: str, listener: Listener) -> None:
        async with anyio.create_task_group() as tg:  # every process closes it at the same time
            if self.pool is not None:
                tg.start_soon(self.pool.remove, app_id, listener.key)
            tg.start_soon(self.close, listener)

    def retired(self, gen: Generation, serving: Generation | None) -> None:
        """Remove the private directories (in-memory stores made files for the workers) that `gen` used
        and the serving generation does not (a tier upgrade keeps the same ones)."""
        if self.pool is None:
            return
        keep = _state_dirs(serving) if serving is not None else set()
        for path in map(Path, _state_dirs(gen) - keep):
            if path.parent == self.pool.runtime_dir:  # only a private in-memory substitute
                shutil.rmtree(path, ignore_errors=True)


def _state_dirs(gen: Generation) -> set[str]:
    return (store_dirs(gen.plan.runtime_config) | {gen.plan.state_dir or ""}) - {""}
