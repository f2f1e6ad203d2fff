"""A worker process: serves the generations the daemon deploys to it, on the daemon's listening sockets.

The daemon keeps the control plane (watching, pulling, compiling, the admin endpoints) and serves too;
each worker is a second event loop and a second GIL for the data plane. It builds every generation
from the same plan the daemon built (the compiled components come from the shared on-disk cache),
serves it on the app's site (server/site.py, as the daemon does) and answers each request of the
daemon (workers/messages.py) with `Ok` or `Failed`. Signals are the daemon's business: a worker
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
from tauon.gctune import freeze_startup_heap
from tauon.log import setup_logging, tag_worker
from tauon.metrics import Metrics
from tauon.server.balance import ProcessShares, ShareBoard
from tauon.server.generation import Generation, build_generation
from tauon.server.listener import Listener
from tauon.server.site import Site
from tauon.settings import Settings, loop_options
from tauon.wasm.engine import WasmEngine
from tauon.workers.channel import Channel, ChannelClosed
from tauon.workers.messages import (
    BadMessage,
    Close,
    Deploy,
    Failed,
    Init,
    Message,
    Ok,
    Ready,
    Remove,
    Reply,
    Request,
    Stop,
    decode,
    encode,
)
from tauon.workers.stats import snapshot

log = logging.getLogger("tauon.worker")

STATS_INTERVAL = 1.0
"""Seconds between request-metric snapshots sent to the daemon (what /metrics may lag by)."""

FD_LOST = ("its listening socket could not be received: this process has no file descriptor free "
           "(raise LimitNOFILE / ulimit -n)")


class HandedSockets:
    """A worker's SiteHost: its listening sockets are the daemon's, handed over with the deploys."""

    def __init__(self, tg: TaskGroup, shares: ProcessShares | None = None) -> None:
        self.tg = tg
        self.shares = shares
        self.sockets: dict[int, socket.socket] = {}
        """Listening sockets received and not yet served (the key's deploy is still building)."""
        self.listeners: dict[int, Listener] = {}
        self.closing: dict[int, Listener] = {}
        self.closed: set[int] = set()
        """Keys the daemon closed (it never reuses one): a deploy for one that was still building
        when the Close came is dropped, not failed."""

    def received(self, key: int, sock: socket.socket) -> None:
        """Stored at once, in channel order, so a later message for the same key finds it."""
        old = self.sockets.pop(key, None)
        if old is not None or key in self.listeners:
            sock.close()  # a resync sent a socket this worker already serves
            if old is not None:
                self.sockets[key] = old
        else:
            self.sockets[key] = sock

    def socket_for(self, app_id: str, key: int | None) -> socket.socket | None:
        sock = self.sockets.pop(key, None) if key is not None else None
        if sock is None:
            raise RuntimeError(f"no listening socket for listener {key} of {app_id}")
        return sock

    async def start(self, listener: Listener, previous: Listener | None) -> None:
        await self.tg.start(listener.run)
        if listener.key in self.closed:  # closed by the daemon while it started: stop it again
            with anyio.CancelScope(shield=True):
                await listener.stop()
            return
        self.listeners[listener.key] = listener

    async def close(self, listener: Listener) -> None:
        await self.close_key(listener.key)

    async def drop(self, app_id: str, listener: Listener) -> None:
        await self.close_key(listener.key)

    def retired(self, gen: Generation, serving: Generation | None) -> None:
        pass  # the daemon removes private state directories

    async def close_key(self, key: int) -> None:
        """Stop accepting on `key` and drain; returns once this process no longer holds the socket
        (the daemon may be about to bind its port again)."""
        self.closed.add(key)
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


@dataclass
class _Replica:
    serial: int
    """The daemon's deploy counter: a resync racing a newer deploy must not roll it back."""
    site: Site


class Worker:
    def __init__(self, settings: Settings, engine: WasmEngine, channel: Channel, tg: TaskGroup,
                 shares: ProcessShares | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.channel = channel
        self.tg = tg
        self.metrics = Metrics()
        self.apps: dict[str, _Replica] = {}
        self.host = HandedSockets(tg, shares)
        self.locks: dict[str, anyio.Lock] = {}
        self.compile_limiter = anyio.CapacityLimiter(2)
        self.stopping = False
        """Set when the worker shuts down: a deploy still building then stops quietly (its listening
        socket is already closed), instead of failing with a traceback."""

    async def send(self, message: Message) -> None:
        await self.channel.send(encode(message))

    async def serve_channel(self) -> None:
        """Handle the daemon's requests until it says stop or goes away."""
        while True:
            try:
                raw, sock = await self.channel.receive()
            except ChannelClosed:
                log.warning("worker %d: the daemon has gone; draining and exiting", os.getpid())
                return
            try:
                message = decode(raw)
            except BadMessage as exc:
                await self._refuse(raw, sock, exc)
                continue
            if isinstance(message, Stop):
                return
            if not isinstance(message, Deploy | Close | Remove):
                await self._refuse(raw, sock, BadMessage(f"a {message.op!r} message after start"))
                continue
            if isinstance(message, Deploy) and message.fd_lost:
                # Out of descriptors is not the daemon going away: say so, keep serving the rest.
                log.error("worker %d: deploy %s: %s; the other processes keep serving it", os.getpid(),
                          message.app, FD_LOST)
                with contextlib.suppress(ChannelClosed):
                    await self.send(Failed(seq=message.seq, error=FD_LOST, transient=True))
                continue
            if sock is not None and isinstance(message, Deploy):
                self.host.received(message.key, sock)
            elif sock is not None:
                sock.close()
            self.tg.start_soon(self._handle, message)

    async def _refuse(self, raw: object, sock: socket.socket | None, exc: BadMessage) -> None:
        """A message that is not the protocol's: answered as a failure, so the daemon restarts this
        worker (a daemon of another version, or a bug)."""
        if sock is not None:
            sock.close()
        log.error("worker %d: refused a message from the daemon: %s", os.getpid(), exc)
        seq = raw.get("seq") if isinstance(raw, dict) else None
        if isinstance(seq, int):
            with contextlib.suppress(ChannelClosed):
                await self.send(Failed(seq=seq, error=f"refused: {exc}"))

    async def _handle(self, message: Request) -> None:
        reply: Reply = Ok(seq=message.seq)
        try:
            if isinstance(message, Deploy):
                async with self._lock(message.app):
                    await self._deploy(message)
            elif isinstance(message, Close):
                await self.host.close_key(message.key)
            else:
                async with self._lock(message.app):
                    await self._remove(message.app, message.key)
        except Exception as exc:  # reported to the daemon, which restarts this worker
            if self.stopping:  # its socket is gone with the rest: not a failure worth a traceback
                log.debug("worker %d: %s %s abandoned while stopping: %s", os.getpid(), message.op,
                          getattr(message, "app", ""), exc)
            else:
                log.exception("worker %d: %s %s failed", os.getpid(), message.op, getattr(message, "app", ""))
            reply = Failed(seq=message.seq, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(ChannelClosed):
            await self.send(reply)

    def _lock(self, app_id: str) -> anyio.Lock:
        return self.locks.setdefault(app_id, anyio.Lock())

    async def _deploy(self, message: Deploy) -> None:
        current = self.apps.get(message.app)
        if current is not None and current.serial >= message.serial:
            return  # a resync raced a newer deploy: this one is already served (or superseded)
        gen = await build_generation(message.plan, message.number, self.engine, self.compile_limiter)
        if self.stopping or message.key in self.host.closed:
            # Stopping, or the daemon closed this listener while the generation was building (a
            # stop or a move landing as this worker started): a newer message says what to serve.
            log.debug("worker %d: deploy %s abandoned: its listener was closed meanwhile", os.getpid(),
                      message.app)
            gen.close()
            return
        with anyio.CancelScope(shield=True):
            if current is None:
                # Each process reloads the certificate itself when the files change.
                current = _Replica(message.serial, Site(message.app, self.host, self.tg, self.metrics,
                                                        self.settings))
            old = await current.site.swap(gen, message.address, key=message.key)
            current.serial = message.serial
            self.apps[message.app] = current
            current.site.retire(old)

    async def _remove(self, app_id: str, key: int | None) -> None:
        """Stop serving the app deployed on listener `key` (None: whatever is deployed). An app file
        removed and re-added has a new listener already: the old one's removal leaves it alone."""
        replica = self.apps.get(app_id)
        listener = replica.site.listener if replica is not None else None
        if replica is None or (key is not None and (listener is None or listener.key != key)):
            if key is not None:
                await self.host.close_key(key)
            return
        del self.apps[app_id]
        self.metrics.forget(app_id)
        with anyio.CancelScope(shield=True):
            await replica.site.close()

    async def shutdown(self) -> None:
        self.stopping = True
        async with anyio.create_task_group() as tg:
            for app_id in list(self.apps):
                tg.start_soon(self._remove, app_id, None)
        for sock in self.host.sockets.values():
            sock.close()
        self.host.sockets.clear()

    async def push_stats(self) -> None:
        while True:
            await anyio.sleep(STATS_INTERVAL)
            slots = self.engine.slots
            try:
                await self.send(snapshot(self.metrics, (slots.busy, slots.size, self.engine.pool.instances)))
            except ChannelClosed:
                return


async def run(sock: socket.socket, board: ShareBoard | None = None) -> None:
    channel = Channel(sock)
    raw, _ = await channel.receive()
    init = decode(raw)
    if not isinstance(init, Init):
        raise BadMessage(f"a {init.op!r} message where 'init' was expected")
    settings = init.settings
    setup_logging(settings.log_level, settings.log_format)
    tag_worker(init.worker)
    tracing.setup(worker=init.worker)  # the daemon's environment, checked by the daemon already
    engine = WasmEngine(settings.cache_dir / "compiled", pool=settings.pool,
                        run_slots=settings.running_guests, sandbox=settings.compile)
    engine.start()
    try:
        async with anyio.create_task_group() as tg:
            shares = ProcessShares(board, init.worker) if board is not None else None
            worker = Worker(settings, engine, channel, tg, shares)
            await worker.send(Ready(pid=os.getpid()))
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
    board = ShareBoard.attach([int(fd) for fd in argv[2:]]) if len(argv) > 2 else None
    options = loop_options()
    freeze_startup_heap()
    try:
        anyio.run(run, sock, board, backend="asyncio", backend_options=options)
    except* ChannelClosed:
        pass  # the daemon went away (a stop) before this worker was serving: nothing to drain
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
