"""SQLite service on real databases: Spin's value types, ACL, errors, persistence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tauon.services.sqlite import Databases, SqliteError


def test_values_round_trip_with_spins_types(tmp_path: Path) -> None:
    dbs = Databases.open(tmp_path)
    try:
        db = dbs.open_database("default", {"default"})
        db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [-(1 << 63), 2.5, "héllo", b"\x00\x01", None])
        assert db.changes() == 1 and db.last_insert_rowid() == 1
        result = db.execute("SELECT i, r, s, b, n AS absent FROM t WHERE s = ?", ["héllo"])
        assert result.columns == ("i", "r", "s", "b", "absent")
        assert result.rows == ((-(1 << 63), 2.5, "héllo", b"\x00\x01", None),)
        empty = db.execute("SELECT * FROM t WHERE 0")
        assert empty.columns == ("i", "r", "s", "b", "n") and empty.rows == ()
        assert db.execute("UPDATE t SET i = 1").columns == ()
    finally:
        dbs.close()
    with sqlite3.connect(tmp_path / "sqlite_db.db") as conn:
        assert conn.execute("SELECT s FROM t").fetchall() == [("héllo",)]


def test_acl_and_unknown_label() -> None:
    dbs = Databases.open(None)
    try:
        with pytest.raises(SqliteError) as denied:
            dbs.open_database("default", set())
        assert denied.value.kind == "access-denied"
        with pytest.raises(SqliteError) as missing:
            dbs.open_database("analytics", {"analytics"})
        assert missing.value.kind == "no-such-database"
        assert dbs.open_database("default", {"default"}) is dbs.open_database("default", {"default"})
    finally:
        dbs.close()


def test_errors_are_io_with_sqlites_message(tmp_path: Path) -> None:
    dbs = Databases.open(None)
    try:
        db = dbs.open_database("default", {"default"})
        with pytest.raises(SqliteError, match="no such table: nope") as info:
            db.execute("SELECT * FROM nope")
        assert info.value.kind == "io"
        with pytest.raises(SqliteError) as params:
            db.execute("SELECT ?", [True])  # Spin's value variant has no boolean
        assert params.value.kind == "io"
        with pytest.raises(SqliteError):
            db.execute("SELECT ?", [1 << 64])
        with pytest.raises(SqliteError, match="not authorized"):
            db.execute(f"ATTACH DATABASE '{tmp_path / 'other.db'}' AS other")
        with pytest.raises(SqliteError, match="not authorized"):
            db.execute("ATTACH DATABASE ? AS other", [str(tmp_path / "other.db")])
        assert not (tmp_path / "other.db").exists()
        db.execute("ATTACH DATABASE ':memory:' AS scratch")  # in-memory attach is allowed, as in Spin
    finally:
        dbs.close()


def test_in_memory_default_is_shared_within_a_generation_and_lost_after() -> None:
    dbs = Databases.open(None)
    dbs.open_database("default", {"default"}).execute("CREATE TABLE t (x)")
    assert dbs.open_database("default", {"default"}).execute("SELECT count(*) FROM t").rows == ((0,),)
    dbs.close()
    again = Databases.open(None)
    with pytest.raises(SqliteError, match="no such table"):
        again.open_database("default", {"default"}).execute("SELECT * FROM t")
    again.close()


def test_transactions_written_by_the_guest_work(tmp_path: Path) -> None:
    dbs = Databases.open(tmp_path)
    db = dbs.open_database("default", {"default"})
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (1)")
    db.execute("ROLLBACK")
    assert db.execute("SELECT count(*) FROM t").rows == ((0,),)
    dbs.close()
