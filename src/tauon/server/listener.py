"""One long-lived embedded uvicorn server per address.

tauon binds the socket itself (a bind failure is an app error, not uvicorn's `sys.exit(3)`), turns off
uvicorn's signal capture (N servers in one process would fight over handlers; the daemon owns signals),
lifespan, the `server:` header that Spin does not send, and proxy-header rewriting. It accepts through
server/acceptor.py (every waiting connection at once, balanced between processes). The HTTP protocol
is server/httpproto.py; HTTPS (an app file's `tls`) is server/tls.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from collections.abc import Generator
from email.utils import formatdate

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from tauon.errors import BindError
from tauon.model.address import Address
from tauon.server.acceptor import Acceptor
from tauon.server.balance import KEYS, ProcessShares, Share
from tauon.server.httpproto import DEFAULT_EDGE, bounded_protocol
from tauon.server.tls import CertReloader
from tauon.settings import EdgeLimits

log = logging.getLogger("tauon.listener")


class _DatedState(uvicorn.server.ServerState):
    """uvicorn's per-server state, its `Date` header read from one clock for the whole process."""

    extra: list[tuple[bytes, bytes]] = []
    """The config's own default headers (none: tauon turns off `server:`)."""

    dated = True
    """The config's `date_header`."""

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return _date_header() + self.extra if self.dated else self.extra

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        pass  # only uvicorn's __init__ and on_tick set it, and tauon's servers never tick


_date: tuple[int, list[tuple[bytes, bytes]]] = (0, [])


def _date_header() -> list[tuple[bytes, bytes]]:
    global _date
    now = int(time.time())
    if _date[0] != now:  # a race between two threads only formats the same second twice
        _date = (now, [(b"date", formatdate(now, usegmt=True).encode())])
    return _date[1]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server, accepting through server/acceptor.py (all waiting connections at once), and
    woken only to stop: uvicorn's main loop wakes every server ten times a second, to refresh its
    `Date` header and look at `should_exit`. With 300 apps (two processes) that kept 23 % of a core
    busy while idle, against 4 % without."""

    share: Share | None = None
    """Set when other processes accept on the same socket: balance connections with them."""
    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _should_exit = False

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.server_state = _DatedState()

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._exit is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit.set)

    async def main_loop(self) -> None:
        state = self.server_state
        assert isinstance(state, _DatedState)
        state.extra, state.dated = list(self.config.encoded_headers), self.config.date_header
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        if not self._should_exit:
            await self._exit.wait()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if not sockets:
            await super().startup(sockets)
            return
        await super().startup([])  # everything but the accepting (lifespan is off)
        config = self.config

        def create_protocol() -> asyncio.Protocol:  # what uvicorn's own startup hands create_server
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state)

        for sock in sockets:
            acceptor = Acceptor(sock, create_protocol, self.share, ssl_context=config.ssl)
            acceptor.start()
            self.servers.append(acceptor)  # type: ignore[arg-type]  # uvicorn only closes and awaits it


def bind_socket(address: Address, *, file: str | None = None) -> socket.socket:
    host = address.host
    if host == "localhost":
        host = "127.0.0.1"  # Spin prefers IPv4 loopback for host names
    try:
        infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve host '{address.host}': {exc.strerror}", file=file,
                        field="address", hint="use an IP address or a resolvable host name") from None
    family, _, proto, _, sockaddr = infos[0]
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACKs add ~40 ms to every keep-alive response.
    sock = socket.socket(family, socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            hint = "another process (or another tauon app) listens there; free the port or change the address"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need privileges (CAP_NET_BIND_SERVICE)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = "this machine has no such address"
        else:
            hint = "check the address"
        error = BindError(f"cannot listen on {address}: {exc.strerror}", file=file, field="address",
                          hint=hint)
        error.in_use = exc.errno == errno.EADDRINUSE
        raise error from None
    return sock


class Listener:
    """Serves one ASGI app (an app's switchboard, or the admin endpoints) on one address.

    `owner` names who asked for the address in errors: an app file, or `--admin`. A worker process
    passes `sock`: the daemon's listening socket, already bound (workers/child.py), and `key`: the
    daemon's name for it. `tls`: serve HTTPS with that certificate (reloaded while the listener runs);
    `edge`: what one client connection may hold.
    """

    def __init__(self, address: Address, app: ASGIApp, *, owner: str, drain_timeout: float,
                 sock: socket.socket | None = None, tls: CertReloader | None = None,
                 edge: EdgeLimits = DEFAULT_EDGE, key: int | None = None,
                 shares: ProcessShares | None = None) -> None:
        self.address = address
        self.tls = tls
        self.edge = edge
        self.app = app
        self.owner = owner
        self.drain_timeout = drain_timeout
        self._own_key = key is None
        self.key = key if key is not None else KEYS.take(shares.board if shares is not None else None)
        """Names this listening socket to worker processes."""
        self.shares = shares
        self.sock = sock
        self._server: _EmbeddedServer | None = None
        self.closed = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind, serve until `stop()`, then close. `task_status.started()` once accepting."""
        try:
            sock = self.sock if self.sock is not None else bind_socket(self.address, file=self.owner)
            self.sock = sock
            config = uvicorn.Config(
                self.app,
                lifespan="off",
                server_header=False,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=max(1, round(self.drain_timeout)),
                timeout_keep_alive=5,
                http=bounded_protocol(self.edge),
                ws="none",  # Spin's HTTP trigger has no websockets: an upgrade is a plain request
                # Spin takes the client address and scheme from the connection; X-Forwarded-* are
                # ordinary headers for the guest (uvicorn would trust them from loopback).
                proxy_headers=False,
                ssl_context_factory=self._ssl_context if self.tls is not None else None,
            )
            server = _EmbeddedServer(config)
            if self.shares is not None:
                server.share = self.shares.share(self.key)
            self._server = server
            async with anyio.create_task_group() as tg:
                if self.tls is not None:
                    tg.start_soon(self.tls.watch)
                tg.start_soon(self._serve, server, sock, tg.cancel_scope)
                while not server.started:
                    if server.should_exit:
                        raise BindError(f"listener on {self.address} failed to start",
                                        file=self.owner)
                    await anyio.sleep(0.005)
                task_status.started()
        finally:
            if self._own_key:
                KEYS.release(self.key)
            self.closed.set()

    def _ssl_context(self, config: uvicorn.Config, default: object) -> ssl.SSLContext:
        assert self.tls is not None
        return self.tls.front

    async def _serve(self, server: _EmbeddedServer, sock: socket.socket, watchers: anyio.CancelScope) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn's exit paths must never end the daemon
            log.error("listener on %s exited", self.address)
            server.should_exit = True
        finally:
            sock.close()
            watchers.cancel()  # the certificate watch ends with the listener

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by the drain timeout), close."""
        if self._server is not None:
            self._server.should_exit = True
        await self.closed.wait()
