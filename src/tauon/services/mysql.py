"""Outbound MySQL for one app generation (crates/factor-outbound-mysql): a new connection per guest
`open` (Spin keeps no pool across instances), closed when the guest drops it, all of them closed when
the generation retires, at most `MAX_CONNECTIONS` open per app.

Client: PyMySQL. It is pure Python, so it installs everywhere without a C toolchain or libmysqlclient
headers, its timeouts and TLS are plain `socket`/`ssl` ones, and `LOAD DATA LOCAL` (a guest reading host
files) stays off. mysqlclient is faster per row, but a point query's time is the round trip, and it
needs Debian's build dependencies on every machine. Both interpolate parameters on the client: the
guest's `?` placeholders are replaced with PyMySQL's escaped literals (`placeholders.py`), so a
guest's statement means what it means to Spin's server-side prepared statements.

Values are mapped as Spin maps them (client.rs `convert_data_type`): integers by size and signedness,
FLOAT and DOUBLE, character columns as strings or bytes by their BINARY flag; other column types (DECIMAL,
dates, JSON, ...) fail the query with `value-conversion-failed` when a row holds a non-null value.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
from pymysql.constants import FIELD_TYPE, FLAG

from tauon.services.mysql_placeholders import PlaceholderError, bind
from tauon.services.watchdog import LateResult, SocketCut, Watchdog, call_before, cutoff

MAX_CONNECTIONS = 256
"""Open MySQL connections per app generation; beyond that `open` waits (bounded by the request)."""
CONNECT_TIMEOUT = 10.0
_SSL_KEYS = frozenset({"ssl-mode", "sslmode"})
_UNSIGNED = {FIELD_TYPE.INT24: "uint32", FIELD_TYPE.LONG: "uint32", FIELD_TYPE.LONGLONG: "uint64",
             FIELD_TYPE.SHORT: "uint16", FIELD_TYPE.TINY: "uint8"}
_SIGNED = {FIELD_TYPE.INT24: "int32", FIELD_TYPE.LONG: "int32", FIELD_TYPE.LONGLONG: "int64",
           FIELD_TYPE.SHORT: "int16", FIELD_TYPE.TINY: "int8"}
_TEXTUAL = {FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING}
_ENCODERS: dict[Any, Any] = {k: v for k, v in pymysql.converters.conversions.items() if isinstance(k, type)}
"""PyMySQL's parameter escapers only: results stay the server's text (or bytes) and map as Spin maps."""


class MysqlError(Exception):
    """A failed call as the v2 rdbms `error` variant (kind, text)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(kind, text)
        self.kind = kind
        self.text = text

    def variant(self) -> tuple[str, str]:
        return (self.kind, self.text)


def data_type(field: Any) -> str:
    """Spin's `db-data-type` for a result column (PyMySQL's field descriptor)."""
    code, flags = field.type_code, field.flags
    if code == FIELD_TYPE.DOUBLE:
        return "floating64"
    if code == FIELD_TYPE.FLOAT:
        return "floating32"
    if code in _SIGNED:
        return _UNSIGNED[code] if flags & FLAG.UNSIGNED else _SIGNED[code]
    binary = bool(flags & FLAG.BINARY)
    if code == FIELD_TYPE.BLOB:
        return "binary" if binary else "str"  # TEXT columns are BLOBs without the flag
    if code in (FIELD_TYPE.LONG_BLOB, FIELD_TYPE.MEDIUM_BLOB):
        return "binary"
    if code in _TEXTUAL:
        return "binary" if binary else "str"
    return "other"


_RANGES = {"int8": (-(1 << 7), 1 << 7), "int16": (-(1 << 15), 1 << 15), "int32": (-(1 << 31), 1 << 31),
           "int64": (-(1 << 63), 1 << 63), "uint8": (0, 1 << 8), "uint16": (0, 1 << 16),
           "uint32": (0, 1 << 32), "uint64": (0, 1 << 64)}


