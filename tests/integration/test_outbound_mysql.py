"""Outbound MySQL end to end: the spin-sdk 3.4.1 fixture's /mysql/v2/batch route (fermyon:spin/mysql@2.0.0)
pushed to the real registry, served by the real `tauon` process, against a real MariaDB on loopback.

Spin's mapping by column type and flags, its error shapes, the app without permission, faults (server
stopped mid-request, a server that never answers) and connections closed with each request and swap.
Every test runs on both component runtimes (`component_runtime`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.apps import app_file
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.rdbms import error, ok, push_outbound, q, server_root
from support.registry import RegistryServer
from support.servers.mysql import PASSWORD, MysqlServer, run_mysql

pytestmark = pytest.mark.integration

TIMEOUT = 4


@dataclass
class Served:
    tauon: TauonProcess
    my: MysqlServer
    url: str
    denied_url: str
    app_path: Path
    reference: str


@pytest.fixture(scope="module")
def served(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory, component_runtime: str,
           shared_cache: Path) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("outbound-mysql")
    with server_root("mysql") as root, run_mysql(root / "my") as my, \
            run_tauon(tmp / "tauon", "--workers", "1", cache_dir=shared_cache) as tauon:
        ref = push_outbound(registry, "outbound/mysql", [f"mysql://127.0.0.1:{my.port}"])
        denied_ref = push_outbound(registry, "outbound/mysql-denied", [])
        urls = []
        for name, reference in (("my", ref), ("denied", denied_ref)):
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(
                app_file(reference, port, limits={"request_timeout": TIMEOUT}))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/.well-known/spin/health", timeout=180)
        yield Served(tauon, my, urls[0], urls[1], tauon.watch_dir / "my.json", ref)


def batch(url: str, address: str, *steps: dict[str, Any], timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/mysql/v2/batch", json={"address": address, "steps": list(steps)},
                      timeout=timeout)


TABLE = """CREATE TABLE typed (id INT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT,
    u16 SMALLINT UNSIGNED, i24 MEDIUMINT, i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED, f FLOAT,
    d DOUBLE, s VARCHAR(20), c CHAR(3), tx TEXT, bl BLOB, vb VARBINARY(8), bn BINARY(2), mb MEDIUMBLOB,
    dec_ DECIMAL(5,2), dt DATE, nul INT)"""
ROW = [["int32", 1], ["int8", -5], ["uint8", 250], ["int16", -300], ["uint16", 65000], ["int32", -70000],
       ["int32", 2_000_000_000], ["uint32", 4_000_000_000], ["int64", -(1 << 40)], ["uint64", (1 << 64) - 1],
       ["floating32", 1.5], ["floating64", 2.25], ["str", "it's a ? mark"], ["str", "abc"], ["str", "héllo"],
       ["binary", "00ff27"], ["binary", "6869"], ["binary", "0102"], ["binary", "ff"], ["db-null"],
       ["db-null"], ["db-null"]]


def test_spins_type_mapping_round_trips(served: Served) -> None:
    served.my.sql("DROP TABLE IF EXISTS typed")
    served.my.sql(TABLE)
    marks = ", ".join("?" for _ in ROW)
    results = ok(batch(served.url, served.my.url,
                       q(f"INSERT INTO typed VALUES ({marks})", *ROW, op="execute"),
                       q("SELECT i8, u8, i16, u16, i24, i32, u32, i64, u64, f, d, s, c, tx, bl, vb, bn, mb, "
                         "nul FROM typed WHERE s = ?", ["str", "it's a ? mark"])))
    assert results[0] == {"count": None}  # execute returns nothing in v2
    result = results[1]
    assert [c[1] for c in result["columns"]] == [
        "int8", "uint8", "int16", "uint16", "int32", "int32", "uint32", "int64", "uint64", "floating32",
        "floating64", "str", "str", "str", "binary", "binary", "binary", "binary", "int32"]
    assert result["rows"] == [[
        ["int8", -5], ["uint8", 250], ["int16", -300], ["uint16", 65000], ["int32", -70000],
        ["int32", 2_000_000_000], ["uint32", 4_000_000_000], ["int64", -(1 << 40)], ["uint64", (1 << 64) - 1],
        ["floating32", 1.5], ["floating64", 2.25], ["str", "it's a ? mark"], ["str", "abc"], ["str", "héllo"],
        ["binary", "00ff27"], ["binary", "6869"], ["binary", "0102"], ["binary", "ff"], ["db-null"]]]


def test_types_spin_does_not_map_fail_the_query_when_a_value_is_there(served: Served) -> None:
    served.my.sql("DROP TABLE IF EXISTS odd")
    served.my.sql("CREATE TABLE odd (id INT, dec_ DECIMAL(5,2), dt DATE)")
    served.my.sql("INSERT INTO odd VALUES (1, NULL, NULL), (2, 1.25, '2024-01-02')")
    (nulls,) = ok(batch(served.url, served.my.url, q("SELECT dec_, dt FROM odd WHERE id = 1")))
    assert nulls == {"columns": [["dec_", "other"], ["dt", "other"]], "rows": [[["db-null"], ["db-null"]]]}
    kind, text = error(batch(served.url, served.my.url, q("SELECT dec_ FROM odd WHERE id = 2")))
    assert kind == "value-conversion-failed" and "column dec_" in text


def test_errors_and_permissions(served: Served) -> None:
    kind, text = error(batch(served.url, served.my.url, q("SELECT * FROM no_such_table")))
    assert kind == "query-failed" and "1146" in text and "no_such_table" in text
    kind, text = error(batch(served.url, served.my.url, q("SELECT ?", ["int32", 1], ["int32", 2])))
    assert kind == "query-failed" and "parameters" in text
    wrong = served.my.url.replace(PASSWORD, "not-the-password")
    kind, text = error(batch(served.url, wrong, q("SELECT 1")))
    assert kind == "connection-failed" and "Access denied" in text
    kind, text = error(batch(served.url, served.my.url + "?ssl-mode=REQUIRED", q("SELECT 1")))
    assert kind == "connection-failed" and "SSL" in text
    before = served.my.client_connections()
    assert error(batch(served.denied_url, served.my.url, q("SELECT 1"))) == (
        "connection-failed", f"address {served.my.url} is not permitted")
    assert served.my.client_connections() == before
    log = served.tauon.log()
    assert PASSWORD not in log and "not-the-password" not in log


def test_connections_close_with_the_request_and_across_swaps(served: Served) -> None:
    def settled(limit: int) -> int:
        deadline = time.monotonic() + 60
        while (count := served.my.client_connections()) > limit and time.monotonic() < deadline:
            time.sleep(0.1)
        return count

    ok(batch(served.url, served.my.url, q("SELECT 1")))
    assert settled(0) == 0  # Spin keeps no MySQL pool: the connection closes with its handle
    port = int(served.url.rsplit(":", 1)[1])
    for i in range(10):
        served.app_path.write_text(app_file(served.reference, port,
                                            limits={"request_timeout": TIMEOUT + 1 - i % 2}))
        served.tauon.wait_log(r"my\.json: updated to generation", count=i + 1, timeout=60)
        ok(batch(served.url, served.my.url, q("SELECT 1")))
    assert settled(0) == 0


def test_server_stopped_mid_request_then_back(served: Served) -> None:
    results: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: results.append(
        batch(served.url, served.my.url, q("SELECT SLEEP(3)"))))
    worker.start()
    deadline = time.monotonic() + 20
    running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(3)'"
    while not served.my.sql(running)[0][0]:
        assert time.monotonic() < deadline, "the guest's query never reached the server"
        time.sleep(0.05)
    served.my.stop()
    worker.join(30)
    kind, _ = error(results[0])
    assert kind == "query-failed"
    served.my.start()
    (result,) = ok(batch(served.url, served.my.url, q("SELECT 41 + ?", ["int32", 1])))
    assert result["rows"][0][0][1] == 42  # the integer type is the server's choice


def test_a_server_that_never_answers_is_bounded_by_the_timeout(served: Served) -> None:
    served.my.process.pause()
    try:
        start = time.monotonic()
        response = batch(served.url, served.my.url, q("SELECT 1"), timeout=TIMEOUT + 20)
        took = time.monotonic() - start
        assert took < TIMEOUT + 3, took
        assert response.status_code in (500, 502), response.text
    finally:
        served.my.process.resume()
    (result,) = ok(batch(served.url, served.my.url, q("SELECT 2")))
    assert result["rows"][0][0][1] == 2
