"""Spin SQLite databases (spin-spec §5.4, §6). No wasm here.

The default database (label "default") is `<state_dir>/sqlite_db.db`, or in memory without a state dir.
As in Spin, each database has one connection shared by every request, used under a lock, in autocommit
mode (a guest's own BEGIN/COMMIT work as written), and ATTACH of a file is denied.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LABEL = "default"
DEFAULT_FILE = "sqlite_db.db"
BUSY_TIMEOUT_MS = 5000

Value = int | float | str | bytes | None
"""Spin's `value` variant: integer (s64), real, text, blob, null."""


class SqliteError(Exception):
    """A failure as Spin's sqlite error variant: `kind` is 'no-such-database', 'access-denied',
    'invalid-connection', 'database-full' or 'io' (the message is the payload of 'io')."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]


def _deny_file_attach(action: int, arg1: str | None, *_: object) -> int:
    # A bound filename reaches the authorizer as NULL (it is not known at prepare time): deny it too,
    # stricter than Spin, whose check lets that form through.
    if action == sqlite3.SQLITE_ATTACH and arg1 not in ("", ":memory:"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _check_param(value: object, index: int) -> Value:
    # bool is an int subclass; Spin's value variant has no boolean, so refuse rather than guess.
    if value is None or isinstance(value, str | bytes | float) or (
        isinstance(value, int) and not isinstance(value, bool)
    ):
        if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
            raise SqliteError("io", f"parameter {index + 1} does not fit a 64-bit integer")
        return value
    raise SqliteError("io", f"parameter {index + 1} has unsupported type {type(value).__name__}")


class Database:
    """One SQLite database. Thread-safe."""

    def __init__(self, label: str, path: Path | None) -> None:
        self.label = label
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self._conn.set_authorizer(_deny_file_attach)
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Value] = ()) -> QueryResult:
        """Run one statement; returns its column names and every row. Raises SqliteError('io', …)."""
        checked = [_check_param(p, i) for i, p in enumerate(params)]
        with self._lock:
            try:
                cursor = self._conn.execute(sql, checked)
                rows = cursor.fetchall()
                columns = tuple(d[0] for d in cursor.description or ())
            except sqlite3.Error as exc:
                raise SqliteError("io", str(exc)) from None
            except (ValueError, OverflowError) as exc:  # e.g. a NUL in the SQL text
                raise SqliteError("io", str(exc)) from None
        return QueryResult(columns, tuple(tuple(_value(v) for v in row) for row in rows))

    def last_insert_rowid(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    def changes(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT changes()").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _value(value: object) -> Value:
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    assert value is None or isinstance(value, int | float | str | bytes)
    return value


class Databases:
    """The databases one app generation defines (today only 'default'). Connections open on first use."""

    def __init__(self, paths: dict[str, Path | None]) -> None:
        self._paths = paths
        self._open: dict[str, Database] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, state_dir: str | Path | None,
             configured: Mapping[str, Path | None] | None = None) -> Databases:
        """'default' in the state dir (in memory without one), unless `configured` (label -> file,
        None: in memory; the runtime config's databases) defines it."""
        paths = dict(configured or {})
        if DEFAULT_LABEL not in paths:
            paths[DEFAULT_LABEL] = Path(state_dir) / DEFAULT_FILE if state_dir is not None else None
        return cls(paths)

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self._paths)

    def undefined(self, labels: Collection[str]) -> list[str]:
        return [label for label in labels if label not in self._paths]

    def open_database(self, label: str, allowed: Collection[str]) -> Database:
        """The database `label` for a component allowed `allowed`. Raises SqliteError."""
        if label not in allowed:
            raise SqliteError("access-denied", f"the component may not open database {label!r}")
        if label not in self._paths:
            raise SqliteError("no-such-database", f"no database {label!r} is defined")
        with self._lock:
            if self._closed:
                raise SqliteError("io", "the app's databases are closed")
            db = self._open.get(label)
            if db is None:
                try:
                    db = Database(label, self._paths[label])
                except (OSError, sqlite3.Error) as exc:
                    raise SqliteError("io", f"cannot open database {label!r}: {exc}") from None
                self._open[label] = db
            return db

    def close(self) -> None:
        with self._lock:
            self._closed = True
            dbs, self._open = list(self._open.values()), {}
        for db in dbs:
            db.close()
