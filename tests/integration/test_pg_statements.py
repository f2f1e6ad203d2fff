"""Outbound PostgreSQL's statement runner (services/pg_exec.py, under services/postgres.py) against a
real PostgreSQL 15: statements are prepared on their second run, a prepared statement the server lost
or whose plan no longer fits runs again unprepared, COPY is refused without poisoning the pool; and the
C benchmark guest (tests/fixtures/components/c-postgres) end to end through the real `tauon` process,
on both component runtimes (`component_runtime`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.rdbms import server_root
from support.registry import RegistryServer
from support.servers.postgres import PostgresServer, run_postgres
from support.spinpush import SpinAppSpec, SpinComponent
from tauon.services.postgres import GUEST_MARGIN, PgClients, PgConnection, PgError

pytestmark = pytest.mark.integration

STATEMENT = "SELECT v FROM kv WHERE k = $1"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with server_root("pg-statements") as root, run_postgres(root / "pg") as server:
        yield server


def make_table(pg: PostgresServer) -> None:
    pg.sql("DROP TABLE IF EXISTS kv")
    pg.sql("CREATE TABLE kv (k int4 PRIMARY KEY, v text)")
    pg.sql("INSERT INTO kv SELECT i, 'value ' || i FROM generate_series(0, 99) i")


@pytest.fixture
def conn(pg: PostgresServer) -> Iterator[PgConnection]:
    make_table(pg)
    clients = PgClients()
    handle = clients.acquire(pg.url, time.monotonic() + 30)
    yield handle
    handle.release()
    clients.close()


def select(conn: PgConnection, k: int) -> list[list[object]]:
    columns, rows = conn.query(STATEMENT, [("int32", k)], time.monotonic() + 30)
    assert columns == [("v", "str")]
    return rows


def cut_text(raised: pytest.ExceptionInfo[PgError]) -> str:
    assert raised.value.kind == "query-failed", raised.value.payload
    kind, text = raised.value.payload
    assert kind == "text", text
    return str(text)


def test_a_statement_hanging_after_others_is_cut_at_the_cutoff(pg: PostgresServer) -> None:
    """The watchdog is armed once per handle and deadline: it still cuts the statement running at
    the cutoff, however many ran before it on the handle."""
    make_table(pg)
    clients = PgClients()
    deadline = time.monotonic() + GUEST_MARGIN + 2.0
    handle = clients.acquire(pg.url, deadline)
    try:
        for k in range(20):
            assert handle.query(STATEMENT, [("int32", k)], deadline)[1] == [[("str", f"value {k}")]]
        start = time.monotonic()
        with pytest.raises(PgError) as raised:
            handle.query("SELECT pg_sleep(30)", [], deadline)
        assert time.monotonic() - start < 10
        assert "no answer before the request's deadline" in cut_text(raised)
        assert handle.broken  # never given back to the pool
    finally:
        handle.release()
        clients.close()


def test_a_statement_started_after_the_cutoff_is_cut_before_it_is_sent(pg: PostgresServer) -> None:
    make_table(pg)
    clients = PgClients()
    handle = clients.acquire(pg.url, time.monotonic() + 30)
    try:
        assert select(handle, 1) == [[("str", "value 1")]]
        late = time.monotonic() + GUEST_MARGIN / 2  # its cutoff has passed already
        with pytest.raises(PgError) as raised:
            handle.query("UPDATE kv SET v = 'late' WHERE k = 1 RETURNING v", [], late)
        assert "no answer before the request's deadline" in cut_text(raised)
        assert pg.sql("SELECT v FROM kv WHERE k = 1") == [("value 1",)]  # never ran
    finally:
        handle.release()
        clients.close()


def test_a_connection_the_server_ended_is_let_go_at_once(pg: PostgresServer) -> None:
    """libpq closes its socket when the server ends the session; tauon's own hold on that socket (for
    the watchdog's cut) goes with it, so the dead connection costs no descriptor while the guest still
    holds its handle, and the handle is never pooled again."""
    make_table(pg)
    clients = PgClients()
    handle = clients.acquire(pg.url, time.monotonic() + 30)
    try:
        assert select(handle, 3) == [[("str", "value 3")]]
        pg.sql("SELECT pg_terminate_backend(%s)", [handle.conn.pgconn.backend_pid])
        open_before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(PgError) as raised:
            select(handle, 3)
        assert raised.value.kind == "query-failed"
        assert len(os.listdir("/proc/self/fd")) == open_before - 2  # libpq's descriptor and tauon's
        assert handle.broken
    finally:
        handle.release()
        clients.close()
    assert clients.open_count() == 0


def test_a_new_deadline_replaces_the_watchdog_entry_of_the_old_one(pg: PostgresServer) -> None:
    """A handle whose request got a later deadline (an instance kept for another request) is not
    cut at the old one's cutoff."""
    make_table(pg)
    clients = PgClients()
    handle = clients.acquire(pg.url, time.monotonic() + 30)
    try:
        soon = time.monotonic() + GUEST_MARGIN + 0.3
        assert handle.query(STATEMENT, [("int32", 2)], soon)[1] == [[("str", "value 2")]]
        later = time.monotonic() + 30
        assert handle.query("SELECT pg_sleep(1.0)::text AS v", [], later)[1] == [[("str", "")]]
        assert not handle.broken
    finally:
        handle.release()
        clients.close()


