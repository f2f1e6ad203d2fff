"""One app's serving end in one process: its listener and switchboard (HTTP and HTTPS apps), its Redis
subscriptions (in the daemon, for apps with Redis triggers), the generation they point at, and the
retirement of the generations it replaces once their in-flight requests finish.

The daemon (control/runner.py) and each worker process (workers/child.py) keep one Site per app. What
differs between them is only how a listening socket is got and given up, which their `SiteHost` says:
the daemon binds sockets itself and keeps its worker processes' copies in step; a worker is handed
the daemon's sockets.
"""

from __future__ import annotations

import gc
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import TaskGroup

from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.server.balance import ProcessShares
from tauon.server.generation import Generation
from tauon.server.listener import Listener
from tauon.server.switchboard import Switchboard
from tauon.server.tls import CertReloader
from tauon.settings import Settings

if TYPE_CHECKING:
    from tauon.server.redis_subscriber import AppRedis

log = logging.getLogger("tauon")


class SiteHost(Protocol):
    """How the process a site runs in gets and gives up listening sockets."""

    shares: ProcessShares | None
    """Where this process stands among the processes accepting on the same sockets (None: alone)."""

    def socket_for(self, app_id: str, key: int | None) -> socket.socket | None:
        """The listening socket for a new listener (None: the listener binds its address itself).
        Raises if this process should have been handed one and was not."""
        ...

    async def start(self, listener: Listener, previous: Listener | None) -> None:
        """Start `listener` accepting; `previous` is the site's listener it replaces (still open)."""
        ...

    async def close(self, listener: Listener) -> None:
        """Stop accepting on `listener` and drain it; returns once its socket is closed."""
        ...

    async def drop(self, app_id: str, listener: Listener) -> None:
        """The app stops listening altogether (removed, or no HTTP triggers any more)."""
        ...

    def retired(self, gen: Generation, serving: Generation | None) -> None:
        """`gen` has drained and released its executors; `serving` is the site's generation now (None:
        none, or `gen` itself), whose resources must outlive `gen`."""
        ...


COLLECT_DELAY = 3.0
"""Seconds between a generation's retirement and the collection that frees it."""


class _DeferredCollection:
    """A retired generation's wasmtime objects sit in reference cycles (its executors, linkers and
    host-function closures), which only Python's cyclic collector frees, and that runs on allocation
    counts an idle process does not reach: after tiering's swaps every process kept Winch's code
    mapped, its file open and the pages a request touched resident. So one full collection follows
    retirements, a few seconds after the first of a burst (the generation's own frames are gone by
    then), whatever their number."""

    def __init__(self) -> None:
        self.pending = False

    def soon(self, tg: TaskGroup) -> None:
        if not self.pending:
            self.pending = True
            tg.start_soon(self._run)

    async def _run(self) -> None:
        try:
            await anyio.sleep(COLLECT_DELAY)
        finally:
            self.pending = False
        gc.collect()


_COLLECTION = _DeferredCollection()
"""One per process: the daemon and each worker collect their own."""


def _no_problem(problem: str | None) -> None:
    pass


