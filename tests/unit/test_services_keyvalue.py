"""Key-value service on real SQLite files: Spin's schema, ACL, atomics, concurrency, reopening."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tauon.services.keyvalue import SCHEMA, KeyValueError, KeyValueStores, SqliteKeyValue

SPIN_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spin_key_value (\n"
    "   store TEXT NOT NULL,\n   key   TEXT NOT NULL,\n   value BLOB NOT NULL,\n\n"
    "   PRIMARY KEY (store, key)\n)"
)
"""As Spin's key-value-spin crate writes it (whitespace and all)."""


def columns(db: Path) -> list[tuple[str, str, int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("PRAGMA table_info(spin_key_value)").fetchall()
    return [(name, kind, notnull, pk) for _, name, kind, notnull, _, pk in rows]


def test_operations_on_the_default_store(tmp_path: Path) -> None:
    stores = KeyValueStores.open(tmp_path)
    try:
        store = stores.open_store("default", {"default"})
        assert store.get("missing") is None and not store.exists("missing")
        store.set("a", b"1")
        store.set("a", b"\x00\xff two")  # overwrite
        store.set("b", b"")
        assert store.get("a") == b"\x00\xff two" and store.get("b") == b""
        assert store.exists("b")
        assert sorted(store.get_keys()) == ["a", "b"]
        store.delete("a")
        store.delete("never-there")
        assert store.get_keys() == ["b"]
        store.set_many([("x", b"1"), ("y", b"2")])
        assert store.get_many(["y", "nope", "x"]) == [("y", b"2"), ("nope", None), ("x", b"1")]
        store.delete_many(["x", "y"])
        assert store.get_keys() == ["b"]
    finally:
        stores.close()


def test_acl_unlisted_label_is_access_denied_unknown_is_no_such_store() -> None:
    stores = KeyValueStores.open(None)
    try:
        with pytest.raises(KeyValueError) as denied:
            stores.open_store("default", set())  # exists, but the component does not list it
        assert denied.value.kind == "access-denied"
        with pytest.raises(KeyValueError) as missing:
            stores.open_store("cache", {"default", "cache"})
        assert missing.value.kind == "no-such-store"
        assert stores.undefined(["default", "cache"]) == ["cache"]
    finally:
        stores.close()


def test_in_memory_without_state_dir_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stores = KeyValueStores.open(None)
    stores.open_store("default", {"default"}).set("k", b"v")
    stores.close()
    assert list(tmp_path.iterdir()) == []
    again = KeyValueStores.open(None)
    assert again.open_store("default", {"default"}).get("k") is None
    again.close()


def test_schema_is_spins_and_data_is_interchangeable(tmp_path: Path) -> None:
    # A database written by Spin (its exact DDL, via plain sqlite3) is read by tauon...
    spin_db = tmp_path / "spin" / "sqlite_key_value.db"
    spin_db.parent.mkdir()
    with sqlite3.connect(spin_db) as conn:
        conn.execute(SPIN_SCHEMA)
        conn.execute("INSERT INTO spin_key_value VALUES ('default', 'k', x'0102')")
        conn.execute("INSERT INTO spin_key_value VALUES ('other', 'k', x'ff')")
    stores = KeyValueStores.open(spin_db.parent)
    store = stores.open_store("default", {"default"})
    assert store.get("k") == b"\x01\x02"
    assert store.get_keys() == ["k"]  # the 'other' label's row is not this store's
    store.set("new", b"from tauon")
    stores.close()
    # ...and a database tauon created reads back with plain SQL, same columns as Spin's.
    tauon_db = tmp_path / "tauon"
    fresh = KeyValueStores.open(tauon_db)
    fresh.open_store("default", {"default"}).set("hello", b"\x00world")
    fresh.close()
    assert columns(tauon_db / "sqlite_key_value.db") == columns(spin_db)
    assert columns(spin_db) == [
        ("store", "TEXT", 1, 1),
        ("key", "TEXT", 1, 2),
        ("value", "BLOB", 1, 0),
    ]
    with sqlite3.connect(tauon_db / "sqlite_key_value.db") as conn:
        assert conn.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("default", "hello", b"\x00world")
        ]
    with sqlite3.connect(spin_db) as conn:
        assert conn.execute("SELECT value FROM spin_key_value WHERE key='new'").fetchone() == (b"from tauon",)
    assert "store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key)" in SCHEMA


def test_increment_uses_spins_little_endian_i64_and_cas(tmp_path: Path) -> None:
    backend = SqliteKeyValue(tmp_path / "kv.db")
    try:
        assert backend.increment("default", "n", 5) == 5
        assert backend.increment("default", "n", -7) == -2
        assert backend.get("default", "n") == (-2).to_bytes(8, "little", signed=True)
        backend.set("default", "text", b"abc")
        with pytest.raises(KeyValueError) as bad:
            backend.increment("default", "text", 1)
        assert bad.value.kind == "other"
        assert backend.get("default", "text") == b"abc"  # rolled back, untouched
        assert backend.compare_and_swap("default", "c", None, b"1")
        assert not backend.compare_and_swap("default", "c", None, b"2")
        assert not backend.compare_and_swap("default", "c", b"0", b"2")
        assert backend.compare_and_swap("default", "c", b"1", b"2")
        assert backend.get("default", "c") == b"2"
    finally:
        backend.close()


def test_data_survives_reopen_and_a_second_generation_on_the_same_file(tmp_path: Path) -> None:
    old = KeyValueStores.open(tmp_path)
    old.open_store("default", {"default"}).set("k", b"v1")
    new = KeyValueStores.open(tmp_path)  # an app update: the old generation still drains
    new_store = new.open_store("default", {"default"})
    assert new_store.get("k") == b"v1"
    old.open_store("default", {"default"}).set("k", b"v2")
    new_store.set("k2", b"x")
    assert new_store.get("k") == b"v2"
    old.close()
    new.close()
    reopened = KeyValueStores.open(tmp_path)
    assert sorted(reopened.open_store("default", {"default"}).get_keys()) == ["k", "k2"]
    reopened.close()


@pytest.mark.parametrize("generations", [1, 2])
def test_concurrent_writers_lose_nothing(tmp_path: Path, generations: int) -> None:
    """8 threads x 500 writes each, plus a shared counter; with 2 generations half use each file handle."""
    threads_n, writes = 8, 500
    managers = [KeyValueStores.open(tmp_path) for _ in range(generations)]
    errors: list[BaseException] = []
    # A timeout, so a writer that fails before the barrier fails the test instead of hanging it.
    start = threading.Barrier(threads_n, timeout=60)

    def writer(t: int) -> None:
        try:
            store = managers[t % generations].open_store("default", {"default"})
            start.wait()
            for i in range(writes):
                store.set(f"t{t}-{i}", f"{t}:{i}".encode())
                store.increment("counter", 1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    began = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    elapsed = time.perf_counter() - began
    for manager in managers:
        manager.close()
    assert errors == []
    check = KeyValueStores.open(tmp_path)
    store = check.open_store("default", {"default"})
    keys = store.get_keys()
    assert len(keys) == threads_n * writes + 1
    assert store.get("t7-499") == b"7:499"
    assert int.from_bytes(store.get("counter") or b"", "little", signed=True) == threads_n * writes
    check.close()
    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    total = threads_n * writes * 2
    print(f"{total} writes from {threads_n} threads, {generations} handle(s): {elapsed:.2f}s")


def test_two_generations_opening_a_new_database_at_once_both_succeed(tmp_path: Path) -> None:
    """During a swap the draining and the new generation can open a fresh file together; switching it
    to WAL and creating the table race (SQLite answers a contended lock upgrade with "database is
    locked" at once). Before the retry 250 rounds failed most runs."""
    for round_ in range(250):
        state = tmp_path / f"r{round_}"
        managers = [KeyValueStores.open(state) for _ in range(2)]
        errors: list[BaseException] = []
        go = threading.Barrier(6, timeout=30)

        def opener(t: int, managers: list[KeyValueStores] = managers,
                    errors: list[BaseException] = errors, go: threading.Barrier = go) -> None:
            try:
                go.wait()
                managers[t % 2].open_store("default", {"default"})
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=opener, args=(t,), daemon=True) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for manager in managers:
            manager.close()
        assert errors == [], f"round {round_}: {errors[0]}"


def test_the_default_store_opens_its_database_when_a_guest_opens_it(tmp_path: Path) -> None:
    """As Spin's SQLite store manager does: an app that never opens its store holds no database (three
    descriptors and a mapping per app with WAL) and its generation builds without opening one; the
    guest's `open` opens it, so a database that cannot be opened fails the open."""
    stores = KeyValueStores.open(tmp_path / "state")
    assert not (tmp_path / "state" / "sqlite_key_value.db").exists()
    store = stores.open_store("default", {"default"})
    assert (tmp_path / "state" / "sqlite_key_value.db").is_file()
    assert store.get("k") is None
    stores.close()
    with pytest.raises(KeyValueError):
        store.get("k")  # closed stays closed


def test_a_database_that_cannot_be_opened_fails_the_guests_open(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sqlite_key_value.db").mkdir()  # a directory where the database file goes
    stores = KeyValueStores.open(tmp_path / "state")
    with pytest.raises(KeyValueError) as info:
        stores.open_store("default", {"default"})
    assert info.value.kind == "other"
    stores.close()
