"""Memory layout of the Spin 1.x core-module ABI (wit-bindgen 0.2 canonical ABI, spin-spec §4.2). Pure.

Everything works on a `GuestMemory` (read, write, allocate in the guest), so the layouts are tested
without wasm. Little-endian, 32-bit pointers. Lists the host hands to the guest are allocated with the
guest's own realloc; results of imported functions go to a return area the guest passed as last param.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
"""The `method` enum, in order."""
RESPONSE_SIZE = 28
HEADER_SIZE = 16
SQLITE_VALUE_SIZE = 16
MAX_LIST = 1 << 26
"""Refuse guest lists longer than this many elements (a corrupt length must not exhaust host memory)."""


class AbiError(Exception):
    """The guest's memory does not hold what the ABI says (bad pointer, bad UTF-8, bad tag)."""


class GuestMemory(Protocol):
    def read(self, ptr: int, length: int) -> bytes: ...

    def write(self, ptr: int, data: bytes) -> None: ...

    def alloc(self, size: int, align: int) -> int:
        """A fresh guest allocation: realloc(0, 0, align, size)."""
        ...


@dataclass(frozen=True, slots=True)
class Allocation:
    ptr: int
    size: int
    align: int


@dataclass(slots=True)
class LegacyResponse:
    status: int
    headers: list[tuple[str, str]] | None
    body: bytes | None
    allocations: list[Allocation] = field(default_factory=list)
    """What the host frees with canonical_abi_free once it has read the response."""


def method_index(method: str) -> int | None:
    """The enum index of an HTTP method, or None (Spin answers 405)."""
    try:
        return METHODS.index(method)
    except ValueError:
        return None


# -- scalars ----------------------------------------------------------------------------------------


def read_u8(mem: GuestMemory, ptr: int) -> int:
    return mem.read(ptr, 1)[0]


def read_u32(mem: GuestMemory, ptr: int) -> int:
    return int(struct.unpack("<I", mem.read(ptr, 4))[0])


def write_u8(mem: GuestMemory, ptr: int, value: int) -> None:
    mem.write(ptr, bytes((value & 0xFF,)))


def write_u32(mem: GuestMemory, ptr: int, value: int) -> None:
    mem.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))


def write_i64(mem: GuestMemory, ptr: int, value: int) -> None:
    mem.write(ptr, struct.pack("<q", value))


# -- strings and lists ------------------------------------------------------------------------------


def read_bytes(mem: GuestMemory, ptr: int, length: int) -> bytes:
    return mem.read(ptr, length) if length else b""


def read_string(mem: GuestMemory, ptr: int, length: int) -> str:
    try:
        return read_bytes(mem, ptr, length).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AbiError(f"string at {ptr:#x} is not UTF-8: {exc.reason}") from None


def read_string_list(mem: GuestMemory, ptr: int, count: int) -> list[str]:
    _check_count(count)
    raw = read_bytes(mem, ptr, count * 8)
    return [read_string(mem, *struct.unpack_from("<II", raw, i * 8)) for i in range(count)]


def read_pairs(mem: GuestMemory, ptr: int, count: int) -> list[tuple[str, str]]:
    """A list<tuple<string,string>>: 16-byte elements [name_ptr, name_len, value_ptr, value_len]."""
    _check_count(count)
    raw = read_bytes(mem, ptr, count * HEADER_SIZE)
    pairs = []
    for i in range(count):
        np, nl, vp, vl = struct.unpack_from("<IIII", raw, i * HEADER_SIZE)
        pairs.append((read_string(mem, np, nl), read_string(mem, vp, vl)))
    return pairs


def lower_bytes(mem: GuestMemory, data: bytes) -> tuple[int, int]:
    """Copy `data` into a fresh guest allocation (align 1); (ptr, len). Empty data still allocates 0."""
    ptr = mem.alloc(len(data), 1)
    if data:
        mem.write(ptr, data)
    return ptr, len(data)


def lower_string(mem: GuestMemory, text: str) -> tuple[int, int]:
    return lower_bytes(mem, text.encode("utf-8"))


def lower_pairs(mem: GuestMemory, pairs: Sequence[tuple[str, str]]) -> tuple[int, int]:
    table = bytearray()
    for name, value in pairs:
        table += struct.pack("<IIII", *lower_string(mem, name), *lower_string(mem, value))
    ptr = mem.alloc(len(table), 4)
    if table:
        mem.write(ptr, bytes(table))
    return ptr, len(pairs)


def lower_string_list(mem: GuestMemory, items: Sequence[str]) -> tuple[int, int]:
    table = bytearray()
    for item in items:
        table += struct.pack("<II", *lower_string(mem, item))
    ptr = mem.alloc(len(table), 4)
    if table:
        mem.write(ptr, bytes(table))
    return ptr, len(items)


def store_string(mem: GuestMemory, at: int, text: str) -> None:
    """Allocate `text` in the guest and write its (ptr, len) at `at`."""
    mem.write(at, struct.pack("<II", *lower_string(mem, text)))


def store_bytes(mem: GuestMemory, at: int, data: bytes) -> None:
    mem.write(at, struct.pack("<II", *lower_bytes(mem, data)))


