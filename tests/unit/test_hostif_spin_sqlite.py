"""Spin SQLite host functions (v2, v3, v1) on a real state dir: ACL, value variants, rowid/changes."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.spin_services import app_services, component, host_state
from tauon.hostif import spin_sqlite as sq
from tauon.hostif.spin_common import MAX_HANDLES, NO_SERVICES
from tauon.hostif.state import HostState

V1, V2, V3 = sq.V1_FUNCS, sq.V2_FUNCS, sq.V3_FUNCS


@pytest.fixture
def state(tmp_path: Path) -> Iterator[HostState]:
    with app_services(tmp_path, component(databases=["default"])) as services:
        state = host_state(services)
        yield state
        state.finish()


def ok(result: tuple[str, Any]) -> Any:
    assert result[0] == "ok", result
    return result[1]


def test_v2_execute_round_trips_every_value_variant(state: HostState, tmp_path: Path) -> None:
    conn = ok(V2["[static]connection.open"](state, "default"))
    ok(V2["[method]connection.execute"](state, conn, "CREATE TABLE t (i, r, s, b, n)", []))
    params = [("integer", -(1 << 63)), ("real", 1.5), ("text", "héllo"), ("blob", b"\x00\xff"), "null"]
    assert ok(V2["[method]connection.execute"](state, conn, "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                                               params)) == ([], [])
    columns, rows = ok(V2["[method]connection.execute"](state, conn, "SELECT * FROM t", []))
    assert columns == ["i", "r", "s", "b", "n"]
    assert rows == [([("integer", -(1 << 63)), ("real", 1.5), ("text", "héllo"), ("blob", b"\x00\xff"),
                      "null"],)]
    with sqlite3.connect(tmp_path / "sqlite_db.db") as db:  # Spin's default database file
        assert db.execute("SELECT s FROM t").fetchall() == [("héllo",)]


def test_sql_errors_are_io_with_sqlites_text(state: HostState) -> None:
    conn = ok(V2["[static]connection.open"](state, "default"))
    tag, (case, text) = V2["[method]connection.execute"](state, conn, "SELEKT 1", [])
    assert (tag, case) == ("err", "io") and "syntax error" in text


def test_acl_unlisted_is_access_denied_unknown_is_no_such_database(tmp_path: Path) -> None:
    with app_services(tmp_path, component()) as services:
        state = host_state(services)
        assert V2["[static]connection.open"](state, "default") == ("err", "access-denied")
        assert V3["[static]connection.open"](state, "default") == ("err", "access-denied")
        assert V1["open"](state, "default") == ("err", "access-denied")
        widened = dataclasses.replace(services, database_labels=frozenset({"default", "analytics"}))
        assert V2["[static]connection.open"](host_state(widened), "analytics") == ("err", "no-such-database")


def test_v3_last_insert_rowid_and_changes_describe_this_handles_statement(state: HostState) -> None:
    conn = ok(V3["[static]connection.open"](state, "default"))
    other = ok(V3["[static]connection.open"](state, "default"))
    assert V3["[method]connection.last-insert-rowid"](state, conn) == 0
    ok(V3["[method]connection.execute"](state, conn, "CREATE TABLE n (v)", []))
    ok(V3["[method]connection.execute"](state, conn, "INSERT INTO n VALUES (1), (2), (3)", []))
    assert V3["[method]connection.last-insert-rowid"](state, conn) == 3
    assert V3["[method]connection.changes"](state, conn) == 3
    ok(V3["[method]connection.execute"](state, other, "UPDATE n SET v = 0 WHERE v > 1", []))
    assert V3["[method]connection.changes"](state, other) == 2
    assert V3["[method]connection.changes"](state, conn) == 3  # unaffected by the other handle


def test_v1_handles_and_invalid_connection(state: HostState) -> None:
    handle = ok(V1["open"](state, "default"))
    assert ok(V1["execute"](state, handle, "SELECT 1 AS one, NULL AS n", [])) == (
        ["one", "n"], [([("integer", 1), "null"],)])
    assert V1["close"](state, handle) is None
    assert V1["execute"](state, handle, "SELECT 1", []) == ("err", "invalid-connection")
    assert V1["execute"](state, 424242, "SELECT 1", []) == ("err", "invalid-connection")


def test_too_many_connections_is_io(state: HostState) -> None:
    for _ in range(MAX_HANDLES):
        ok(V2["[static]connection.open"](state, "default"))
    assert V2["[static]connection.open"](state, "default") == ("err", ("io", "too many connections opened"))


def test_without_services_open_is_io() -> None:
    assert V2["[static]connection.open"](host_state(None), "default") == ("err", ("io", NO_SERVICES))
