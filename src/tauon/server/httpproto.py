"""The HTTP/1.1 protocol tauon's listeners speak: uvicorn's httptools (llhttp) protocol, bounded.

httptools parses in C, several times cheaper per request than h11, which matters when the guest
itself takes microseconds. Unlike h11, llhttp accepts a request head of any size; a client could
stream headers forever into memory. This protocol bounds the head as Spin's hyper does: a head
(request line and headers) larger than `max_head` bytes, or with more than `MAX_HEADERS` fields, is
answered `431 Request Header Fields Too Large` and the connection closed.

Two counts enforce the size: bytes received while a head is incomplete (so a head that never ends is
cut off, as hyper cuts off its read buffer), and the head's own bytes once parsed (so one that arrives
in a single large read is measured too).

Time and numbers are bounded too (`EdgeLimits`): a connection that has not sent a whole head within
`head_timeout` of connecting or of the head's first byte is closed (hyper's header_read_timeout; this
ends idle and slowloris connections), a body that sends nothing for `body_timeout` while tauon would
read it is cut off, and past `max_connections` open connections in this process new ones are closed at
once, with a warning at most every 10 s. Between requests uvicorn's keep-alive timeout applies.

A connection closed while its client is still sending a request's body (a 413 before the body, a
guest's answer that did not read it) closes as nginx's lingering close does: the write side is shut,
what arrives is read and thrown away, and the socket closes at the client's end of stream, after
`LINGER_SECONDS`, or after `LINGER_BYTES`. Closing at once would leave unread bytes in the kernel,
which then answers with a reset that can overtake the response and discard it at the client. A head
over its limit (431) or malformed (400) is closed at once, as hyper does: that client is broken or
hostile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, cast

import httptools
from uvicorn.protocols.http import h11_impl, httptools_impl

from tauon.server import trailers
from tauon.server.acceptor import Ticket
from tauon.server.coalesce import CoalescingTransport
from tauon.server.trailers import TRAILERS_KEY, accepts_trailers
from tauon.settings import DEFAULT_MAX_REQUEST_HEAD, EdgeLimits

log = logging.getLogger("tauon.http")
DEFAULT_MAX_HEAD = DEFAULT_MAX_REQUEST_HEAD
"""hyper's default `max_buf_size` (408 KiB), the head size Spin accepts unless `--http1-max-buf-size`."""
MAX_HEADERS = 100
"""hyper's default header count limit (more: 431)."""
LINGER_SECONDS = 5.0
"""How long a lingering close reads and discards (nginx: lingering_timeout 5 s)."""
LINGER_BYTES = 64 * 1024 * 1024
"""How much a lingering close discards at most: enough for a client to see a response sent mid-upload
(a round trip of a fast link), far short of a body that was refused for its size."""
_LINE_OVERHEAD = len(b"OPTIONS  HTTP/1.1\r\n\r\n")
_FIELD_OVERHEAD = len(b": \r\n")

# Spin passes guest statuses 100..600 through; uvicorn's status tables stop at 599 and a KeyError
# there drops the connection. An empty reason phrase is what uvicorn uses for other unnamed codes.
httptools_impl.STATUS_LINE.setdefault(600, b"HTTP/1.1 600 \r\n")
h11_impl.STATUS_PHRASES.setdefault(600, b"")


DEFAULT_EDGE = EdgeLimits()


class HeadTooLarge(httptools.HttpParserError):
    pass


_warned: dict[tuple[str, str], float] = {}
"""When a client problem was last logged as a warning, per app and kind."""


class _Connections:
    """Client connections open in this process, across every listener."""

    live = 0
    warned_at = 0.0


class BoundedHttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    edge = DEFAULT_EDGE
    max_head = DEFAULT_MAX_HEAD
    _counted = False
    _timer: asyncio.TimerHandle | None = None
    _timer_kind = ""
    _body_seen = 0.0
    """loop.time() of the body's last bytes: chunks only note it; the one timer checks it when due."""
    coalescing: CoalescingTransport
    """This connection's transport, as every write sees it (server/coalesce.py)."""
    ticket: Ticket | None = None
    """This connection's place in the process's count for connection balance (server/acceptor.py)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # Every write of this connection (responses, 100 Continue, 4xx) goes through one coalescing
        # wrapper, so they stay in order.
        self.coalescing = CoalescingTransport(transport, self.loop)
        self.coalescing.on_close = self._linger
        super().connection_made(cast(asyncio.Transport, self.coalescing))
        if _Connections.live >= self.edge.max_connections:
            now = time.monotonic()
            if now - _Connections.warned_at >= 10:
                _Connections.warned_at = now
                log.warning("%d client connections are open in this process, the most --max-connections "
                            "allows: closing new ones until some end", _Connections.live)
            transport.close()
            return
        _Connections.live += 1
        self._counted = True
        self._arm("head", self.edge.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ticket is not None:
            self.ticket.close()
        if self._counted:
            self._counted = False
            _Connections.live -= 1
        self._disarm()
        super().connection_lost(exc)

    def _client_problem(self, what: str) -> None:
        """A client's mistake: at debug, naming the app, and a warning at most once a minute per
        app and kind (uvicorn warns on every request, naming nothing)."""
        app = getattr(self.app, "app_id", "?")
        now = time.monotonic()
        if now - _warned.get((app, what), -60.0) >= 60.0:
            _warned[app, what] = now
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            log.warning("%s: %s (from %s; further ones this minute at debug)", app, what, client)
        else:
            log.debug("%s: %s", app, what)

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._timer_kind = kind
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._lingering:
            self.coalescing.transport.close()
            return
        if self.transport.is_closing():
            return
        if self._timer_kind == "body":
            idle = self.loop.time() - self._body_seen
            if self.flow.read_paused or idle < self.edge.body_timeout:  # not reading, or bytes came
                wait = self.edge.body_timeout if self.flow.read_paused else self.edge.body_timeout - idle
                self._arm("body", wait)
                return
        self.logger.debug("closing a connection whose request %s took over %.0fs", self._timer_kind,
                          self.edge.head_timeout if self._timer_kind == "head" else self.edge.body_timeout)
        self.coalescing.close_now()  # a client out of time gets no lingering close

    _lingering = False
    _discarded = 0

    def _linger(self) -> bool:
        """Asked as the connection closes: True, and a lingering close, if the client may still be
        sending a request's body."""
        if self._in_head:
            return False  # between requests, or in a head (431, 400): nothing owed to the client
        self._lingering = True
        self._arm("linger", LINGER_SECONDS)
        transport = self.coalescing.transport
        if transport.can_write_eof():  # TLS has no half-close: the response is simply not followed
            transport.write_eof()  # sent once the buffered response has gone
        self.flow.resume_reading()
        return True
    _head_bytes = 0
    """Bytes of the current head parsed so far (request target, header names and values, framing)."""
    _received = 0
    """Bytes received since the current head began, while it is incomplete."""
    _fields = 0
    _in_head = True
    _head_open = False
    """A request head has begun and is not complete yet."""
    _too_large = False

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, except that a head over the limit is answered as hyper does,
        # without a warning per client (uvicorn logs every parser error as an invalid request).
        if self._lingering:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.coalescing.transport.close()
            return
        if self._in_head:
            self._received += len(data)
        elif self._timer is not None:
            self._body_seen = self.loop.time()  # per chunk: a note, not a new timer
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_large:  # httptools wraps what a callback raised: the flag says it was this
                self._reject()
                return
            msg = "Invalid HTTP request received."
            self._client_problem("malformed HTTP request: answered 400")
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            # Spin's HTTP trigger has no upgrades: the request is served as a plain one
            self._client_problem("Upgrade request: served as a plain HTTP request")
            return
        if self._in_head and self._received > self.max_head:
            self._reject()  # a head still incomplete after this many bytes
        elif self._in_head and (self._received or self._head_open) and self._timer is None:
            # Bytes of a head that is not complete yet (on a kept-alive connection: uvicorn's own
            # timer ended with them). A head that arrives whole in one read, as nearly all do,
            # needs no timer: one set and cancelled per request cost ~2 us.
            self._arm("head", self.edge.head_timeout)

    def on_message_begin(self) -> None:
        self._head_bytes, self._fields, self._in_head = _LINE_OVERHEAD, 0, True
        self._head_open = True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADERS:
            self._too_large = True
            raise HeadTooLarge(f"more than {MAX_HEADERS} header fields")
        self._count(len(name) + len(value) + _FIELD_OVERHEAD)
        if not self._in_head:  # after a chunked body: a trailer field, kept apart from the headers
            cast(dict[str, Any], self.scope)[TRAILERS_KEY].append((name.lower(), value))
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._received, self._head_open = False, 0, False
        if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
            self._body_seen = self.loop.time()  # a body follows: it must keep coming
            self._arm("body", self.edge.body_timeout)
        else:
            self._disarm()  # no body (GET, HEAD, ...): no timer for this request
        cast(dict[str, Any], self.scope)[TRAILERS_KEY] = []
        super().on_headers_complete()
        if self.cycle is not None and accepts_trailers(self.headers):
            trailers.install(self.cycle)  # before its ASGI task first runs

    def on_response_complete(self) -> None:
        self.coalescing.flush()  # the whole response in one send, before the next one starts
        super().on_response_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # the next bytes start the next request's head
        self._disarm()
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head:
            self._too_large = True  # raised inside a parser callback, this stops the parser
            raise HeadTooLarge(f"request head over {self.max_head} bytes")

    def _reject(self) -> None:
        """What hyper answers for a head over its limit: 431, no body, and the connection closed."""
        content = [httptools_impl.STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.append(b"content-length: 0\r\nconnection: close\r\n\r\n")
        self.transport.write(b"".join(content))
        self.transport.close()
        self.logger.debug("request head over %d bytes or %d fields: 431", self.max_head, MAX_HEADERS)


@functools.cache
def bounded_protocol(edge: EdgeLimits = DEFAULT_EDGE) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for these limits (uvicorn instantiates the class it is given)."""
    if edge == DEFAULT_EDGE:
        return BoundedHttpToolsProtocol
    return type("BoundedHttpToolsProtocolWithLimits", (BoundedHttpToolsProtocol,),
                {"edge": edge, "max_head": edge.max_head})