def test_a_pooled_connection_is_cleaned_when_taken_again(pg: PostgresServer) -> None:
    """deadpool's Clean recycling, as Spin's pool runs it: session settings, temporary tables and
    advisory locks of the last guest are gone; tauon's prepared statements stay."""
    make_table(pg)
    clients = PgClients()
    deadline = time.monotonic() + 30
    first = clients.acquire(pg.url, deadline)
    select(first, 1)
    select(first, 1)  # prepared now
    first.execute("SET application_name = 'guest-one'", [], deadline)
    first.execute("CREATE TEMP TABLE scratch (x int)", [], deadline)
    first.query("SELECT pg_advisory_lock(42)::text AS v", [], deadline)
    backend = first.conn.pgconn.backend_pid
    first.release()
    again = clients.acquire(pg.url, deadline)
    try:
        assert again.conn.pgconn.backend_pid == backend  # the same session, from the pool
        assert again.query("SHOW application_name", [], deadline)[1] != [[("str", "guest-one")]]
        assert again.query("SELECT count(*)::int4 AS n FROM pg_locks WHERE locktype = 'advisory'", [],
                           deadline)[1] == [[("int32", 0)]]
        with pytest.raises(PgError, match="scratch"):
            again.query("SELECT x FROM scratch", [], deadline)
        assert prepared_names(again)  # kept across the clean
        assert select(again, 2) == [[("str", "value 2")]]
    finally:
        again.release()
        clients.close()


def prepared_names(conn: PgConnection) -> list[str]:
    return [row[0] for row in conn.conn.execute("SELECT name FROM pg_prepared_statements").fetchall()]


def test_a_statement_is_prepared_on_its_second_run(conn: PgConnection) -> None:
    assert select(conn, 1) == [[("str", "value 1")]]
    assert not [n for n in prepared_names(conn) if n.startswith("_tauon_")]
    for k in range(2, 6):
        assert select(conn, k) == [[("str", f"value {k}")]]
    assert len([n for n in prepared_names(conn) if n.startswith("_tauon_")]) == 1
    assert conn.execute("UPDATE kv SET v = v || '!' WHERE k < $1", [("int32", 3)],
                        time.monotonic() + 30) == 3
    assert conn.query("SELECT k FROM kv WHERE k > $1", [("int32", 100)], time.monotonic() + 30) == ([], [])


def plans(conn: PgConnection) -> int:
    """Runs of tauon's prepared statements on this session (plans made for them, generic or custom)."""
    row = conn.conn.execute("SELECT coalesce(sum(generic_plans + custom_plans), 0) "
                            "FROM pg_prepared_statements WHERE name LIKE '_tauon_%'").fetchone()
    assert row is not None
    return int(row[0])


def test_prepared_statements_outlive_the_guest_handle(pg: PostgresServer) -> None:
    """The pool gives the same session to the next guest: its prepared statements are used again, not
    prepared anew (which would fail on the name, every time)."""
    make_table(pg)
    clients = PgClients()
    first = clients.acquire(pg.url, time.monotonic() + 30)
    select(first, 1)
    select(first, 2)
    before = plans(first)
    first.release()
    again = clients.acquire(pg.url, time.monotonic() + 30)
    assert again.conn is first.conn
    for k in range(3):
        assert select(again, k) == [[("str", f"value {k}")]]
    assert plans(again) == before + 3
    assert len([n for n in prepared_names(again) if n.startswith("_tauon_")]) == 1
    again.release()
    clients.close()