class Site:
    """Swaps generations in without dropping a request: a new generation on the same listener is a
    pointer change; a new address, or HTTPS switched on or off, starts a new listener before the old
    one drains. Every method that may fail closes the new generation it was given before raising, so
    the last good one keeps serving."""

    def __init__(self, app_id: str, host: SiteHost, tg: TaskGroup, metrics: Metrics, settings: Settings,
                 *, on_tls_problem: Callable[[str | None], None] | None = None) -> None:
        self.app_id = app_id
        self.host = host
        self.tg = tg
        self.metrics = metrics
        self.settings = settings
        self.on_tls_problem = on_tls_problem
        """Hears a certificate rotation's error (the daemon shows it in /status); None: log only."""
        self.generation: Generation | None = None
        self.listener: Listener | None = None
        self.switchboard: Switchboard | None = None
        self.redis: AppRedis | None = None
        """The app's Redis subscriptions (apps with Redis triggers; in the daemon only)."""

    async def swap(self, gen: Generation, address: Address | None, *,
                   key: int | None = None) -> Generation | None:
        """Point the listener (or a new one) and the Redis subscriptions at `gen`; returns the
        generation it replaces, which the caller retires (`retire`) once others serve `gen` too.
        `key`: the daemon's name for the listening socket (a worker: a new key means a new listener)."""
        if gen.plan.listens:
            assert address is not None  # load_plan refuses an app with HTTP triggers and no address
            await self._swap_http(gen, address, key)
        elif self.listener is not None:  # the app no longer has HTTP triggers
            self.tg.start_soon(self.host.drop, self.app_id, self.listener)
            self.listener = self.switchboard = None
        if gen.redis is not None or self.redis is not None:
            if self.redis is None:
                from tauon.server.redis_subscriber import AppRedis  # redis-py: only for such apps

                self.redis = AppRedis(self.app_id, self.tg, self.metrics)
            await self.redis.activate(gen)  # subscribes first, then points at gen
        old, self.generation = self.generation, gen
        return old

    def _reusable(self, gen: Generation, address: Address, key: int | None) -> bool:
        listener = self.listener
        return (listener is not None and self.switchboard is not None and listener.address == address
                and (listener.tls is None) == (gen.plan.tls is None)
                and (key is None or listener.key == key))

    async def _swap_http(self, gen: Generation, address: Address, key: int | None) -> None:
        if self._reusable(gen, address, key):
            assert self.listener is not None and self.switchboard is not None
            if self.listener.tls is not None and gen.plan.tls is not None:
                try:
                    self.listener.tls.set_paths(gen.plan.tls)  # other files: the next handshake uses them
                except Exception:
                    gen.close()
                    raise
            self.switchboard.swap(gen)
            return
        await self._new_listener(gen, address, key)

    async def _new_listener(self, gen: Generation, address: Address, key: int | None) -> None:
        """A new address, or HTTPS switched on or off: a new listener, then the old one drains."""
        old = self.listener
        sock: socket.socket | None = None
        try:
            sock = self.host.socket_for(self.app_id, key)
            tls = None if gen.plan.tls is None else CertReloader(
                gen.plan.tls, owner=self.app_id, on_problem=self.on_tls_problem or _no_problem)
        except Exception:
            if sock is not None:
                sock.close()
            gen.close()
            raise
        if self.on_tls_problem is not None:
            self.on_tls_problem(None)  # a pair that loads: nothing left to report
        switchboard = Switchboard(self.app_id, gen, stats=self.metrics.requests_for(self.app_id),
                                  access_log=self.settings.access_log)
        listener = Listener(address, switchboard, owner=self.app_id,
                            drain_timeout=self.settings.drain_timeout, sock=sock, tls=tls,
                            edge=self.settings.edge_limits(), key=key, shares=self.host.shares)
        try:
            await self.host.start(listener, old)
        except BaseException:
            gen.close()
            raise
        self.listener, self.switchboard = listener, switchboard
        if old is not None and not old.closed.is_set():
            self.tg.start_soon(self.host.close, old)

    def retire(self, gen: Generation | None) -> None:
        """Release `gen` once its in-flight requests finish (bounded by the drain timeout)."""
        if gen is not None:
            self.tg.start_soon(self._retire, gen, self.settings.drain_timeout)

    async def _retire(self, gen: Generation, drain_timeout: float) -> None:
        await gen.retire(drain_timeout)
        current = self.generation
        self.host.retired(gen, current if current is not gen else None)
        _COLLECTION.soon(self.tg)

    async def close(self) -> None:
        """The app is gone: unsubscribe, stop listening (every process at once), drain for at most
        a second."""
        if self.redis is not None:
            self.redis.close()
        if self.listener is not None:
            await self.host.drop(self.app_id, self.listener)
        if self.generation is not None:
            await self._retire(self.generation, 1.0)
