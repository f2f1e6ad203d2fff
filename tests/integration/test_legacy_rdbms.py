"""The Spin 1.x `outbound-pg` / `outbound-mysql` core imports through a real wasm module and real servers.

A small core module (WAT, below) imports the four functions with the wit-bindgen 0.2 flattening and
re-exports them, so the test calls them through wasmtime exactly as a Spin 1.x guest does: it writes the
address, statement and `list<parameter-value>` into the module's memory, and reads the
`expected<row-set | u64 | unit, error>` the host stored back.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from support.rdbms import server_root
from support.servers.mysql import MysqlServer, run_mysql
from support.servers.postgres import PostgresServer, run_postgres
from support.spin_services import app_services, component
from tauon.app.allowed_hosts import parse_allowed_hosts
from tauon.executors.legacy_imports import RequestContext, define_imports
from tauon.executors.legacy_rdbms import DATA_TYPES, VALUE_TAGS
from tauon.services import ComponentServices

pytestmark = pytest.mark.integration

WAT = """
(module
  (import "outbound-pg" "query" (func $pg_query (param i32 i32 i32 i32 i32 i32 i32)))
  (import "outbound-pg" "execute" (func $pg_execute (param i32 i32 i32 i32 i32 i32 i32)))
  (import "outbound-mysql" "query" (func $my_query (param i32 i32 i32 i32 i32 i32 i32)))
  (import "outbound-mysql" "execute" (func $my_execute (param i32 i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "canonical_abi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "pg-query") (param i32 i32 i32 i32 i32 i32 i32)
    (call $pg_query (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)
                    (local.get 6)))
  (func (export "pg-execute") (param i32 i32 i32 i32 i32 i32 i32)
    (call $pg_execute (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)
                      (local.get 6)))
  (func (export "mysql-query") (param i32 i32 i32 i32 i32 i32 i32)
    (call $my_query (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)
                    (local.get 6)))
  (func (export "mysql-execute") (param i32 i32 i32 i32 i32 i32 i32)
    (call $my_execute (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)
                      (local.get 6)))
)
"""
PARAM_FORMATS = {"int32": "<i", "int64": "<q", "uint8": "<B", "floating64": "<d"}
ERRORS = ("success", "connection-failed", "bad-parameter", "query-failed", "value-conversion-failed",
          "other-error")


class Guest:
    """One instance of the module, with helpers to lay out arguments and read results."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, context: RequestContext) -> None:
        linker = wasmtime.Linker(engine)
        define_imports(linker)
        self.store = wasmtime.Store(engine, data=context)
        self.exports = linker.instantiate(self.store, module).exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.heap = 100_000

    def put(self, data: bytes, align: int = 8) -> int:
        self.heap = (self.heap + align - 1) // align * align
        ptr = self.heap
        self.memory.write(self.store, data, ptr)
        self.heap += max(len(data), 1)
        return ptr

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + n))

    def string(self, ptr: int, n: int) -> str:
        return self.read(ptr, n).decode()

    def params(self, params: list[tuple[str, Any]]) -> tuple[int, int]:
        table = b""
        for tag, value in params:
            index = VALUE_TAGS.index(tag)
            if tag == "str":
                raw = value.encode()
                table += struct.pack("<B7xII", index, self.put(raw, 1), len(raw))
            elif tag == "db-null":
                table += struct.pack("<B15x", index)
            else:
                table += struct.pack("<B7x", index) + struct.pack(PARAM_FORMATS[tag], value).ljust(8, b"\0")
        return self.put(table), len(params)

    def call(self, name: str, address: str, statement: str, params: list[tuple[str, Any]]) -> int:
        a, s = address.encode(), statement.encode()
        ret = self.put(bytes(32))
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        func(self.store, self.put(a, 1), len(a), self.put(s, 1), len(s), *self.params(params), ret)
        return ret

    def error(self, ret: int, offset: int) -> tuple[str, str] | None:
        if self.read(ret, 1)[0] == 0:
            return None
        case = self.read(ret + offset, 1)[0]
        ptr, n = struct.unpack("<II", self.read(ret + offset + 4, 8))
        return ERRORS[case], self.string(ptr, n)

    def row_set(self, ret: int) -> tuple[list[tuple[str, str]], list[list[Any]]]:
        assert self.read(ret, 1)[0] == 0, self.error(ret, 4)
        cols_ptr, cols_n, rows_ptr, rows_n = struct.unpack("<IIII", self.read(ret + 4, 16))
        columns = []
        for i in range(cols_n):
            p, n, dtype = struct.unpack("<IIB3x", self.read(cols_ptr + 12 * i, 12))
            columns.append((self.string(p, n), DATA_TYPES[dtype]))
        rows = []
        for r in range(rows_n):
            vp, vn = struct.unpack("<II", self.read(rows_ptr + 8 * r, 8))
            rows.append([self._value(vp + 16 * i) for i in range(vn)])
        return columns, rows

    def _value(self, at: int) -> Any:
        tag = VALUE_TAGS[self.read(at, 1)[0]]
        if tag in ("str", "binary"):
            p, n = struct.unpack("<II", self.read(at + 8, 8))
            return (tag, self.string(p, n) if tag == "str" else self.read(p, n))
        formats = {"int16": "<h", "int32": "<i", "int64": "<q", "uint8": "<B", "floating64": "<d",
                   "boolean": "<?", "int8": "<b"}
        if tag in formats:
            return (tag, struct.unpack(formats[tag], self.read(at + 8, struct.calcsize(formats[tag])))[0])
        return (tag,)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, MysqlServer]]:
    with server_root("legacy-rdbms") as root, run_postgres(root / "pg") as pg, run_mysql(root / "my") as my:
        yield pg, my


