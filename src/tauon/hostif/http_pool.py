"""Keep-alive connections for outbound HTTP, pooled per origin as Spin pools them, but bounded.

Spin's outbound HTTP clients (hyper-util's legacy `Client`, one per app) keep a finished connection
for the next request to the same origin: unlimited idle connections per host, closed after 90 s
idle. tauon does the same with `http.client` connections, per component of a generation (closed when
the generation retires; one idle for 90 s is closed at the pool's next use instead of being reused),
with bounds Spin does not have: at most MAX_IDLE_PER_ORIGIN idle connections
per origin and MAX_IDLE in all. A pooled connection the server has closed meanwhile (readable while
idle) is discarded at checkout rather than used.

`TAUON_OUTBOUND_HTTP_POOLING=0` turns pooling off (a new connection per request, as Spin's
`connection_pooling = false`): a diagnostic, and the reference the benchmark compares against.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from functools import partial

from tauon.hostif.http_response import FastResponse
from tauon.runtimeconfig import networks
from tauon.runtimeconfig.networks import BlockedNetworks

IDLE_TIMEOUT = 90.0
"""Seconds an idle connection is kept (hyper-util's default `pool_idle_timeout`)."""
MAX_IDLE_PER_ORIGIN = 32
MAX_IDLE = 256
POOLING_ENV = "TAUON_OUTBOUND_HTTP_POOLING"

Origin = tuple[str, str, int]
"""(scheme, host, port) of the connection actually made."""


def pooling_enabled() -> bool:
    return os.environ.get(POOLING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def open_connection(origin: Origin, timeout: float, *, blocked: BlockedNetworks | None = None,
                    tls: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """A new connection to `origin`, connected (raises OSError / ssl.SSLError; DestinationBlocked when
    every address of the host is in `blocked`). `tls`: the context for https (None: system roots)."""
    scheme, host, port = origin
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls or _tls_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.response_class = FastResponse
    if blocked is not None and not blocked.empty:
        # http.client's hook for making the socket: connect only to addresses the blocklist keeps
        conn._create_connection = partial(networks.connect, blocked)  # type: ignore[attr-defined]
    conn.connect()
    if conn.sock is not None:  # a streamed request body must not wait for the server's delayed ACK
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


_TLS: list[ssl.SSLContext] = []


def _tls_context() -> ssl.SSLContext:
    if not _TLS:  # made once: loading the system roots costs milliseconds
        _TLS.append(ssl.create_default_context())
    return _TLS[0]


def _stale(conn: http.client.HTTPConnection) -> bool:
    """True if the server closed (or wrote to) an idle connection: it cannot carry a new request."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpPool:
    """Thread-safe: client threads of many requests check connections in and out."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = pooling_enabled() if enabled is None else enabled
        self._idle: OrderedDict[Origin, deque[tuple[http.client.HTTPConnection, float]]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()
        self._closed = False
        self.created = 0
        """Connections opened so far (the pooling tests and the benchmark read it)."""

    def checkout(self, origin: Origin) -> http.client.HTTPConnection | None:
        """An idle connection to `origin` that still works, or None."""
        now = time.monotonic()
        discard: list[http.client.HTTPConnection] = []
        found = None
        with self._lock:
            idle = self._idle.get(origin)
            while idle and found is None:
                conn, since = idle.pop()  # the most recently used: the likeliest to be alive
                self._count -= 1
                if now - since > IDLE_TIMEOUT or _stale(conn):
                    discard.append(conn)
                else:
                    found = conn
            if idle is not None and not idle:
                del self._idle[origin]
        for conn in discard:
            conn.close()
        return found

    def checkin(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        """A connection whose response was read to the end and that the server keeps open."""
        evicted: list[http.client.HTTPConnection] = [conn]
        with self._lock:
            if self.enabled and not self._closed:
                evicted = self._expire(time.monotonic())
                idle = self._idle.setdefault(origin, deque())
                self._idle.move_to_end(origin)
                if len(idle) >= MAX_IDLE_PER_ORIGIN:
                    evicted.append(idle.popleft()[0])
                    self._count -= 1
                if self._count >= MAX_IDLE:
                    evicted += self._evict_oldest()
                idle.append((conn, time.monotonic()))
                self._count += 1
        for old in evicted:
            old.close()

    def _expire(self, now: float) -> list[http.client.HTTPConnection]:
        out = []
        for origin in list(self._idle):
            idle = self._idle[origin]
            while idle and now - idle[0][1] > IDLE_TIMEOUT:
                out.append(idle.popleft()[0])
                self._count -= 1
            if not idle:
                del self._idle[origin]
        return out

    def _evict_oldest(self) -> list[http.client.HTTPConnection]:
        origin = next(iter(self._idle))
        idle = self._idle[origin]
        conn = idle.popleft()[0]
        self._count -= 1
        if not idle:
            del self._idle[origin]
        return [conn]

    def idle_count(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        """The generation is retired: close every idle connection; later check-ins close theirs."""
        with self._lock:
            self._closed = True
            idle, self._idle, self._count = self._idle, OrderedDict(), 0
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()
