"""Spin SQLite for components (spin-spec §5.4): fermyon:spin/sqlite@2.0.0 and spin:sqlite/sqlite@3.0.0
(resource `connection`), and the unversioned v1 fermyon:spin/sqlite (u32 handles).

Databases open by label with the component's ACL (unlisted: `access-denied`; undefined:
`no-such-database`). Values cross as Spin's `value` variant: integer(s64), real(f64), text, blob, null.
spin:sqlite@3.1.0 (its async functions are component-model async) is in spin_sqlite_p3.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Handle, Result, lookup, message, reserve, services_of
from tauon.hostif.state import HostState
from tauon.services.sqlite import Database, QueryResult, SqliteError, Value

_PLAIN_ERRORS = frozenset({"no-such-database", "access-denied", "invalid-connection", "database-full"})


class Connection(Handle):
    """An open database handle. `rowid` / `changes` are read right after each statement of this handle
    (the database's one connection is shared by all requests), so v3's last-insert-rowid and changes
    describe this handle's own last statement."""

    def __init__(self, db: Database, counts: dict[str, int], *, track: bool) -> None:
        super().__init__(counts, "connection")
        self.db = db
        self.track = track
        self.rowid = 0
        self.changes = 0


class _InvalidConnection(Exception):
    pass


def _error(exc: SqliteError) -> Result:
    return ("err", exc.kind if exc.kind in _PLAIN_ERRORS else ("io", message(exc)))


def _guarded(op: Callable[..., Any]) -> Callable[..., Result]:
    """An operation as `result<T, error>`: SqliteError becomes the error variant."""

    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except _InvalidConnection:
            return ("err", "invalid-connection")
        except SqliteError as exc:
            return _error(exc)

    return call


def _open(state: HostState, label: str, *, track: bool = False) -> int:
    services = services_of(state)
    if services is None:
        raise SqliteError("io", NO_SERVICES)
    db = services.open_database(label)
    counts = reserve(state, "connection")
    if counts is None:
        raise SqliteError("io", "too many connections opened")
    return state.table.push(Connection(db, counts, track=track))


def _connection(state: HostState, rep: int) -> Connection:
    found = lookup(state, rep, Connection)
    if found is None:
        raise _InvalidConnection
    return found


def param(value: tuple[str, Any] | str) -> Value:
    """A guest `value` variant as a Python parameter."""
    if isinstance(value, str):  # a payload-less case: null
        return None
    tag, payload = value
    return None if tag == "null" else payload


def lower_value(value: Value) -> tuple[str, Any] | str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # never produced by sqlite3; keep it an integer if it ever is
        return ("integer", int(value))
    if isinstance(value, int):
        return ("integer", value)
    if isinstance(value, float):
        return ("real", value)
    if isinstance(value, str):
        return ("text", value)
    return ("blob", bytes(value))


def query_result(result: QueryResult) -> tuple[list[str], list[tuple[list[Any]]]]:
    """Spin's query-result record: (columns, rows), each row-result a one-field record (values,)."""
    return (list(result.columns), [([lower_value(v) for v in row],) for row in result.rows])


def _execute(state: HostState, rep: int, statement: str,
             params: Sequence[tuple[str, Any] | str]) -> tuple[list[str], list[tuple[list[Any]]]]:
    conn = _connection(state, rep)
    result = conn.db.execute(statement, [param(p) for p in params])
    if conn.track:
        conn.rowid = conn.db.last_insert_rowid()
        conn.changes = conn.db.changes()
    return query_result(result)


def _v1_close(state: HostState, handle: int) -> None:
    if lookup(state, handle, Connection) is not None:
        state.table.drop(handle)


def _last_insert_rowid(state: HostState, rep: int) -> int:
    return state.table.get(rep, Connection).rowid


def _changes(state: HostState, rep: int) -> int:
    return state.table.get(rep, Connection).changes


V2_FUNCS: dict[str, Callable[..., Any]] = {
    "[static]connection.open": _guarded(_open),
    "[method]connection.execute": _guarded(_execute),
}
V3_FUNCS: dict[str, Callable[..., Any]] = {
    "[static]connection.open": _guarded(lambda state, label: _open(state, label, track=True)),
    "[method]connection.execute": _guarded(_execute),
    "[method]connection.last-insert-rowid": _last_insert_rowid,
    "[method]connection.changes": _changes,
}
V1_FUNCS: dict[str, Callable[..., Any]] = {
    "open": _guarded(_open),
    "execute": _guarded(_execute),
    "close": _v1_close,
}

INTERFACES = [
    HostInterface("fermyon:spin/sqlite@2.0.0", V2_FUNCS, ("connection",)),
    HostInterface("spin:sqlite/sqlite@3.0.0", V3_FUNCS, ("connection",)),
    HostInterface("fermyon:spin/sqlite", V1_FUNCS),
]
