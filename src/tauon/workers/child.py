"""A worker process: serves the generations the daemon deploys to it, on the daemon's listening sockets.

The daemon keeps the control plane (watching, pulling, compiling, the admin endpoints) and serves too;
each worker is a second event loop and a second GIL for the data plane. It builds every generation
from the same plan the daemon built (the compiled components come from the shared on-disk cache) and
answers each request of the daemon with `ok` or `error`. Signals are the daemon's business: a worker
ignores them, and when the daemon's end of the channel closes it drains and exits.

Run as `python -m tauon.workers.child FD` by workers/pool.py, never by hand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from tauon import tracing
from tauon.app.plan import GenerationPlan
from tauon.log import setup_logging, tag_worker
from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.server.generation import Generation, build_generation
from tauon.server.listener import Listener
from tauon.server.switchboard import Switchboard
from tauon.server.tls import CertReloader
from tauon.settings import Settings, loop_options
from tauon.wasm.engine import WasmEngine
from tauon.workers.channel import Channel, ChannelClosed, Message

log = logging.getLogger("tauon.worker")

STATS_INTERVAL = 1.0
"""Seconds between request-metric snapshots sent to the daemon (what /metrics may lag by)."""


@dataclass
class _Replica:
    serial: int
    """The daemon's deploy counter: a resync racing a newer deploy must not roll it back."""
    key: int
    listener: Listener
    switchboard: Switchboard
    generation: Generation


