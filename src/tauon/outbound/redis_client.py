"""Outbound Redis for guests, as Spin's crates/factor-outbound-redis behaves, on redis-py.

Why redis-py: it is the maintained Python client (tauon depends on it already), and its synchronous
`Connection` lets each call run on the guest's own thread: one command, one reply, no hand-off to an
event loop or another thread (hiredis was measured and left out: its parser cannot tell a status reply
from a bulk string, which `execute` must, and the Python parser keeps up here).

As in Spin, every `open` makes a new connection (redis-rs' multiplexed connection per `open`), closed
when the guest drops it or its request ends; the app's connections are bounded (limits.py) and whatever
is still open when the generation retires is closed then. RESP2, as redis-rs speaks by default.

* Addresses are `redis://[user][:password@]host[:port][/db]` or `rediss://…`; anything else (including
  `unix://` sockets, which would reach into the host) is `invalid-address`.
* Every client or server error is `other(<text>)`, as Spin maps them (`type-error` only for `sadd`, on a
  reply that is not an integer). A connection that failed stays failed, as redis-rs' does.
* `execute` flattens nested arrays into one list as Spin does: nil, status (simple strings), int64 and
  binary (bulk strings); an error inside an array fails the call.
* `get` and `execute` results over 128 MiB fail with Spin's message (they were read, as in Spin).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis._parsers.resp2 import _RESP2Parser
from redis.utils import SENTINEL

from tauon.outbound.limits import CONNECT_TIMEOUT, MAX_CONNECTIONS, ConnectionLimit, OutboundError, remaining
from tauon.outbound.redis_address import RedisTarget, parse_address

MAX_RESULT_BYTES = 128 << 20
"""Spin's MAX_HOST_BUFFERED_BYTES."""
_RESULT_OVERHEAD = 32
"""Bytes counted per result besides its payload (Spin counts its in-memory enum size)."""

RedisResult = tuple[str, Any]
"""A `redis-result`: ('nil', None), ('status', str), ('int64', int) or ('binary', bytes)."""


class Status(str):
    """A simple-string reply (`+OK`), which RESP2 distinguishes from a bulk string."""


class _StatusParser(_RESP2Parser):
    """redis-py's RESP2 parser, keeping simple strings apart from bulk strings (it returns bytes for
    both). Simple strings, arrays, bulk strings and integers are read here (the common replies, in one
    pass); errors and anything unusual go back to the parent's parser unchanged."""

    def _read_response(self, disable_decoding: bool = False, timeout: Any = SENTINEL) -> Any:
        buffer = self._buffer
        assert buffer is not None
        pos = buffer.get_pos()
        raw = buffer.readline(timeout=timeout)
        kind = raw[:1]
        if kind == b"$" and raw != b"$-1":
            return buffer.read(int(raw[1:]), timeout=timeout)
        if kind == b":":
            return int(raw[1:])
        if kind == b"+":
            return Status(raw[1:].decode("utf-8", "replace"))
        if kind == b"*" and raw != b"*-1":
            return [self._read_response(disable_decoding, timeout) for _ in range(int(raw[1:]))]
        buffer.rewind(pos)
        return super()._read_response(disable_decoding=disable_decoding, timeout=timeout)


