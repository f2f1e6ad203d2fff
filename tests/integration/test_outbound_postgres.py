"""Outbound PostgreSQL end to end, as Spin's conformance test `postgres` drives it: the spin-sdk 3.4.1
fixture (tests/fixtures/components/python-outbound, routes /pg/<v2|v3|v4>/batch) pushed to the real
registry, served by the real `tauon` process, talking to a real PostgreSQL 15 on loopback.

Also: the app without permission, errors in each version's shape, TLS modes, and faults (server stopped
mid-request, a server that never answers, 100 swaps with pooled connections open).
Every test but the swaps one runs on both component runtimes (`component_runtime`); the swaps test is
about the host's connection pool across generations, the same whichever runtime runs the guest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.rdbms import error, ok, push_outbound, q, server_root
from support.registry import RegistryServer
from support.servers.postgres import PASSWORD, PostgresServer, run_postgres
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

TIMEOUT = 4  # the apps' request_timeout: bounds the "never answers" case


@dataclass
class Served:
    tauon: TauonProcess
    pg: PostgresServer
    url: str
    """The app allowed to reach the server."""
    denied_url: str
    """The same component without allowed_outbound_hosts."""
    app_path: Path
    reference: str
    js_url: str
    """The js-postgres fixture (spin:postgres/postgres@4.0.0 from JS), allowed like the first app."""


@pytest.fixture(scope="module")
def served(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory, component_runtime: str,
           shared_cache: Path) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("outbound-pg")
    with server_root("pg") as root, run_postgres(root / "pg") as pg, \
            run_tauon(tmp / "tauon", "--workers", "1", admin=True, cache_dir=shared_cache) as tauon:
        # localhost (any port): the TLS cases' second server
        ref = push_outbound(registry, "outbound/pg",
                            [f"postgres://127.0.0.1:{pg.port}", "postgres://localhost:*"])
        denied_ref = push_outbound(registry, "outbound/pg-denied", [])
        js = SpinAppSpec(name="js-postgres", components=[SpinComponent(
            id="js", wasm=component_path("js-postgres").read_bytes(),
            metadata={"allowed_outbound_hosts": [f"postgres://127.0.0.1:{pg.port}"]})],
            triggers=[{"route": "/...", "component": "js"}])
        js_ref = push_app(registry, "outbound/js-postgres", "v1", js)
        urls = []
        for name, reference in (("pg", ref), ("denied", denied_ref), ("js", js_ref)):
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(
                app_file(reference, port, limits={"request_timeout": TIMEOUT}))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/.well-known/spin/health", timeout=300)
        yield Served(tauon, pg, urls[0], urls[1], tauon.watch_dir / "pg.json", ref, urls[2])


def batch(url: str, version: str, address: str, *steps: dict[str, Any],
          timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/pg/{version}/batch", json={"address": address, "steps": list(steps)},
                      timeout=timeout)


ALL_TYPES = """CREATE TABLE IF NOT EXISTS all_types (
    id int4 PRIMARY KEY, b bool, i16 int2, i32 int4, i64 int8, f32 float4, f64 float8, s text,
    vc varchar(10), ch char(4), by bytea, d date, t time, dt timestamp, ts timestamptz, u uuid, j jsonb,
    dec numeric(10,3),
    r4 int4range, r8 int8range, rd numrange, a4 int4[], a8 int8[], ad numeric[], ast text[], iv interval,
    nul int4, other_t inet)"""
ROW = [["int32", 1], ["boolean", True], ["int16", -7], ["int32", 70000], ["int64", 1 << 40],
       ["floating32", 1.5], ["floating64", 2.25], ["str", "héllo"], ["str", "vc"], ["str", "ab"],
       ["binary", "00ff10"], ["date", [2024, 2, 29]], ["time", [12, 34, 56, 789000000]],
       ["datetime", [2024, 1, 2, 3, 4, 5, 123456000]], ["timestamp", 86400],
       ["uuid", "b8a8e3f0-3c1f-4c8e-9d2b-2f2d6b1c6a01"], ["jsonb", b'{"z": 1, "a": [true, null]}'.hex()],
       ["decimal", "12.340"], ["range-int32", [[1, "inclusive"], [5, "exclusive"]]],
       ["range-int64", [None, [9, "inclusive"]]], ["range-decimal", [["1.5", "exclusive"], None]],
       ["array-int32", [1, None, 3]], ["array-int64", [1 << 33]], ["array-decimal", ["1.50", None]],
       ["array-str", ["x", None]], ["interval", [3_000_000, 2, 14]], ["db-null"]]
SELECT_ALL = ("SELECT b, i16, i32, i64, f32, f64, s, vc, ch, by, d, t, dt, ts, u, j, dec, r4, r8, rd, a4, "
              "a8, ad, ast, iv, nul, other_t FROM all_types WHERE id = $1")


def insert_all_types(served: Served) -> None:
    served.pg.sql("DROP TABLE IF EXISTS all_types")
    served.pg.sql(ALL_TYPES)
    placeholders = ", ".join(f"${i}" for i in range(1, len(ROW) + 1))
    ok(batch(served.url, "v4", served.pg.url, q(
        "INSERT INTO all_types (id, b, i16, i32, i64, f32, f64, s, vc, ch, by, d, t, dt, ts, u, j, dec, r4, "
        f"r8, rd, a4, a8, ad, ast, iv, nul) VALUES ({placeholders})", *ROW, op="execute")))
    served.pg.sql("UPDATE all_types SET other_t = '10.0.0.1' WHERE id = 1")


def test_every_column_type_round_trips_through_v4(served: Served) -> None:
    insert_all_types(served)
    (result,) = ok(batch(served.url, "v4", served.pg.url, q(SELECT_ALL, ["int32", 1])))
    assert [c[1] for c in result["columns"]] == [
        "boolean", "int16", "int32", "int64", "floating32", "floating64", "str", "str", "str", "binary",
        "date", "time", "datetime", "datetime", "uuid", "jsonb", "decimal", "range-int32", "range-int64",
        "range-decimal", "array-int32", "array-int64", "array-decimal", "array-str", "interval", "int32",
        ["other", "inet"]]
    (row,) = result["rows"]
    assert row[:14] == [["boolean", True], ["int16", -7], ["int32", 70000], ["int64", 1 << 40],
                        ["floating32", 1.5], ["floating64", 2.25], ["str", "héllo"], ["str", "vc"],
                        ["str", "ab  "], ["binary", "00ff10"], ["date", [2024, 2, 29]],
                        ["time", [12, 34, 56, 789000000]], ["datetime", [2024, 1, 2, 3, 4, 5, 123456000]],
                        ["datetime", [1970, 1, 2, 0, 0, 0, 0]]]
    assert row[14:] == [
        ["uuid", "b8a8e3f0-3c1f-4c8e-9d2b-2f2d6b1c6a01"], ["jsonb", b'{"a":[true,null],"z":1}'.hex()],
        ["decimal", "12.340"], ["range-int32", [[1, "inclusive"], [5, "exclusive"]]],
        ["range-int64", [None, [10, "exclusive"]]],  # PostgreSQL canonicalizes discrete ranges to [)
        ["range-decimal", [["1.5", "exclusive"], None]], ["array-int32", [1, None, 3]],
        ["array-int64", [1 << 33]], ["array-decimal", ["1.50", None]], ["array-str", ["x", None]],
        ["interval", [3_000_000, 2, 14]], ["db-null"],
        ["unsupported", bytes([2, 32, 0, 4, 10, 0, 0, 1]).hex()]]  # inet's binary form, as Spin returns it


def test_v3_and_v2_see_what_spin_narrows_them_to(served: Served) -> None:
    insert_all_types(served)
    (v3,) = ok(batch(served.url, "v3", served.pg.url, q(SELECT_ALL, ["int32", 1])))
    assert [c[1] for c in v3["columns"]][9:16] == ["binary", "date", "time", "datetime", "datetime", "other",
                                                    "other"]
    assert v3["rows"][0][10:17] == [["date", [2024, 2, 29]], ["time", [12, 34, 56, 789000000]],
                                    ["datetime", [2024, 1, 2, 3, 4, 5, 123456000]],
                                    ["datetime", [1970, 1, 2, 0, 0, 0, 0]], ["unsupported"], ["unsupported"],
                                    ["unsupported"]]
    (v2,) = ok(batch(served.url, "v2", served.pg.url, q(SELECT_ALL, ["int32", 1])))
    assert [c[1] for c in v2["columns"]][:11] == ["boolean", "int16", "int32", "int64", "floating32",
                                                  "floating64", "str", "str", "str", "binary", "other"]
    assert v2["rows"][0][9:11] == [["binary", "00ff10"], ["unsupported"]]
    assert v2["rows"][0][25] == ["db-null"]


def test_execute_counts_rows_and_key_value_addresses_work(served: Served) -> None:
    served.pg.sql("DROP TABLE IF EXISTS counted")
    served.pg.sql("CREATE TABLE counted (n int4)")
    address = served.pg.keyvalue(sslmode="disable")
    results = ok(batch(served.url, "v3", address,
                       q("INSERT INTO counted SELECT generate_series(1, 5)", op="execute"),
                       q("UPDATE counted SET n = n + $1 WHERE n > $2", ["int32", 10], ["int32", 2],
                         op="execute"),
                       q("SELECT count(*) FROM counted WHERE n > 10")))
    assert results[:2] == [{"count": 5}, {"count": 3}]
    assert results[2]["rows"] == [[["int64", 3]]]
    # no row, no columns: Spin reads the column types from the first row
    (empty,) = ok(batch(served.url, "v4", served.pg.url, q("SELECT n FROM counted WHERE n < 0")))
    assert empty == {"columns": [], "rows": []}


def test_errors_have_each_versions_shape(served: Served) -> None:
    kind, payload = error(batch(served.url, "v4", served.pg.url, q("SELECT * FROM no_such_table")))
    assert kind == "query-failed"
    db = payload["db-error"]
    assert (db["severity"], db["code"], db["message"]) == ("ERROR", "42P01",
                                                           'relation "no_such_table" does not exist')
    assert db["as-text"].endswith('relation "no_such_table" does not exist') and db["detail"] is None
    assert ["file", "parse_relation.c"] in db["extras"]
    for version in ("v3", "v2"):
        kind, text = error(batch(served.url, version, served.pg.url, q("SELECT * FROM no_such_table")))
        assert kind == "query-failed" and text == db["as-text"]
    assert error(batch(served.url, "v4", served.pg.url, q("SELECT $1::numeric", ["decimal", "1.2.3"]))) == (
        "bad-parameter", "invalid decimal 1.2.3")
    assert error(batch(served.url, "v4", served.pg.url,
                       q("SELECT $1::uuid", ["uuid", "nope"], op="execute"))) == (
        "value-conversion-failed", "invalid UUID nope")


def test_wrong_password_and_tls_modes_fail_as_connection_errors(served: Served) -> None:
    wrong = served.pg.url.replace(PASSWORD, "not-the-password")
    kind, text = error(batch(served.url, "v4", wrong, q("SELECT 1")))
    assert kind == "connection-failed" and "password authentication failed" in text
    assert "not-the-password" not in served.tauon.log()
    # the server offers no TLS: prefer (the default) falls back to plain, require fails
    assert ok(batch(served.url, "v4", served.pg.url + "?sslmode=prefer", q("SELECT 1")))
    kind, text = error(batch(served.url, "v4", served.pg.url + "?sslmode=require", q("SELECT 1")))
    assert kind == "connection-failed" and "SSL" in text
    kind, text = error(batch(served.url, "v2", "host=/run/postgresql user=spin", q("SELECT 1")))
    assert (kind, text) == ("connection-failed", "Unix sockets are not supported on WebAssembly")


def test_tls_server_is_verified_against_the_system_roots(served: Served) -> None:
    with server_root("pg-tls") as root, run_postgres(root, tls=True) as tls_pg:
        address = tls_pg.url.replace("127.0.0.1", "localhost")
        # a self-signed certificate is not trusted: prefer (the default) and require both fail, as Spin's
        # native-tls connector fails them; disable talks plain
        for mode in ("prefer", "require"):
            kind, text = error(batch(served.url, "v4", f"{address}?sslmode={mode}", q("SELECT 1")))
            assert kind == "connection-failed" and "certificate verify failed" in text, text
        assert ok(batch(served.url, "v4", f"{address}?sslmode=disable", q("SELECT 1")))
        # the server does speak TLS (psycopg directly, certificate not verified)
        with psycopg.connect(tls_pg.keyvalue(sslmode="require")) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            assert row == (True,)


def test_app_without_permission_is_denied_before_connecting(served: Served) -> None:
    before = served.pg.client_connections()
    for version in ("v2", "v3", "v4"):
        assert error(batch(served.denied_url, version, served.pg.url, q("SELECT 1"))) == (
            "connection-failed", f"address postgres://127.0.0.1:{served.pg.port} is not permitted")
    assert served.pg.client_connections() == before
    assert PASSWORD not in served.tauon.log()


def test_server_stopped_mid_request_then_back(served: Served) -> None:
    import threading

    results: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: results.append(
        batch(served.url, "v4", served.pg.url, q("SELECT pg_sleep(3)"))))
    worker.start()
    deadline = time.monotonic() + 20
    running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'"
    while served.pg.sql(running)[0][0] == 0:
        assert time.monotonic() < deadline, "the guest's query never reached the server"
        time.sleep(0.05)
    served.pg.stop()
    worker.join(30)
    kind, payload = error(results[0])
    assert kind == "query-failed", payload
    served.pg.start()
    (result,) = ok(batch(served.url, "v4", served.pg.url, q("SELECT 41 + $1", ["int32", 1])))
    assert result["rows"] == [[["int32", 42]]]


def test_a_server_that_never_answers_is_bounded_by_the_timeout(served: Served) -> None:
    ok(batch(served.url, "v4", served.pg.url, q("SELECT 1")))  # a pooled connection to reuse
    served.pg.pause()
    try:
        start = time.monotonic()
        response = batch(served.url, "v4", served.pg.url, q("SELECT 1"), timeout=TIMEOUT + 20)
        took = time.monotonic() - start
        assert took < TIMEOUT + 3, took
        assert response.status_code in (500, 502), response.text
    finally:
        served.pg.resume()
    (result,) = ok(batch(served.url, "v4", served.pg.url, q("SELECT 2")))
    assert result["rows"] == [[["int32", 2]]]


@pytest.mark.runtimes("wasmtime")
def test_swaps_with_pooled_connections_leak_nothing(served: Served) -> None:
    def settled(limit: int) -> int:
        deadline = time.monotonic() + 60
        while (count := served.pg.client_connections()) > limit and time.monotonic() < deadline:
            time.sleep(0.1)
        return count

    ok(batch(served.url, "v4", served.pg.url, q("SELECT 1")))
    baseline = settled(1)
    assert baseline == 1  # the pooled connection stays open between requests
    port = int(served.url.rsplit(":", 1)[1])
    swaps = 100
    for i in range(swaps):
        served.app_path.write_text(app_file(served.reference, port,
                                            limits={"request_timeout": TIMEOUT + 1 - i % 2}))
        served.tauon.wait_log(r"pg\.json: updated to generation", count=i + 1, timeout=60)
        ok(batch(served.url, "v4", served.pg.url, q("SELECT 1")))
    # every retired generation closed its pool: only the current one's connection is left
    assert settled(1) == 1


def test_js_component_round_trips_values_and_errors(served: Served) -> None:
    """The conformance test `postgres` from a JS guest (componentize-js bindings of @4.0.0)."""
    served.pg.sql("DROP TABLE IF EXISTS js_values")
    served.pg.sql("CREATE TABLE js_values (id int8, name text, r int8range, j jsonb, iv interval, n int4)")

    def call(op: str, statement: str, *params: list[Any]) -> httpx.Response:
        return httpx.post(f"{served.js_url}/pg", json={"address": served.pg.url, "op": op,
                                                       "statement": statement, "params": list(params)},
                          timeout=30)

    inserted = ok(call("execute", "INSERT INTO js_values VALUES ($1, $2, $3, $4, $5, $6)",
                       ["int64", 1 << 60], ["str", "from js"], ["range-int64", [[1, "inclusive"], None]],
                       ["jsonb", b'{"b":[1],"a":null}'.hex()], ["interval", [5, 6, 7]], ["db-null"]))
    assert inserted == {"count": 1}
    result = ok(call("query", "SELECT id, name, r, j, iv, n FROM js_values"))
    assert result["columns"] == [["id", "int64"], ["name", "str"], ["r", "range-int64"], ["j", "jsonb"],
                                 ["iv", "interval"], ["n", "int32"]]
    assert result["rows"] == [[["int64", str(1 << 60)], ["str", "from js"],
                               ["range-int64", [[1, "inclusive"], None]],
                               ["jsonb", b'{"a":null,"b":[1]}'.hex()], ["interval", [5, 6, 7]], ["db-null"]]]
    kind, payload = error(call("query", "SELECT * FROM js_nope"))
    assert kind == "query-failed" and payload["db-error"]["code"] == "42P01"