def test_a_deallocated_statement_runs_again(conn: PgConnection) -> None:
    select(conn, 1)
    select(conn, 2)
    conn.execute("DEALLOCATE ALL", [], time.monotonic() + 30)  # a guest may do this
    assert select(conn, 3) == [[("str", "value 3")]]
    assert select(conn, 4) == [[("str", "value 4")]]


def test_a_plan_whose_result_type_changed_runs_again(conn: PgConnection) -> None:
    select(conn, 1)
    select(conn, 2)
    conn.execute("ALTER TABLE kv ALTER COLUMN v TYPE int8 USING k * 10", [], time.monotonic() + 30)
    columns, rows = conn.query(STATEMENT, [("int32", 3)], time.monotonic() + 30)
    assert (columns, rows) == ([("v", "int64")], [[("int64", 30)]])


def test_inside_a_transaction_statements_run_unprepared(conn: PgConnection) -> None:
    """A plan made stale inside the guest's own transaction must not abort it."""
    select(conn, 1)
    select(conn, 2)  # prepared now
    deadline = time.monotonic() + 30
    conn.execute("BEGIN", [], deadline)
    conn.execute("ALTER TABLE kv ALTER COLUMN v TYPE int8 USING k * 10", [], deadline)
    assert conn.query(STATEMENT, [("int32", 3)], deadline) == ([("v", "int64")], [[("int64", 30)]])
    conn.execute("ROLLBACK", [], deadline)
    assert select(conn, 4) == [[("str", "value 4")]]


def test_server_errors_keep_their_shape(conn: PgConnection) -> None:
    for _ in range(3):  # unprepared, then prepared: the same error
        with pytest.raises(PgError) as caught:
            conn.query("SELECT 1 / $1", [("int32", 0)], time.monotonic() + 30)
        kind, (shape, detail) = caught.value.variant()
        assert (kind, shape, detail[2]) == ("query-failed", "db-error", "22012")
    with pytest.raises(PgError) as caught:
        conn.query("SELEC 1", [], time.monotonic() + 30)
    assert caught.value.payload[1][2] == "42601"
    assert select(conn, 5) == [[("str", "value 5")]]


def test_copy_is_refused_and_the_connection_is_not_pooled_again(pg: PostgresServer) -> None:
    clients = PgClients()
    handle = clients.acquire(pg.url, time.monotonic() + 30)
    with pytest.raises(PgError) as caught:
        handle.query("COPY (SELECT 1) TO STDOUT", [], time.monotonic() + 30)
    assert caught.value.variant() == ("query-failed", ("text", "COPY cannot be used with query or execute"))
    handle.release()
    assert clients.open_count() == 0
    again = clients.acquire(pg.url, time.monotonic() + 30)
    assert again.query("SELECT 1 AS one", [], time.monotonic() + 30) == ([("one", "int32")], [[("int32", 1)]])
    again.release()
    clients.close()


def test_the_c_guest_runs_point_selects_through_tauon(registry: RegistryServer, pg: PostgresServer,
                                                       tmp_path: Path, component_runtime: str,
                                                       shared_cache: Path) -> None:
    """The benchmark's C guest: N selects per request, each answer checked by the guest; a host error
    reaches it in the v4 shape."""
    make_table(pg)
    app = SpinAppSpec(name="c-postgres", components=[SpinComponent(
        id="c", wasm=component_path("c-postgres").read_bytes(),
        metadata={"allowed_outbound_hosts": [f"postgres://127.0.0.1:{pg.port}"]})],
        triggers=[{"route": "/...", "component": "c"}])
    reference = push_app(registry, "outbound/c-postgres", "v1", app)
    with run_tauon(tmp_path / "tauon", "--workers", "1", cache_dir=shared_cache) as tauon:
        port = free_port()
        (tauon.watch_dir / "c.json").write_text(app_file(reference, port))
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/.well-known/spin/health", timeout=300)
        for n in (1, 50):
            r = httpx.get(f"{url}/selects", params={"address": pg.url, "n": n, "id": 7}, timeout=60)
            assert (r.status_code, r.text) == (200, str(n))
        denied = pg.url.replace("127.0.0.1", "localhost")
        r = httpx.get(f"{url}/selects", params={"address": denied, "n": 1}, timeout=60)
        assert r.status_code == 502
        assert r.text.startswith("connection-failed: address postgres://localhost:")
        pg.sql("UPDATE kv SET v = 'changed' WHERE k = 8")
        r = httpx.get(f"{url}/selects", params={"address": pg.url, "n": 3, "id": 7}, timeout=60)
        assert (r.status_code, r.text) == (500, "unexpected value: changed")