class RedisConnection:
    """One guest connection. Used by the guest's thread only; `close` may come from another thread
    (the generation retiring), which makes a pending call fail."""

    def __init__(self, target: RedisTarget, limit: ConnectionLimit) -> None:
        self.target = target
        self._limit = limit
        self._owner = threading.get_ident()
        self._closed = False
        self._disconnected = False
        cls = redis.SSLConnection if target.tls else redis.Connection
        self._conn = cls(host=target.host, port=target.port, db=target.db, username=target.username,
                         password=target.password, socket_timeout=CONNECT_TIMEOUT,
                         socket_connect_timeout=CONNECT_TIMEOUT, parser_class=_StatusParser, protocol=2,
                         driver_info=None, retry=None)

    def connect(self, deadline: float) -> None:
        timeout = min(CONNECT_TIMEOUT, remaining(deadline))
        if timeout <= 0:
            raise OutboundError("other", f"no time left to connect to {self.target.where}")
        # Connect and AUTH/SELECT within what the request has left.
        self._conn.socket_connect_timeout = self._conn.socket_timeout = timeout
        try:
            self._conn.connect()  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            raise OutboundError("other", str(exc)) from None

    def call(self, deadline: float, *args: Any) -> Any:
        """Send one command and read its reply within the request's time. Raises OutboundError."""
        if self._closed:
            raise OutboundError("other", "the connection was closed")
        sock = self._conn._sock  # redis-py keeps the socket here; None once the connection failed
        if sock is None:
            raise OutboundError("other", f"the connection to {self.target.where} is broken")
        timeout = remaining(deadline)
        if timeout <= 0:
            raise OutboundError("other", f"no time left for a reply from {self.target.where}")
        try:
            sock.settimeout(timeout)  # the send and the reply both end before the request's deadline
            self._conn.send_command(*args, check_health=False)
            return self._conn.read_response()
        except redis.RedisError as exc:
            raise OutboundError("other", str(exc)) from None
        except OSError as exc:
            self._conn.disconnect()
            raise OutboundError("other", f"connection to {self.target.where} failed: {exc}") from None

    def close(self) -> None:
        """On the guest's thread: disconnect. From another thread (the generation retiring while the
        guest still runs) only shut the socket down: the guest's pending call fails, and its own
        close (when its request ends) disconnects."""
        self._closed = True
        try:
            if threading.get_ident() != self._owner:
                sock = self._conn._sock
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            elif not self._disconnected:
                self._disconnected = True
                self._conn.disconnect()  # type: ignore[no-untyped-call]
        finally:
            self._limit.release(self)

    # -- the typed operations of fermyon:spin/redis ------------------------------------------------

    def publish(self, deadline: float, channel: str, payload: bytes) -> None:
        self.call(deadline, "PUBLISH", channel, payload)

    def get(self, deadline: float, key: str) -> bytes | None:
        value = self.call(deadline, "GET", key)
        if value is not None and not isinstance(value, bytes):
            raise OutboundError("other", "Response was of incompatible type")
        if value is not None and len(value) + _RESULT_OVERHEAD > MAX_RESULT_BYTES:
            raise OutboundError("other", f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")
        return value

    def set(self, deadline: float, key: str, value: bytes) -> None:
        self.call(deadline, "SET", key, value)

    def incr(self, deadline: float, key: str) -> int:
        return _integer(self.call(deadline, "INCRBY", key, 1))

    def delete(self, deadline: float, keys: Sequence[str]) -> int:
        return _integer(self.call(deadline, "DEL", *keys))

    def sadd(self, deadline: float, key: str, values: Sequence[str]) -> int:
        reply = self.call(deadline, "SADD", key, *values)
        if not isinstance(reply, int):
            raise OutboundError("type-error")
        return reply

    def srem(self, deadline: float, key: str, values: Sequence[str]) -> int:
        return _integer(self.call(deadline, "SREM", key, *values))

    def smembers(self, deadline: float, key: str) -> list[str]:
        reply = self.call(deadline, "SMEMBERS", key)
        if not isinstance(reply, list):
            raise OutboundError("other", "Response was of incompatible type")
        try:
            return [bytes(member).decode("utf-8") for member in reply]
        except (UnicodeDecodeError, TypeError):
            raise OutboundError("other", "a set member is not a valid UTF-8 string") from None

    def execute(self, deadline: float, command: str,
                arguments: Sequence[tuple[str, Any]]) -> list[RedisResult]:
        """`arguments` are redis-parameters: ('int64', int) or ('binary', bytes)."""
        # The command as bytes: redis-py would split a str containing spaces into several arguments.
        args = [value for _case, value in arguments]
        results: list[RedisResult] = []
        _flatten(self.call(deadline, command.encode(), *args), results)
        if sum(_size(r) for r in results) > MAX_RESULT_BYTES:
            raise OutboundError("other", f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")
        return results


def _integer(reply: Any) -> int:
    if not isinstance(reply, int):
        raise OutboundError("other", "Response was of incompatible type")
    return reply


def _flatten(value: Any, out: list[RedisResult]) -> None:
    """Spin's conversion of a reply into redis-results (nested arrays appended in order)."""
    if value is None:
        out.append(("nil", None))
    elif isinstance(value, Status):
        out.append(("status", str(value)))
    elif isinstance(value, int):
        out.append(("int64", value))
    elif isinstance(value, bytes):
        out.append(("binary", value))
    elif isinstance(value, list):
        for item in value:
            _flatten(item, out)
    elif isinstance(value, redis.ResponseError):
        raise OutboundError("other", f"Server error: {value}")
    else:
        raise OutboundError("other", f"Could not convert Redis response of type {type(value).__name__}")


def _size(result: RedisResult) -> int:
    payload = result[1]
    return _RESULT_OVERHEAD + (len(payload) if isinstance(payload, str | bytes) else 0)


class RedisClients:
    """An app generation's outbound Redis: opens guest connections under the app's bound."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = ConnectionLimit(limit)

    def open(self, address: str, deadline: float) -> RedisConnection:
        """Raises OutboundError: invalid-address, too-many-connections, other (connect failed)."""
        conn = RedisConnection(parse_address(address), self.limit)
        if not self.limit.acquire(conn, deadline):
            raise OutboundError("too-many-connections")
        try:
            conn.connect(deadline)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def connection(self, address: str, deadline: float) -> Iterator[RedisConnection]:
        """One connection for one call (the v1 interfaces name the address in every call)."""
        conn = self.open(address, deadline)
        try:
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        self.limit.close()

