"""One pooled connection's statements, run at libpq's level: psycopg's `pq` (PGconn) and its
`Transformer` (both in C in psycopg's binary package) rather than through a psycopg cursor.

Why: a cursor's Python-level machinery (query conversion, prepare bookkeeping, the wait loop and result
selection) costs about three times the client CPU of the statement itself: ~28 us against ~8 us per
point select on these machines. libpq's blocking calls release the GIL, and the watchdog's socket
shutdown (services/postgres.py) makes them return at once, as it did the cursor's wait.

Statements are prepared on their second run on a connection, under names of tauon's own, at most
`PREPARED` per connection (the least recently used is deallocated), and run prepared only outside a
transaction (inside one, a failing prepare or a stale plan would abort the guest's transaction). A
prepared statement the server no longer has (the guest ran DEALLOCATE or DISCARD ALL) or whose cached
plan no longer fits (its table changed) is forgotten and the statement runs once more, unprepared: the
guest sees no difference.
Spin's tokio-postgres prepares an unnamed statement on every call; a named one saves the server a parse
and plan per call and changes nothing a guest observes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

PREPARED = 64
"""Prepared statements kept per connection."""
SEEN = 256
"""Statements remembered as run once per connection (a second run prepares them)."""
_STALE = frozenset({"26000", "0A000"})
"""invalid_sql_statement_name (deallocated behind our back), feature_not_supported ("cached plan must
not change result type")."""
_OK = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY})
_COPY = frozenset({pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH})
_BINARY = pq.Format.BINARY
_IDLE = pq.TransactionStatus.IDLE
_FATAL = pq.ExecStatus.FATAL_ERROR

Key = tuple[bytes, tuple[int, ...]]


class CopyRefused(psycopg.ProgrammingError):
    """The statement started a COPY, which a guest's query or execute cannot carry: the connection is
    left mid-protocol and must not go back to the pool."""


class Statements:
    """Runs statements on one psycopg connection; one thread at a time (a guest handle's)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._pgconn = conn.pgconn
        self._tx = Transformer(conn)
        self._prepared: OrderedDict[Key, bytes] = OrderedDict()
        self._seen: OrderedDict[Key, None] = OrderedDict()
        self._next = 0

    def run(self, statement: bytes, values: list[Any]) -> pq.abc.PGresult:
        """Run `statement` with `values` (Python values, dumped as psycopg dumps a cursor's); the result,
        set as the transformer's current one (see `rows`). Raises psycopg.Error."""
        tx = self._tx
        params: Any = None  # psycopg's stubs disagree between dump_sequence and exec_params
        formats: list[pq.Format] | None = None
        types: tuple[int, ...] = ()
        if values:
            params = tx.dump_sequence(values, [PyFormat.AUTO] * len(values))
            types = tuple(tx.types or ())
            formats = list(tx.formats or ())
        key = (statement, types)
        name = None
        # Outside a transaction only: a failed prepare or a stale plan would abort the guest's one.
        if self._pgconn.transaction_status == _IDLE:
            name = self._prepared.get(key)
            if name is None and key in self._seen:
                name = self._prepare(key)
        if name is not None:
            self._prepared.move_to_end(key)
            result = self._pgconn.exec_prepared(name, params, formats, result_format=_BINARY)
            status = result.status
            if status == _FATAL and _sqlstate(result) in _STALE:
                self._forget(key)
                name = None
        if name is None:
            self._remember(key)
            result = self._pgconn.exec_params(statement, params, list(types) or None, formats,
                                              result_format=_BINARY)
            status = result.status
        if status not in _OK:
            _check(result)
        tx.set_pgresult(result)
        return result

    def rows(self, result: pq.abc.PGresult) -> list[tuple[Any, ...]]:
        """The rows of the result `run` returned last, loaded as psycopg loads them."""
        return self._tx.load_rows(0, result.ntuples, tuple) if result.ntuples else []

    def _remember(self, key: Key) -> None:
        seen = self._seen
        seen[key] = None
        seen.move_to_end(key)
        if len(seen) > SEEN:
            seen.popitem(last=False)

    def _prepare(self, key: Key) -> bytes | None:
        """Prepare a statement run before; None when the server refuses (it then runs unprepared, and
        reports its own error)."""
        self._next += 1
        name = f"_tauon_{self._next}".encode()
        result = self._pgconn.prepare(name, key[0], list(key[1]) or None)
        if result.status != pq.ExecStatus.COMMAND_OK:
            return None
        self._prepared[key] = name
        if len(self._prepared) > PREPARED:
            _, oldest = self._prepared.popitem(last=False)
            self._pgconn.exec_(b"DEALLOCATE " + oldest)
        return name

    def _forget(self, key: Key) -> None:
        name = self._prepared.pop(key, None)
        if name is not None:
            self._pgconn.exec_(b"DEALLOCATE " + name)  # fails harmlessly when already gone


def _sqlstate(result: pq.abc.PGresult) -> str | None:
    if result.status != pq.ExecStatus.FATAL_ERROR:
        return None
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    return state.decode() if state else None


def _check(result: pq.abc.PGresult) -> None:
    """Raise as a psycopg cursor would for a result that is not a statement's success."""
    status = result.status
    if status in _OK:
        return
    if status in _COPY:
        raise CopyRefused("COPY cannot be used with query or execute")
    if status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result)
    raise psycopg.InternalError(f"unexpected result status from query: {pq.ExecStatus(status).name}")
