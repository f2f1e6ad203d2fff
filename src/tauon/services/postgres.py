"""Outbound PostgreSQL for one app generation: connection pools per address, as Spin keeps them
(crates/factor-outbound-pg/src/client.rs: up to 64 connections per address, 16 addresses, "clean"
recycling), closed when the generation retires.

Client: psycopg 3 (its binary wheel: libpq plus a C extension). It is the maintained PostgreSQL driver
for Python, speaks the extended protocol with binary results (so each column type is read exactly, as
Spin's tokio-postgres reads it); guests' statements go to libpq with their `$1` placeholders unchanged
(`services/pg_exec.py`, which runs them below psycopg's cursors, for speed). asyncpg
is faster on bulk rows but async-only, while guests call from their own threads and block anyway.

Guest addresses are untrusted (services/pg_address.py): only the connection options tokio-postgres
knows are accepted, and every option libpq would otherwise take from tauon's environment or files
(PGPASSWORD, ~/.pgpass, service files, client certificates) is set explicitly. TLS follows
tokio-postgres with native-tls: `sslmode` `disable`, `prefer` (the default: TLS with a verified
certificate when the server offers it) or `require` (verified TLS); certificates are checked against
the system roots and the host name.

Every wait is bounded: connecting by `CONNECT_TIMEOUT` (and the request's deadline), a statement by
the request's deadline, after which its socket is shut down so libpq returns at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq

from tauon.services import pg_types
from tauon.services.pg_address import PgError as PgError
from tauon.services.pg_address import connection_failed
from tauon.services.pg_address import parse_address as parse_address
from tauon.services.pg_exec import CopyRefused, Statements
from tauon.services.watchdog import GUEST_MARGIN as GUEST_MARGIN
from tauon.services.watchdog import LateResult, SocketCut, Watchdog, call_before, cutoff

POOL_SIZE = 64
"""Connections per address (Spin's CONNECTION_POOL_SIZE)."""
POOL_ADDRESSES = 16
"""Addresses with a pool kept (Spin's CONNECTION_POOL_CACHE_CAPACITY); the least recently used goes."""
CONNECT_TIMEOUT = 10.0
_CLEAN = (b"CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
          b"SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;")
"""deadpool-postgres' RecyclingMethod::Clean, run when a connection is taken from the pool again."""
_ADAPTERS = pg_types.make_adapters()


class _Conn:
    """A pooled connection: psycopg's, the socket tauon cuts it with, and its statement runner (with
    the statements it prepared, which live as long as the server session)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        try:
            self.cut = SocketCut(conn.pgconn.socket)
        except OSError as exc:  # out of descriptors
            conn.close()
            raise connection_failed(f"cannot hold the connection's socket: {exc}") from None
        self.statements: Statements | None = None

    def close(self) -> None:
        self.conn.close()
        self.cut.close()


@dataclass
class _Pool:
    key: str
    options: dict[str, str]
    idle: list[_Conn]
    busy: int = 0


class PgConnection:
    """A connection checked out by one guest handle; `release` gives it back to its pool."""

    def __init__(self, clients: PgClients, pool: _Pool, pooled: _Conn) -> None:
        self._clients = clients
        self.pool = pool
        self.pooled = pooled
        self.conn = pooled.conn
        self._broken = False
        self._armed: int | None = None
        """The watchdog's entry for this handle (see `_guard`), armed for `_armed_for`."""
        self._armed_for = 0.0

    @property
    def broken(self) -> bool:
        """Not to be given back to the pool: lost, cut at a deadline, or left mid-COPY."""
        return self._broken or self.pooled.cut.cut_down

    def _run(self, statement: str, params: Sequence[Any], deadline: float,
             bad: str) -> tuple[Statements, Any]:
        """Run a statement, cut at the deadline's cutoff: (its runner, libpq's result). `bad`: the
        error kind of a parameter Spin cannot send. Raises PgError."""
        try:
            values = [pg_types.to_param(p) for p in params]
        except pg_types.ParamError as exc:
            raise PgError(bad, str(exc)) from None
        statements = self.pooled.statements
        if statements is None:
            statements = self.pooled.statements = Statements(self.conn)
        self._guard(deadline)
        try:
            return statements, statements.run(statement.encode(), values)
        except CopyRefused as exc:
            self._broken = True
            raise PgError("query-failed", ("text", str(exc))) from None
        except psycopg.Error as exc:
            raise self._query_failed(exc) from None
        finally:
            self.pooled.cut.end()

    def _guard(self, deadline: float) -> None:
        """Bound the statement about to run by the deadline's cutoff. The watchdog is armed once per
        handle and deadline, not per statement (its lock and heap cost a fast select's tenth): at the
        cutoff it cuts whatever statement is running then (`SocketCut.cut_running`), and a statement
        that starts after the cutoff is cut here, before it is sent. The time is read after the run
        begins, so a cutoff passing in between is seen by one side or the other."""
        if self._armed is None or deadline != self._armed_for:
            watchdog = self._clients.watchdog
            if self._armed is not None:
                watchdog.disarm(self._armed)
            self._armed = watchdog.arm(cutoff(deadline), self.pooled.cut.cut_running)
            self._armed_for = deadline
        self.pooled.cut.begin()
        if time.monotonic() >= cutoff(deadline):
            self.pooled.cut.cut()

    def query(self, statement: str, params: Sequence[Any], deadline: float) -> tuple[list[Any], list[Any]]:
        """(columns as (name, v4 data type), rows of v4 db-values). Raises PgError."""
        statements, result = self._run(statement, params, deadline, "bad-parameter")
        if not result.ntuples:  # Spin reads the column types from the first row: no row, no columns
            return [], []
        try:
            rows = statements.rows(result)
            columns = pg_types.columns(result, self._type_name)
        except psycopg.Error as exc:
            raise self._query_failed(exc) from None
        convert = pg_types.converters(tuple([t for _, t in columns]))
        size = 0
        out = []
        value_size = pg_types.value_size
        for row in rows:
            out.append(["db-null" if v is None else c(v) for c, v in zip(convert, row, strict=True)])
            size += sum(map(value_size, row))
            if size > pg_types.MAX_RESULT_BYTES:
                raise PgError("query-failed", ("text", "query result exceeds limit of "
                                                       f"{pg_types.MAX_RESULT_BYTES} bytes"))
        return columns, out

    def execute(self, statement: str, params: Sequence[Any], deadline: float) -> int:
        """Rows affected. Raises PgError."""
        # Spin's execute path reports unsendable parameters as conversion failures
        _, result = self._run(statement, params, deadline, "value-conversion-failed")
        return max(result.command_tuples or 0, 0)

    def _type_name(self, oid: int) -> str:
        info = psycopg.postgres.types.get(oid)
        if info is not None:
            return info.name
        row = self.conn.execute("SELECT typname FROM pg_type WHERE oid = %s", [oid]).fetchone()
        return str(row[0]) if row else str(oid)

    def _query_failed(self, exc: psycopg.Error) -> PgError:
        if self.conn.closed or self.conn.pgconn.status != pq.ConnStatus.OK:
            self._broken = True  # not given back to the pool
            self.pooled.cut.close()  # libpq let its socket go: so does tauon, now
        diag = exc.diag
        if diag.sqlstate is None:  # no answer from the server: a lost connection or the watchdog's cut
            text = str(exc).strip() or type(exc).__name__
            if self.pooled.cut.cut_down:
                text = f"no answer before the request's deadline: {text}"
            return PgError("query-failed", ("text", text))
        severity = diag.severity_nonlocalized or diag.severity or "ERROR"
        as_text = f"db error: {severity}: {diag.message_primary or ''}"
        if diag.message_detail:
            as_text += f"\nDETAIL: {diag.message_detail}"
        extras = [(name, value) for name, value in (
            ("column", diag.column_name), ("constraint", diag.constraint_name),
            ("routine", diag.source_function), ("hint", diag.message_hint), ("table", diag.table_name),
            ("datatype", diag.datatype_name), ("schema", diag.schema_name), ("file", diag.source_file),
            ("line", diag.source_line), ("where_", diag.context)) if value is not None]
        return PgError("query-failed", ("db-error", (as_text, severity, diag.sqlstate,
                                                     diag.message_primary or "", diag.message_detail,
                                                     extras)))

    def release(self) -> None:
        if self._armed is not None:
            self._clients.watchdog.disarm(self._armed)
            self._armed = None
        self._clients.release(self)


class PgClients:
    """The app generation's PostgreSQL pools. Thread-safe: guests call from their own threads."""

    def __init__(self, watchdog: Watchdog | None = None, *, max_connections: int | None = None) -> None:
        """`max_connections`: the runtime config's `[outbound_pg]` bound on connections the app's
        guests hold at once (None: only the per-address pool size)."""
        self.watchdog = watchdog or Watchdog.shared()
        self._limit = max_connections
        self._lock = threading.Condition()
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._closed = False
        self._ca_dir: str | None = None

    def acquire(self, address: str, deadline: float, root_ca: str | None = None) -> PgConnection:
        """A connection to `address` (pooled, else new); `root_ca` (PEM) is trusted besides the system
        roots. Raises PgError (connection-failed)."""
        options = parse_address(address)
        key = address
        if root_ca is not None:
            digest = hashlib.sha256(root_ca.encode()).hexdigest()
            key = f"{address}\0{digest}"
            options["sslrootcert"] = self._ca_file(digest, root_ca)
        with self._lock:
            pool = self._pool(key, options)
            while (not pool.idle and pool.busy >= POOL_SIZE) or self._at_limit():  # Spin waits
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise connection_failed("too many connections")
                self._lock.wait(left)
            pool.busy += 1
            conn = pool.idle.pop() if pool.idle else None
        try:
            if conn is not None and not self._recycle(conn, deadline):
                conn = None
            if conn is None:
                conn = self._connect(pool.options, deadline)
        except BaseException:
            with self._lock:
                pool.busy -= 1
                self._lock.notify_all()
            raise
        return PgConnection(self, pool, conn)

    def _at_limit(self) -> bool:
        """The app holds `max_connections` (lock held)."""
        return self._limit is not None and sum(p.busy for p in self._pools.values()) >= self._limit

    def _ca_file(self, digest: str, pem: str) -> str:
        """A guest-supplied CA as the file libpq wants (private to this process, named by its hash)."""
        with self._lock:
            if self._ca_dir is None:
                self._ca_dir = tempfile.mkdtemp(prefix="tauon-pg-ca-")
        path = os.path.join(self._ca_dir, f"{digest}.pem")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as out:
                out.write(pem)
        return path

    def _pool(self, address: str, options: dict[str, str]) -> _Pool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = _Pool(address, options, [])
            while len(self._pools) > POOL_ADDRESSES:
                _, evicted = self._pools.popitem(last=False)
                _close_all(evicted.idle)
                evicted.idle.clear()
        self._pools.move_to_end(address)
        return pool

    def _recycle(self, pooled: _Conn, deadline: float) -> bool:
        conn = pooled.conn
        if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            pooled.close()
            return False
        try:
            with self.watchdog.guard(cutoff(deadline), pooled.cut.cut):
                # at libpq's level, as statements run (pg_exec.py): a cursor's machinery costs more
                # than the round trip; the same simple-query message either way
                result = conn.pgconn.exec_(_CLEAN)
            if result.status == pq.ExecStatus.COMMAND_OK:
                return True
        except psycopg.Error:
            pass
        pooled.close()
        return False

    def _connect(self, options: dict[str, str], deadline: float) -> _Conn:
        """A new connection, given up on at the statement cutoff (libpq counts whole seconds)."""
        if cutoff(deadline) <= time.monotonic():
            raise connection_failed("connection timed out: the request's time is up")
        try:
            return call_before(cutoff(deadline), lambda: _Conn(self._connect_now(options)), _Conn.close)
        except LateResult:
            raise connection_failed("connection timed out: the request's time is up") from None

    def _connect_now(self, options: dict[str, str]) -> psycopg.Connection[Any]:
        given = {k: v for k, v in options.items() if not k.startswith("_spin")}
        given["connect_timeout"] = str(int(CONNECT_TIMEOUT))
        try:
            return self._open(given)
        except psycopg.OperationalError as exc:
            text = str(exc).strip()
            if options["_spin_sslmode"] == "prefer" and "does not support SSL" in text:
                # tokio-postgres' prefer: plain only when the server offers no TLS
                given["sslmode"] = "disable"
                del given["sslrootcert"]
                try:
                    return self._open(given)
                except psycopg.OperationalError as again:
                    text = str(again).strip()
            raise connection_failed(text) from None

    @staticmethod
    def _open(options: dict[str, str]) -> psycopg.Connection[Any]:
        conninfo = psycopg.conninfo.make_conninfo("", **options)
        return psycopg.connect(conninfo, autocommit=True, context=_ADAPTERS)

    def release(self, handle: PgConnection) -> None:
        conn = handle.conn
        with self._lock:
            pool = handle.pool
            pool.busy -= 1
            keep = (not self._closed and not handle.broken and not conn.closed and len(pool.idle) < POOL_SIZE
                    and self._pools.get(pool.key) is pool)
            if keep:
                pool.idle.append(handle.pooled)
            self._lock.notify_all()
        if not keep:
            handle.pooled.close()

    def open_count(self) -> int:
        with self._lock:
            return sum(len(p.idle) + p.busy for p in self._pools.values())

    def close(self) -> None:
        """Close every idle connection; connections in use close when their guest lets go."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
            self._lock.notify_all()
        for pool in pools:
            _close_all(pool.idle)
        if self._ca_dir is not None:
            shutil.rmtree(self._ca_dir, ignore_errors=True)


def _close_all(conns: list[_Conn]) -> None:
    for conn in conns:
        conn.close()
