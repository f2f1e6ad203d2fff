"""Accepting on an app's listening socket: every waiting connection at once, and, where several
serving processes share the socket, each new connection to the process holding the fewest
(server/balance.py).

uvloop's own accept (libuv's, since 1.45) takes one connection per turn of the event loop, so that
accepting never starves the rest of the loop. A loop busy serving takes several milliseconds a turn:
wrk's 64 new connections then took 64 turns to be accepted, the last one's first request waited over
a second, and that ramp alone set a 10-second run's p99. This acceptor takes up to `BATCH` waiting
connections per wake-up (accept itself is a few microseconds each).

With other processes on the same socket (a `Share`), it takes a connection only while this process
holds no more of the socket's connections than any other process accepting there, or less than its
even part of those open and those queued (a burst is split in one pass per process); otherwise it
steps aside: it stops watching the
socket (it must not spin on a socket that stays readable) until it holds no more than the others
again. It learns that when one of its own connections closes, when another process steps aside in
turn (which wakes it through its eventfd, so two processes never both stand aside while connections
wait), and, as a fallback, every `TICK`. If the others accept nothing for `DEFER` meanwhile, they are
stuck (a loop blocked in a long host call, a dying worker) and this process takes everything waiting:
a connection waits at most about `DEFER` + `TICK` for a balanced place, never for a process that does
not come.

Each accepted connection is handed to the loop with `connect_accepted_socket` (TLS included), and
the protocol reports when it closes (`Ticket`), so the counts stay exact.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import struct
from collections.abc import Callable

from tauon.server.balance import Share

log = logging.getLogger("tauon.listener")

TICK = 0.005
"""How often a process that stepped aside looks at the board again when nothing wakes it sooner."""
DEFER = 0.025
"""How long the others may take nothing while connections wait before a busier process takes them:
longer than a busy loop's turn (a small guest run on the loop may hold it for an epoch tick, 10-20 ms),
so a slow process is not taken for a stuck one."""
BATCH = 64
"""Connections taken per wake-up at most, so one burst cannot hold the loop."""
RETRY_AFTER = 1.0
"""Out of descriptors or memory: stop accepting for this long (asyncio's own pause)."""
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_TCP_INFO_QUEUED = struct.Struct("=I")
"""Linux's tcp_info of a listening socket: `tcpi_unacked` (offset 24) is its accept queue's length."""


def queued(sock: socket.socket) -> int:
    """Connections waiting in a listening TCP socket's accept queue; 0 where it cannot be read."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    except (OSError, AttributeError):
        return 0
    return _TCP_INFO_QUEUED.unpack_from(info, 24)[0] if len(info) >= 28 else 0


class Ticket:
    """One accepted connection's place in its process's count; given back once (on close, or when
    the connection never got going)."""

    __slots__ = ("_acceptor",)

    def __init__(self, acceptor: Acceptor) -> None:
        self._acceptor: Acceptor | None = acceptor

    def close(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.closed_one()


class Acceptor:
    """Looks like an `asyncio.Server` to uvicorn (`close`, `wait_closed`), which stops it on shutdown.
    The socket itself stays the listener's to close."""

    def __init__(self, sock: socket.socket, protocol_factory: Callable[[], asyncio.Protocol],
                 share: Share | None, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.share = share
        self.ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._paused = False
        self._others = 0
        self._since = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.share is not None:
            self.share.shares.listen(self._loop)
            self.share.start()
        self._watch()

    def _watch(self) -> None:
        assert self._loop is not None
        if not self._closed and not self._paused and not self._watching:
            self._loop.add_reader(self.sock.fileno(), self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._watching = False

    def _readable(self) -> None:
        for _ in range(BATCH):
            if self._busier():
                self._step_aside()
                return
            if not self._accept_one():
                return

    def _busier(self) -> bool:
        """Whether to leave the next connection to another process; the queue is read only when the
        counts alone say so (a system call)."""
        share = self.share
        return share is not None and share.busier() and share.busier(queued(self.sock))

    def _step_aside(self) -> None:
        """Stop watching the socket until this process is no longer the busier one: its own
        connection closes, or another process wakes it (stepping aside itself), or every `TICK` it
        looks at the board. If the others take nothing for DEFER while it stands aside, it takes
        what waits."""
        assert self._loop is not None and self.share is not None
        self._unwatch()
        self._others = self.share.others_accepted()
        self._since = self._loop.time()
        self.share.step_aside(self._look_again)
        self._timer = self._loop.call_later(TICK, self._look_again)

    def _come_back(self) -> None:
        assert self.share is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.share.step_aside(None)
        self._watch()

    def _look_again(self) -> None:
        assert self._loop is not None and self.share is not None
        if self._closed or not self.share.aside:
            return
        if not self._busier():
            self._come_back()
            return
        others, now = self.share.others_accepted(), self._loop.time()
        if others != self._others:  # they are taking connections: leave them to it
            self._others, self._since = others, now
        elif now - self._since >= DEFER:  # they took nothing: take what waits rather than wait on
            for _ in range(BATCH):
                if not self._accept_one():
                    break
            self._come_back()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(TICK, self._look_again)

    def closed_one(self) -> None:
        """A connection this acceptor took has closed (its Ticket)."""
        assert self.share is not None
        self.share.let_go()
        if self.share.aside:
            self._look_again()

    def _accept_one(self) -> bool:
        """Accept one connection; False when none waits (or accepting has to pause)."""
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionAbortedError:
            return True  # that client gave up already; look at the next
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRORS:
                log.error("cannot accept on %s: %s; pausing accepts for %g s", _name(self.sock),
                          exc.strerror, RETRY_AFTER)
                self._pause()
                return False
            raise
        ticket: Ticket | None = None
        if self.share is not None:
            ticket = Ticket(self)
            self.share.took()
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            # As asyncio's own accept does: Nagle + delayed ACKs would add ~40 ms to keep-alive replies.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self._loop is not None
        task = self._loop.create_task(self._connect(conn, ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _pause(self) -> None:
        assert self._loop is not None
        self._unwatch()
        self._paused = True
        self._loop.call_later(RETRY_AFTER, self._resume)

    def _resume(self) -> None:
        self._paused = False
        self._watch()

    async def _connect(self, conn: socket.socket, ticket: Ticket | None) -> None:
        assert self._loop is not None

        def protocol() -> asyncio.Protocol:
            proto = self.protocol_factory()
            proto.ticket = ticket  # type: ignore[attr-defined]  # given back in connection_lost
            return proto

        try:
            await self._loop.connect_accepted_socket(protocol, conn, ssl=self.ssl_context)
        except Exception as exc:  # a failed TLS handshake, a client gone before it started
            log.debug("connection on %s ended before it started: %r", _name(self.sock), exc)
            if ticket is not None:
                ticket.close()
            conn.close()

    # -- what uvicorn calls on shutdown ------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.share is not None:
            self.share.stop()

    async def wait_closed(self) -> None:
        if self._tasks:  # connections still being set up (a TLS handshake) finish first
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _name(sock: socket.socket) -> str:
    try:
        return str(sock.getsockname())
    except OSError:
        return "a closed socket"