@pytest.fixture
def guest(servers: tuple[PostgresServer, MysqlServer], tmp_path: Path) -> Iterator[Guest]:
    pg, my = servers
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, WAT)
    allowed = parse_allowed_hosts([f"postgres://127.0.0.1:{pg.port}", f"mysql://127.0.0.1:{my.port}"])
    with app_services(None, component()) as services:
        assert isinstance(services, ComponentServices)
        context = RequestContext(services, "legacy.json/web", logging.getLogger("test"), allowed.allows)
        yield Guest(engine, module, context)


def test_outbound_pg_query_and_execute(guest: Guest, servers: tuple[PostgresServer, MysqlServer]) -> None:
    pg, _ = servers
    pg.sql("DROP TABLE IF EXISTS legacy")
    pg.sql("CREATE TABLE legacy (id int4, name text, big int8, ratio float8, at date)")
    ret = guest.call("pg-execute", pg.url, "INSERT INTO legacy VALUES ($1, $2, $3, $4, '2024-01-02'), "
                     "($1 + 1, NULL, NULL, NULL, NULL)",
                     [("int32", 7), ("str", "seven"), ("int64", 1 << 40), ("floating64", 0.5)])
    assert guest.error(ret, 8) is None
    assert struct.unpack("<Q", guest.read(ret + 8, 8))[0] == 2
    columns, rows = guest.row_set(guest.call("pg-query", pg.url, "SELECT * FROM legacy ORDER BY id", []))
    assert columns == [("id", "int32"), ("name", "str"), ("big", "int64"), ("ratio", "floating64"),
                       ("at", "other")]
    assert rows == [[("int32", 7), ("str", "seven"), ("int64", 1 << 40), ("floating64", 0.5),
                     ("unsupported",)],
                    [("int32", 8), ("db-null",), ("db-null",), ("db-null",), ("db-null",)]]


def test_outbound_pg_errors(guest: Guest, servers: tuple[PostgresServer, MysqlServer]) -> None:
    pg, _ = servers
    ret = guest.call("pg-query", pg.url, "SELECT * FROM nope", [])
    kind, text = guest.error(ret, 4) or ("", "")
    assert kind == "query-failed" and 'relation "nope" does not exist' in text
    ret = guest.call("pg-execute", "postgres://spin@10.1.2.3/db", "SELECT 1", [])
    assert guest.error(ret, 8) == ("connection-failed", "address postgres://10.1.2.3 is not permitted")
    ret = guest.call("pg-query", pg.url, "SELECT $1", [("uint8", 1)])
    assert guest.error(ret, 4) == ("value-conversion-failed", "Postgres does not support unsigned integers")


def test_outbound_mysql_query_and_execute(guest: Guest, servers: tuple[PostgresServer, MysqlServer]) -> None:
    _, my = servers
    my.sql("DROP TABLE IF EXISTS legacy")
    my.sql("CREATE TABLE legacy (id INT, name VARCHAR(10), u TINYINT UNSIGNED)")
    ret = guest.call("mysql-execute", my.url, "INSERT INTO legacy VALUES (?, ?, ?)",
                     [("int32", 1), ("str", "one"), ("uint8", 200)])
    assert guest.error(ret, 4) is None
    columns, rows = guest.row_set(guest.call("mysql-query", my.url, "SELECT * FROM legacy WHERE id = ?",
                                             [("int32", 1)]))
    assert columns == [("id", "int32"), ("name", "str"), ("u", "uint8")]
    assert rows == [[("int32", 1), ("str", "one"), ("uint8", 200)]]
    ret = guest.call("mysql-query", "mysql://spin:pw@10.1.2.3/db", "SELECT 1", [])
    assert guest.error(ret, 4) == ("connection-failed",
                                   "address mysql://spin:pw@10.1.2.3/db is not permitted")
    assert my.client_connections() == 0  # each v1 call's connection is closed after it