def _value(raw: Any, dtype: str, column: str) -> Any:
    """One non-null column value as a `db-value`. Raises MysqlError (value-conversion-failed)."""
    try:
        if dtype in _RANGES:
            number = int(raw)
            low, high = _RANGES[dtype]
            if not low <= number < high:
                raise ValueError(f"{number} does not fit {dtype}")
            return (dtype, number)
        if dtype in ("floating32", "floating64"):
            return (dtype, float(raw))
        if dtype == "str":
            return ("str", raw if isinstance(raw, str) else bytes(raw).decode())
        if dtype == "binary":
            return ("binary", raw.encode() if isinstance(raw, str) else bytes(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MysqlError("value-conversion-failed", f"Couldn't convert the value in column {column}: "
                                                    f"{exc}") from None
    raise MysqlError("value-conversion-failed",
                     f"Cannot convert value {raw!r} in column {column} data type Other")


def parse_address(address: str) -> dict[str, Any]:
    """PyMySQL's connect() arguments for a `mysql://user:password@host:port/db?ssl-mode=...` URL.
    Raises MysqlError (connection-failed)."""
    try:
        url = urlsplit(address)
        port = url.port or 3306
    except ValueError as exc:
        raise MysqlError("connection-failed", f"invalid address: {exc}") from None
    if url.scheme != "mysql" or not url.hostname:
        raise MysqlError("connection-failed", "invalid address: expected mysql://user:password@host/db")
    query = dict(parse_qsl(url.query))
    use_tls = any(k.lower() in _SSL_KEYS and v.lower() != "disabled" for k, v in query.items())
    return {
        "host": url.hostname, "port": port, "user": unquote(url.username or ""),
        "password": unquote(url.password or ""), "database": unquote(url.path.lstrip("/")) or None,
        # Spin: TLS (verified, system roots) only when ssl-mode asks for it; never TLS otherwise.
        "ssl": ssl.create_default_context() if use_tls else None, "ssl_disabled": not use_tls,
    }


class MysqlConnection:
    def __init__(self, clients: MysqlClients, conn: pymysql.connections.Connection[Any]) -> None:
        self._clients = clients
        self.conn = conn
        self.closed = False
        self._cut = SocketCut(conn._sock.fileno())  # type: ignore[attr-defined]  # PyMySQL's socket

    def query(self, statement: str, params: Sequence[Any], deadline: float) -> tuple[list[Any], list[Any]]:
        """(columns as (name, data type), rows of db-values). Raises MysqlError."""
        cur = self._run(statement, params, deadline)
        fields = cur._result.fields if cur._result is not None else []  # the fields carry the flags
        types = [data_type(f) for f in fields]
        names = [f.name for f in fields]
        rows = [["db-null" if v is None else _value(v, t, n)
                 for v, t, n in zip(row, types, names, strict=True)] for row in cur.fetchall()]
        return list(zip(names, types, strict=True)), rows

    def execute(self, statement: str, params: Sequence[Any], deadline: float) -> None:
        self._run(statement, params, deadline)

    def _run(self, statement: str, params: Sequence[Any], deadline: float) -> Any:
        try:
            sql = bind(statement, [_param(p) for p in params], self.conn.escape)
        except PlaceholderError as exc:
            raise MysqlError("query-failed", str(exc)) from None
        cur = self.conn.cursor()
        with self._clients.watchdog.guard(cutoff(deadline), self._cut.cut):
            try:
                cur.execute(sql)
            except pymysql.MySQLError as exc:
                if getattr(self.conn, "_sock", None) is None:  # PyMySQL let the connection go
                    self._cut.close()
                raise MysqlError("query-failed", _error_text(exc)) from None
        return cur

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._clients.forget(self)
            with contextlib.suppress(pymysql.MySQLError):
                self.conn.close()
            self._cut.close()


def _param(value: Any) -> Any:
    """A rdbms `parameter-value` as a Python value PyMySQL escapes."""
    if isinstance(value, str):
        return None  # db-null
    return value[1]


def _error_text(exc: BaseException) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"Server(ServerError {{ code: {args[0]}, message: {args[1]!r} }})"
    return f"{type(exc).__name__}({exc})"


def _connect(options: dict[str, Any]) -> pymysql.connections.Connection[Any]:
    """Connect with every step of the handshake bounded; statements are bounded by the watchdog."""
    try:
        conn = pymysql.connect(**options, connect_timeout=CONNECT_TIMEOUT, read_timeout=CONNECT_TIMEOUT,
                               write_timeout=CONNECT_TIMEOUT, autocommit=True, charset="utf8mb4",
                               local_infile=False, conv=_ENCODERS, read_default_file=None)
    except (pymysql.MySQLError, OSError, ssl.SSLError) as exc:
        raise MysqlError("connection-failed", _error_text(exc)) from None
    # From here the watchdog bounds each statement by the request's deadline instead.
    conn._read_timeout = conn._write_timeout = None  # type: ignore[attr-defined]
    return conn


def _close_quietly(conn: pymysql.connections.Connection[Any]) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        conn.close()


class MysqlClients:
    """Every MySQL connection of one app generation. Thread-safe."""

    def __init__(self, watchdog: Watchdog | None = None, *, max_connections: int | None = None) -> None:
        """`max_connections`: the runtime config's `[outbound_mysql]` bound (else MAX_CONNECTIONS)."""
        self.watchdog = watchdog or Watchdog.shared()
        self._limit = max_connections or MAX_CONNECTIONS
        self._lock = threading.Condition()
        self._open: set[MysqlConnection] = set()
        self._pending = 0
        self._closed = False

    def connect(self, address: str, deadline: float) -> MysqlConnection:
        """Raises MysqlError (connection-failed)."""
        options = parse_address(address)
        with self._lock:
            while len(self._open) + self._pending >= self._limit:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise MysqlError("connection-failed", "too many connections")
                self._lock.wait(left)
            self._pending += 1
        late = MysqlError("connection-failed", "connection timed out: the request's time is up")
        try:
            if cutoff(deadline) <= time.monotonic():
                raise late
            try:
                conn = call_before(cutoff(deadline), lambda: _connect(options), _close_quietly)
            except LateResult:
                raise late from None
            try:
                handle = MysqlConnection(self, conn)
            except OSError as exc:  # out of descriptors
                _close_quietly(conn)
                raise MysqlError("connection-failed", f"cannot hold the connection's socket: {exc}") from None
            with self._lock:
                self._open.add(handle)
            if self._closed:
                handle.close()
                raise MysqlError("connection-failed", "the app is stopping")
            return handle
        finally:
            with self._lock:
                self._pending -= 1
                self._lock.notify()

    def forget(self, handle: MysqlConnection) -> None:
        with self._lock:
            self._open.discard(handle)
            self._lock.notify()

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            handles = list(self._open)
            self._lock.notify_all()
        for handle in handles:
            handle.close()