def _check_count(count: int) -> None:
    if count > MAX_LIST:
        raise AbiError(f"list of {count} elements is larger than the host accepts")


# -- the inbound-http export ------------------------------------------------------------------------


def lower_request(
    mem: GuestMemory, method: int, uri: str, headers: Sequence[tuple[str, str]], body: bytes
) -> tuple[int, ...]:
    """The 10 flat params of handle-http-request. `params` is always empty and the body always some."""
    uri_ptr, uri_len = lower_string(mem, uri)
    headers_ptr, headers_len = lower_pairs(mem, headers)
    params_ptr, params_len = lower_pairs(mem, ())
    body_ptr, body_len = lower_bytes(mem, body)
    return (method, uri_ptr, uri_len, headers_ptr, headers_len, params_ptr, params_len, 1, body_ptr, body_len)


def lift_response(mem: GuestMemory, ret: int) -> LegacyResponse:
    """Read the 28-byte response record at `ret`, noting each allocation the host must free."""
    raw = mem.read(ret, RESPONSE_SIZE)
    status, has_headers, headers_ptr, headers_len, has_body, body_ptr, body_len = struct.unpack(
        "<H2xB3xIIB3xII", raw
    )
    response = LegacyResponse(status=status, headers=None, body=None)
    if has_headers > 1 or has_body > 1:
        raise AbiError(f"invalid option tag in the response record at {ret:#x}")
    if has_headers:
        _check_count(headers_len)
        response.headers = read_pairs(mem, headers_ptr, headers_len)
        table = read_bytes(mem, headers_ptr, headers_len * HEADER_SIZE)
        for i in range(headers_len):
            np, nl, vp, vl = struct.unpack_from("<IIII", table, i * HEADER_SIZE)
            response.allocations += [Allocation(np, nl, 1), Allocation(vp, vl, 1)]
        response.allocations.append(Allocation(headers_ptr, headers_len * HEADER_SIZE, 4))
    if has_body:
        response.body = read_bytes(mem, body_ptr, body_len)
        response.allocations.append(Allocation(body_ptr, body_len, 1))
    return response


# -- results of imported functions ------------------------------------------------------------------


def store_ok(mem: GuestMemory, ret: int) -> None:
    write_u8(mem, ret, 0)


def store_err_case(mem: GuestMemory, ret: int, offset: int, case: int, message: str | None = None) -> None:
    """`expected<_, variant>` error: tag 1 at `ret`, the case at `ret+offset`, and for a case with a
    string payload the (ptr, len) right after the case tag, 4-aligned."""
    write_u8(mem, ret, 1)
    write_u8(mem, ret + offset, case)
    if message is not None:
        store_string(mem, ret + offset + 4, message)


# -- sqlite values ----------------------------------------------------------------------------------

SqliteValue = int | float | str | bytes | None


def read_sqlite_values(mem: GuestMemory, ptr: int, count: int) -> list[SqliteValue]:
    """A list<value>: 16-byte elements, tag u8 at +0, payload at +8 (s64, f64, or ptr/len)."""
    _check_count(count)
    raw = read_bytes(mem, ptr, count * SQLITE_VALUE_SIZE)
    values: list[SqliteValue] = []
    for i in range(count):
        base = i * SQLITE_VALUE_SIZE
        tag = raw[base]
        if tag == 0:
            values.append(struct.unpack_from("<q", raw, base + 8)[0])
        elif tag == 1:
            values.append(struct.unpack_from("<d", raw, base + 8)[0])
        elif tag in (2, 3):
            p, n = struct.unpack_from("<II", raw, base + 8)
            values.append(read_string(mem, p, n) if tag == 2 else read_bytes(mem, p, n))
        elif tag == 4:
            values.append(None)
        else:
            raise AbiError(f"invalid sqlite value tag {tag}")
    return values


def _lower_sqlite_value(mem: GuestMemory, value: SqliteValue) -> bytes:
    if value is None:
        return struct.pack("<B15x", 4)
    if isinstance(value, bool):  # never produced by sqlite3, but an int subclass
        value = int(value)
    if isinstance(value, int):
        return struct.pack("<B7xq", 0, value)
    if isinstance(value, float):
        return struct.pack("<B7xd", 1, value)
    if isinstance(value, str):
        return struct.pack("<B7xII", 2, *lower_string(mem, value))
    return struct.pack("<B7xII", 3, *lower_bytes(mem, value))


def store_query_result(
    mem: GuestMemory, at: int, columns: Sequence[str], rows: Sequence[Sequence[SqliteValue]]
) -> None:
    """A query-result record {columns: list<string>, rows: list<{values: list<value>}>} at `at`."""
    row_table = bytearray()
    for row in rows:
        values = b"".join(_lower_sqlite_value(mem, v) for v in row)
        values_ptr = mem.alloc(len(values), 8)
        if values:
            mem.write(values_ptr, values)
        row_table += struct.pack("<II", values_ptr, len(row))
    columns_ptr, columns_len = lower_string_list(mem, columns)
    rows_ptr = mem.alloc(len(row_table), 4)
    if row_table:
        mem.write(rows_ptr, bytes(row_table))
    mem.write(at, struct.pack("<IIII", columns_ptr, columns_len, rows_ptr, len(rows)))
