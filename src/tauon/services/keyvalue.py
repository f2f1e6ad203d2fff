"""Spin key-value stores backed by SQLite (spin-spec §5.3, §6). No wasm here.

The default store (label "default") lives in `<state_dir>/sqlite_key_value.db`, or in memory when the
app has no state dir. The table is exactly Spin's, so a file written by `spin up` is read by tauon and the
other way round; the `store` column holds the label.

Concurrency: requests run in worker threads, so every operation takes the backend's lock and uses its one
connection (Spin does the same). File databases use WAL with a busy timeout so that two generations of an
app (the old one draining, the new one serving) can open the same file at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spin_key_value ("
    "store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))"
)
DEFAULT_LABEL = "default"
DEFAULT_FILE = "sqlite_key_value.db"
BUSY_TIMEOUT_MS = 5000

_UPSERT = (
    "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT(store, key) DO UPDATE SET value = excluded.value"
)
T = TypeVar("T")


class KeyValueError(Exception):
    """A key-value failure as Spin's error variant: `kind` is 'store-table-full', 'no-such-store',
    'access-denied' or 'other' (the message is the payload of 'other')."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message


class SqliteKeyValue:
    """One SQLite database holding any number of stores (labels). Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Opened on first use, as Spin does: most apps never touch their default store, and an open
        # WAL database costs every app three descriptors, a mapping and a warm restart's time.
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: the lock, not the thread, guards the connection.
        conn = sqlite3.connect(
            str(self.path) if self.path is not None else ":memory:",
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._set_up(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL and create the table, retrying while another connection does the same.

        Two generations opening a new file at once race here: switching to WAL and creating the table
        upgrade a read lock to a write lock, and SQLite answers a contended upgrade with SQLITE_BUSY at
        once rather than calling the busy handler (waiting could deadlock). Retrying is safe: both
        statements are idempotent."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.001
        while True:
            try:
                if self.path is not None:
                    conn.execute("PRAGMA journal_mode=WAL")
                    # In WAL, NORMAL keeps the database consistent across crashes; only the last
                    # commits can be lost on power failure, a fair trade for not fsyncing every write.
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def connect(self) -> None:
        """Open the database now if it is not open yet (a guest opening a store: Spin's store manager
        opens its connection there, so an unopenable database fails the open). Raises KeyValueError."""
        self._run(lambda conn: None)

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                if self._conn is None:
                    if self._closed:
                        raise sqlite3.ProgrammingError("the store is closed")
                    self._conn = self._connect()
                return work(self._conn)
            except sqlite3.Error as exc:
                raise KeyValueError("other", f"key-value database error: {exc}") from None

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one immediate transaction (the write lock is taken up front: no upgrade deadlock)."""

        def txn(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._run(txn)

    def get(self, store: str, key: str) -> bytes | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", (store, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set(self, store: str, key: str, value: bytes) -> None:
        self._run(lambda c: c.execute(_UPSERT, (store, key, bytes(value))))

    def delete(self, store: str, key: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM spin_key_value WHERE store = ? AND key = ?", (store, key)))

    def exists(self, store: str, key: str) -> bool:
        row = self._run(
            lambda c: c.execute(
                "SELECT 1 FROM spin_key_value WHERE store = ? AND key = ?", (store, key)
            ).fetchone()
        )
        return row is not None

    def get_keys(self, store: str) -> list[str]:
        rows = self._run(
            lambda c: c.execute("SELECT key FROM spin_key_value WHERE store = ?", (store,)).fetchall()
        )
        return [str(r[0]) for r in rows]

    def get_many(self, store: str, keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """Each key with its value (None if absent), in the order asked."""

        def work(c: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for key in dict.fromkeys(keys):
                row = c.execute(
                    "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", (store, key)
                ).fetchone()
                if row is not None:
                    found[key] = bytes(row[0])
            return found

        found = self._run(work)
        return [(key, found.get(key)) for key in keys]

    def set_many(self, store: str, items: Iterable[tuple[str, bytes]]) -> None:
        rows = [(store, key, bytes(value)) for key, value in items]
        self._write(lambda c: c.executemany(_UPSERT, rows))

    def delete_many(self, store: str, keys: Iterable[str]) -> None:
        rows = [(store, key) for key in keys]
        self._write(lambda c: c.executemany("DELETE FROM spin_key_value WHERE store = ? AND key = ?", rows))

    def increment(self, store: str, key: str, delta: int) -> int:
        """Add `delta` to the 8-byte little-endian i64 at `key` (absent: 0); return the new value.

        The encoding is Spin's (wasi:keyvalue/atomics), so counters are shared with Spin-written data.
        """

        def work(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", (store, key)
            ).fetchone()
            current = 0
            if row is not None:
                raw = bytes(row[0])
                if len(raw) != 8:
                    raise KeyValueError("other", f"value of {key!r} is not an 8-byte integer")
                current = int.from_bytes(raw, "little", signed=True)
            new = current + delta
            if not -(1 << 63) <= new < (1 << 63):
                raise KeyValueError("other", f"increment of {key!r} overflows a 64-bit integer")
            c.execute(_UPSERT, (store, key, new.to_bytes(8, "little", signed=True)))
            return new

        return self._write(work)

    def compare_and_swap(self, store: str, key: str, expected: bytes | None, new: bytes) -> bool:
        """Set `key` to `new` if its value is still `expected` (None: absent). True if swapped."""

        def work(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", (store, key)
            ).fetchone()
            current = None if row is None else bytes(row[0])
            if current != expected:
                return False
            c.execute(_UPSERT, (store, key, bytes(new)))
            return True

        return self._write(work)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Backend(Protocol):
    """What a store's backend does: SqliteKeyValue here, RedisKeyValue (redis_kv.py)."""

    def get(self, store: str, key: str) -> bytes | None: ...
    def set(self, store: str, key: str, value: bytes) -> None: ...
    def delete(self, store: str, key: str) -> None: ...
    def exists(self, store: str, key: str) -> bool: ...
    def get_keys(self, store: str) -> list[str]: ...
    def get_many(self, store: str, keys: Sequence[str]) -> list[tuple[str, bytes | None]]: ...
    def set_many(self, store: str, items: Iterable[tuple[str, bytes]]) -> None: ...
    def delete_many(self, store: str, keys: Iterable[str]) -> None: ...
    def increment(self, store: str, key: str, delta: int) -> int: ...
    def compare_and_swap(self, store: str, key: str, expected: bytes | None, new: bytes) -> bool: ...
    def close(self) -> None: ...


class KeyValueStore:
    """One label of a backend, as a guest's open handle sees it."""

    __slots__ = ("backend", "label")

    def __init__(self, label: str, backend: Backend) -> None:
        self.label = label
        self.backend = backend

    def get(self, key: str) -> bytes | None:
        return self.backend.get(self.label, key)

    def set(self, key: str, value: bytes) -> None:
        self.backend.set(self.label, key, value)

    def delete(self, key: str) -> None:
        self.backend.delete(self.label, key)

    def exists(self, key: str) -> bool:
        return self.backend.exists(self.label, key)

    def get_keys(self) -> list[str]:
        return self.backend.get_keys(self.label)

    def get_many(self, keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        return self.backend.get_many(self.label, keys)

    def set_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.backend.set_many(self.label, items)

    def delete_many(self, keys: Iterable[str]) -> None:
        self.backend.delete_many(self.label, keys)

    def increment(self, key: str, delta: int) -> int:
        return self.backend.increment(self.label, key, delta)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        return self.backend.compare_and_swap(self.label, key, expected, new)


class KeyValueStores:
    """The stores one app generation defines: 'default', and the runtime config's labels. Thread-safe."""

    def __init__(self, backends: dict[str, Backend]) -> None:
        self._backends = backends

    @classmethod
    def open(cls, state_dir: str | Path | None,
             make: Callable[[str], Backend] | None = None, labels: Iterable[str] = ()) -> KeyValueStores:
        """'default' in the state dir, unless `labels` (made by `make`) includes it."""
        backends: dict[str, Backend] = {}
        try:
            for label in labels:
                assert make is not None
                backends[label] = make(label)
            if DEFAULT_LABEL not in backends:
                path = Path(state_dir) / DEFAULT_FILE if state_dir is not None else None
                backends[DEFAULT_LABEL] = SqliteKeyValue(path)
        except BaseException:
            for backend in dict.fromkeys(backends.values()):
                backend.close()
            raise
        return cls(backends)

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self._backends)

    def undefined(self, labels: Iterable[str]) -> list[str]:
        """The labels of `labels` that no store defines (a component listing one fails to load)."""
        return [label for label in labels if label not in self._backends]

    def open_store(self, label: str, allowed: Collection[str]) -> KeyValueStore:
        """The store `label` for a component allowed `allowed`. Raises KeyValueError.

        An unlisted label is 'access-denied' even when the store exists (Spin checks the list first).
        """
        if label not in allowed:
            raise KeyValueError("access-denied", f"the component may not open key-value store {label!r}")
        backend = self._backends.get(label)
        if backend is None:
            raise KeyValueError("no-such-store", f"no key-value store {label!r} is defined")
        if isinstance(backend, SqliteKeyValue):
            backend.connect()
        return KeyValueStore(label, backend)

    def close(self) -> None:
        for backend in dict.fromkeys(self._backends.values()):  # labels may share a backend
            backend.close()
