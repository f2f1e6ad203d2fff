"""The Spin 1.x `outbound-pg` and `outbound-mysql` core imports (wit-bindgen 0.2 canonical ABI), on the same
clients as the component interfaces (`services/postgres.py`, `services/mysql.py`).

Both take `(address, statement, params: list<parameter-value>)` flattened to 6 i32s plus the return
area, and answer `expected<row-set, error>` (query) or `expected<u64 | unit, error>` (execute), the error
being `pg-error` / `mysql-error` {success, connection-failed, bad-parameter, query-failed,
value-conversion-failed, other-error}. Values use the unversioned rdbms-types, and as in Spin a v1 call
opens a connection (pooled, for PostgreSQL) for that call only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tauon.executors.legacy_abi import (
    MAX_LIST,
    AbiError,
    GuestMemory,
    lower_bytes,
    lower_string,
    read_bytes,
    read_string,
    store_err_case,
    store_ok,
)
from tauon.hostif.spin_pg import check_allowed, v1_row_set, v2_params
from tauon.services.mysql import MysqlError
from tauon.services.pg_address import PgError

if TYPE_CHECKING:
    from tauon.executors.legacy_imports import RequestContext

PARAM_TAGS = ("boolean", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "floating32", "floating64", "str", "binary", "db-null")
VALUE_TAGS = (*PARAM_TAGS, "unsupported")
DATA_TYPES = ("boolean", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "floating32", "floating64", "str", "binary", "other")
ERROR_CASES = {"connection-failed": 1, "bad-parameter": 2, "query-failed": 3, "value-conversion-failed": 4,
               "other": 5, "other-error": 5}
_SCALARS = {"boolean": "<?", "int8": "<b", "int16": "<h", "int32": "<i", "int64": "<q", "uint8": "<B",
            "uint16": "<H", "uint32": "<I", "uint64": "<Q", "floating32": "<f", "floating64": "<d"}
VALUE_SIZE = 16  # variant: tag u8 at +0, payload (8-aligned) at +8
COLUMN_SIZE = 12  # record {name: string, data-type: enum u8}


def read_params(mem: GuestMemory, ptr: int, count: int) -> list[tuple[str, Any]]:
    """A guest list<parameter-value> as `(case, payload)` tuples, as the component codec lifts them."""
    if count > MAX_LIST:
        raise AbiError(f"list of {count} parameters is too long")
    raw = read_bytes(mem, ptr, count * VALUE_SIZE)
    out: list[tuple[str, Any]] = []
    for i in range(count):
        base = i * VALUE_SIZE
        tag = raw[base]
        if tag >= len(PARAM_TAGS):
            raise AbiError(f"invalid parameter-value tag {tag}")
        name = PARAM_TAGS[tag]
        if name in _SCALARS:
            out.append((name, struct.unpack_from(_SCALARS[name], raw, base + 8)[0]))
        elif name in ("str", "binary"):
            p, n = struct.unpack_from("<II", raw, base + 8)
            out.append((name, read_string(mem, p, n) if name == "str" else read_bytes(mem, p, n)))
        else:
            out.append((name, None))
    return out


def _lower_value(mem: GuestMemory, value: Any) -> bytes:
    name, payload = (value, None) if isinstance(value, str) else value
    payload_any: Any = payload
    tag = VALUE_TAGS.index(name)
    if name in _SCALARS:
        return struct.pack("<B7x", tag) + struct.pack(_SCALARS[name], payload).ljust(8, b"\0")
    if name == "str":
        return struct.pack("<B7xII", tag, *lower_string(mem, payload_any))
    if name == "binary":
        return struct.pack("<B7xII", tag, *lower_bytes(mem, payload_any))
    return struct.pack("<B15x", tag)


def _alloc_write(mem: GuestMemory, data: bytes, align: int) -> int:
    ptr = mem.alloc(len(data), align)
    if data:
        mem.write(ptr, data)
    return ptr


def store_row_set(mem: GuestMemory, at: int, columns: Sequence[tuple[str, str]],
                  rows: Sequence[Sequence[Any]]) -> None:
    """A row-set record {columns: list<column>, rows: list<list<db-value>>} at `at`."""
    column_table = b"".join(struct.pack("<IIB3x", *lower_string(mem, name), DATA_TYPES.index(dtype))
                            for name, dtype in columns)
    row_table = bytearray()
    for row in rows:
        values = b"".join(_lower_value(mem, v) for v in row)
        row_table += struct.pack("<II", _alloc_write(mem, values, 8), len(row))
    mem.write(at, struct.pack("<IIII", _alloc_write(mem, column_table, 4), len(columns),
                              _alloc_write(mem, bytes(row_table), 4), len(rows)))


def _error(mem: GuestMemory, ret: int, offset: int, kind: str, text: str) -> None:
    store_err_case(mem, ret, offset, ERROR_CASES[kind], text)


Op = Callable[["RequestContext", str, str, list[tuple[str, Any]], float], Any]


def _import(op: Op, offset: int, store: Callable[[GuestMemory, int, Any], None]) -> Callable[..., None]:
    """A host function (mem, ctx, address, statement, params, ret); `offset`: where the payload sits."""

    def run(mem: GuestMemory, ctx: RequestContext, ap: int, al: int, sp: int, sl: int, pp: int, pl: int,
            ret: int) -> None:
        address, statement = read_string(mem, ap, al), read_string(mem, sp, sl)
        params = read_params(mem, pp, pl)
        try:
            result = op(ctx, address, statement, params, ctx.deadline)
        except (PgError, MysqlError) as exc:
            kind, payload = exc.variant()
            if isinstance(payload, tuple):  # a v4 query-error: v1 carries its text
                payload = payload[1] if payload[0] == "text" else payload[1][0]
            _error(mem, ret, offset, kind, str(payload))
            return
        store_ok(mem, ret)
        store(mem, ret + offset, result)

    return run


def _pg(call: Callable[[Any, str, list[Any], float], Any]) -> Op:
    def op(ctx: RequestContext, address: str, statement: str, params: list[Any], deadline: float) -> Any:
        checked = v2_params(params)
        check_allowed(address, ctx.allows_url)
        clients = ctx.services.postgres
        if clients is None:
            raise PgError("other", "tauon has no outbound PostgreSQL client for this component")
        conn = clients.get().acquire(address, deadline)
        try:
            return call(conn, statement, checked, deadline)
        finally:
            conn.release()

    return op


def _mysql(call: Callable[[Any, str, list[Any], float], Any]) -> Op:
    def op(ctx: RequestContext, address: str, statement: str, params: list[Any], deadline: float) -> Any:
        if not ctx.allows_url(address, "mysql"):
            raise MysqlError("connection-failed", f"address {address} is not permitted")
        clients = ctx.services.mysql
        if clients is None:
            raise MysqlError("other", "tauon has no outbound MySQL client for this component")
        conn = clients.connect(address, deadline)
        try:
            return call(conn, statement, params, deadline)
        finally:
            conn.close()

    return op


def _store_rows(mem: GuestMemory, at: int, result: tuple[list[Any], list[Any]]) -> None:
    store_row_set(mem, at, *result)


def _store_u64(mem: GuestMemory, at: int, count: int) -> None:
    mem.write(at, struct.pack("<Q", count))


def _store_nothing(mem: GuestMemory, at: int, _: Any) -> None:
    return None


HOST_FUNCS: dict[tuple[str, str], Callable[..., None]] = {
    # expected<row-set, error>: payload at 4; pg execute's u64 makes the payload 8-aligned.
    ("outbound-pg", "query"): _import(_pg(lambda c, q, p, d: v1_row_set(c.query(q, p, d))), 4, _store_rows),
    ("outbound-pg", "execute"): _import(_pg(lambda c, q, p, d: c.execute(q, p, d)), 8, _store_u64),
    ("outbound-mysql", "query"): _import(_mysql(lambda c, q, p, d: c.query(q, p, d)), 4, _store_rows),
    ("outbound-mysql", "execute"): _import(_mysql(lambda c, q, p, d: c.execute(q, p, d)), 4, _store_nothing),
}