class Worker:
    def __init__(self, settings: Settings, engine: WasmEngine, channel: Channel, tg: TaskGroup) -> None:
        self.settings = settings
        self.engine = engine
        self.channel = channel
        self.tg = tg
        self.metrics = Metrics()
        self.apps: dict[str, _Replica] = {}
        self.listeners: dict[int, Listener] = {}
        self.closing: dict[int, Listener] = {}
        self.sockets: dict[int, socket.socket] = {}
        """Listening sockets received and not yet served (the key's deploy is still building)."""
        self.locks: dict[str, anyio.Lock] = {}
        self.compile_limiter = anyio.CapacityLimiter(2)

    async def serve_channel(self) -> None:
        """Handle the daemon's requests until it says stop or goes away."""
        while True:
            try:
                message, sock = await self.channel.receive()
            except ChannelClosed:
                log.warning("worker %d: the daemon has gone; draining and exiting", os.getpid())
                return
            if message["op"] == "stop":
                return
            if message.get("fd_lost"):
                # Out of descriptors is not the daemon going away: say so, keep serving the rest.
                error = ("its listening socket could not be received: this process has no file "
                         "descriptor free (raise LimitNOFILE / ulimit -n)")
                log.error("worker %d: %s %s: %s; the other processes keep serving it", os.getpid(),
                          message["op"], message.get("app", ""), error)
                with contextlib.suppress(ChannelClosed):
                    await self.channel.send({"op": "error", "seq": message["seq"], "error": error,
                                             "transient": True})
                continue
            if sock is not None:
                # Stored at once, in channel order, so a later message for the same key finds it.
                old = self.sockets.pop(message["key"], None)
                if old is not None or message["key"] in self.listeners:
                    sock.close()  # a resync sent a socket this worker already serves
                    if old is not None:
                        self.sockets[message["key"]] = old
                else:
                    self.sockets[message["key"]] = sock
            self.tg.start_soon(self._handle, message)

    async def _handle(self, message: Message) -> None:
        reply: Message = {"op": "ok", "seq": message["seq"]}
        try:
            op = message["op"]
            if op == "deploy":
                async with self._lock(message["app"]):
                    await self._deploy(message["app"], message["serial"], message["number"],
                                       message["plan"], message["address"], message["key"])
            elif op == "close":
                await self._close_listener(message["key"])
            elif op == "remove":
                async with self._lock(message["app"]):
                    await self._remove(message["app"], message["key"])
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as exc:  # reported to the daemon, which restarts this worker
            log.exception("worker %d: %s %s failed", os.getpid(), message.get("op"), message.get("app", ""))
            reply = {"op": "error", "seq": message["seq"], "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(ChannelClosed):
            await self.channel.send(reply)

    def _lock(self, app_id: str) -> anyio.Lock:
        return self.locks.setdefault(app_id, anyio.Lock())

    async def _deploy(self, app_id: str, serial: int, number: int, plan: GenerationPlan,
                      address: Address, key: int) -> None:
        current = self.apps.get(app_id)
        if current is not None and current.serial >= serial:
            return  # a resync raced a newer deploy: this one is already served (or superseded)
        gen = await build_generation(plan, number, self.engine, self.compile_limiter)
        old: Generation | None
        with anyio.CancelScope(shield=True):
            if current is not None and current.key == key:
                if current.listener.tls is not None and plan.tls is not None:
                    try:
                        current.listener.tls.set_paths(plan.tls)  # the app file names other files
                    except Exception:
                        gen.close()
                        raise
                current.switchboard.swap(gen)
                old = current.generation
                current.generation, current.serial = gen, serial
            else:
                sock = self.sockets.pop(key, None)
                if sock is None:
                    gen.close()
                    raise RuntimeError(f"no listening socket for listener {key} of {app_id}")
                try:  # each process reloads the certificate itself when the files change
                    tls = None if plan.tls is None else CertReloader(plan.tls, owner=app_id)
                except Exception:
                    sock.close()
                    gen.close()
                    raise
                switchboard = Switchboard(app_id, gen, stats=self.metrics.requests_for(app_id),
                                          access_log=self.settings.access_log)
                listener = Listener(address, switchboard, owner=app_id,
                                    drain_timeout=self.settings.drain_timeout, sock=sock, tls=tls,
                                    edge=self.settings.edge_limits())
                await self.tg.start(listener.run)
                self.listeners[key] = listener
                self.apps[app_id] = _Replica(serial, key, listener, switchboard, gen)
                if current is not None:
                    self.tg.start_soon(self._close_listener, current.key)
                old = current.generation if current is not None else None
            if old is not None:
                self.tg.start_soon(old.retire, self.settings.drain_timeout)

    async def _close_listener(self, key: int) -> None:
        """Stop accepting on `key` and drain; returns once this process no longer holds the socket
        (the daemon may be about to bind its port again)."""
        sock = self.sockets.pop(key, None)
        if sock is not None:
            sock.close()
        listener = self.listeners.pop(key, None)
        if listener is not None:
            self.closing[key] = listener
        listener = self.closing.get(key)
        if listener is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await listener.stop()
        finally:
            self.closing.pop(key, None)

    async def _remove(self, app_id: str, key: int | None) -> None:
        """Stop serving the app deployed on listener `key` (None: whatever is deployed). An app file
        removed and re-added has a new listener already: the old one's removal leaves it alone."""
        replica = self.apps.get(app_id)
        if replica is None or (key is not None and replica.key != key):
            if key is not None:
                await self._close_listener(key)
            return
        del self.apps[app_id]
        self.metrics.forget(app_id)
        with anyio.CancelScope(shield=True):
            await self._close_listener(replica.key)
            await replica.generation.retire(1.0)

    async def shutdown(self) -> None:
        async with anyio.create_task_group() as tg:
            for app_id in list(self.apps):
                tg.start_soon(self._remove, app_id, None)
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    def snapshot(self) -> Message:
        apps = {app_id: (dict(stats.requests), list(stats.buckets), stats.total_seconds, stats.inflight)
                for app_id, stats in self.metrics.request_items()}
        slots = self.engine.slots
        return {"op": "stats", "apps": apps,
                "capacity": (slots.busy, slots.size, self.engine.pool.instances)}

    async def push_stats(self) -> None:
        while True:
            await anyio.sleep(STATS_INTERVAL)
            try:
                await self.channel.send(self.snapshot())
            except ChannelClosed:
                return


async def run(sock: socket.socket) -> None:
    channel = Channel(sock)
    message, _ = await channel.receive()
    settings: Settings = message["settings"]
    setup_logging(settings.log_level, settings.log_format)
    tag_worker(message["worker"])
    tracing.setup(worker=message["worker"])  # the daemon's environment, checked by the daemon already
    engine = WasmEngine(settings.cache_dir / "compiled", pool=settings.pool,
                        run_slots=settings.running_guests, sandbox=settings.compile)
    engine.start()
    try:
        async with anyio.create_task_group() as tg:
            worker = Worker(settings, engine, channel, tg)
            await channel.send({"op": "ready", "pid": os.getpid()})
            tg.start_soon(worker.push_stats)
            try:
                await worker.serve_channel()
            finally:
                with anyio.CancelScope(shield=True):
                    await worker.shutdown()
            tg.cancel_scope.cancel()
    finally:
        engine.stop()
        channel.close()
        tracing.shutdown()


def main(argv: list[str]) -> int:
    # The daemon drains and stops its workers itself; a ^C or systemd's SIGTERM to the whole
    # control group must not cut their in-flight requests short.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    try:
        anyio.run(run, sock, backend="asyncio", backend_options=loop_options())
    except* ChannelClosed:
        pass  # the daemon went away (a stop) before this worker was serving: nothing to drain
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
