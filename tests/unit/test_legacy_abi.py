"""The Spin 1.x canonical-ABI layouts, on a byte array standing in for guest memory."""

from __future__ import annotations

import logging
import struct

import pytest

from tauon.executors.legacy_abi import (
    METHODS,
    AbiError,
    Allocation,
    lift_response,
    lower_request,
    method_index,
    read_pairs,
    read_sqlite_values,
    read_string,
    read_string_list,
    store_err_case,
    store_query_result,
)
from tauon.executors.legacy_imports import IMPORTS, RequestContext
from tauon.hostif.spin_unconfigured import LLM_UNSUPPORTED
from tauon.services import ComponentServices
from tauon.services.keyvalue import KeyValueStores
from tauon.services.sqlite import Databases
from tauon.services.variables import ComponentVariables, VariableResolver


class FakeMemory:
    """Bump-allocating memory that records every allocation (and rejects out-of-bounds access)."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.data = bytearray(size)
        self.heap = 1024
        self.allocations: list[tuple[int, int, int]] = []

    def read(self, ptr: int, length: int) -> bytes:
        if ptr < 0 or ptr + length > len(self.data):
            raise AbiError("out of bounds")
        return bytes(self.data[ptr : ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        if ptr < 0 or ptr + len(data) > len(self.data):
            raise AbiError("out of bounds")
        self.data[ptr : ptr + len(data)] = data

    def alloc(self, size: int, align: int) -> int:
        ptr = (self.heap + align - 1) // align * align
        self.heap = ptr + size
        self.allocations.append((ptr, size, align))
        return ptr

    def put(self, data: bytes, align: int = 1) -> int:
        ptr = self.alloc(len(data), align)
        self.write(ptr, data)
        return ptr


def test_method_enum_order_and_unknown_methods() -> None:
    assert METHODS == ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
    assert [method_index(m) for m in METHODS] == list(range(7))
    assert method_index("TRACE") is None and method_index("CONNECT") is None and method_index("get") is None


def test_request_is_ten_flat_params_with_guest_allocations() -> None:
    mem = FakeMemory()
    headers = [("host", "example.com"), ("x-ü", "välue")]
    params = lower_request(mem, 1, "/p?q=1", headers, b"body")
    assert len(params) == 10
    method, uri_ptr, uri_len, h_ptr, h_len, _p_ptr, p_len, has_body, body_ptr, body_len = params
    assert method == 1 and read_string(mem, uri_ptr, uri_len) == "/p?q=1"
    assert h_len == 2 and h_ptr % 4 == 0
    assert read_pairs(mem, h_ptr, h_len) == headers
    assert p_len == 0  # Spin always passes empty params
    assert has_body == 1 and mem.read(body_ptr, body_len) == b"body"
    # Strings and bytes are allocated with align 1, the 16-byte-element header table with align 4.
    assert (h_ptr, 32, 4) in mem.allocations
    assert (body_ptr, 4, 1) in mem.allocations


def test_empty_body_is_still_some() -> None:
    mem = FakeMemory()
    params = lower_request(mem, 0, "/", [], b"")
    assert params[7] == 1 and params[9] == 0


def response_record(mem: FakeMemory, status: int, headers: list[tuple[bytes, bytes]] | None,
                    body: bytes | None) -> tuple[int, list[Allocation]]:
    frees: list[Allocation] = []
    h_ptr = h_len = b_ptr = b_len = 0
    if headers is not None:
        table = b""
        for name, value in headers:
            n, v = mem.put(name), mem.put(value)
            frees += [Allocation(n, len(name), 1), Allocation(v, len(value), 1)]
            table += struct.pack("<IIII", n, len(name), v, len(value))
        h_ptr, h_len = mem.put(table, 4), len(headers)
        frees.append(Allocation(h_ptr, 16 * h_len, 4))
    if body is not None:
        b_ptr, b_len = mem.put(body), len(body)
        frees.append(Allocation(b_ptr, b_len, 1))
    # garbage in the padding bytes must be ignored
    record = struct.pack("<H", status) + b"\xaa\xbb" + bytes([headers is not None]) + b"\xee\xee\xee" + \
        struct.pack("<II", h_ptr, h_len) + bytes([body is not None]) + b"\xcc\xcc\xcc" + \
        struct.pack("<II", b_ptr, b_len)
    assert len(record) == 28
    return mem.put(record, 4), frees


def test_response_record_layout_and_what_is_freed() -> None:
    mem = FakeMemory()
    ret, frees = response_record(mem, 201, [(b"a", b"1"), (b"content-type", b"text/plain")], b"created")
    response = lift_response(mem, ret)
    assert response.status == 201
    assert response.headers == [("a", "1"), ("content-type", "text/plain")]
    assert response.body == b"created"
    assert response.allocations == frees


def test_response_without_headers_or_body() -> None:
    mem = FakeMemory()
    ret, frees = response_record(mem, 204, None, None)
    response = lift_response(mem, ret)
    assert (response.status, response.headers, response.body, response.allocations) == (204, None, None, [])
    assert frees == []


def test_bad_guest_data_is_an_abi_error() -> None:
    mem = FakeMemory()
    with pytest.raises(AbiError, match="not UTF-8"):
        read_string(mem, mem.put(b"\xff\xfe"), 2)
    with pytest.raises(AbiError):
        read_string(mem, len(mem.data) - 1, 10)
    bad_tag = mem.put(struct.pack("<HxxBxxxIIBxxxII", 200, 2, 0, 0, 0, 0, 0), 4)
    with pytest.raises(AbiError, match="option tag"):
        lift_response(mem, bad_tag)
    with pytest.raises(AbiError, match="larger than the host accepts"):
        read_pairs(mem, 0, 1 << 30)


def test_error_result_layout() -> None:
    mem = FakeMemory()
    ret = mem.alloc(16, 4)
    store_err_case(mem, ret, 4, 5, "disk on fire")
    assert mem.data[ret] == 1 and mem.data[ret + 4] == 5
    ptr, length = struct.unpack_from("<II", mem.data, ret + 8)
    assert read_string(mem, ptr, length) == "disk on fire"
    ret8 = mem.alloc(24, 8)
    store_err_case(mem, ret8, 8, 1)  # e.g. expected<s64, enum>: the error sits 8-aligned
    assert mem.data[ret8] == 1 and mem.data[ret8 + 8] == 1


def test_sqlite_values_in_and_query_result_out() -> None:
    mem = FakeMemory()
    text, blob = mem.put("héllo".encode()), mem.put(b"\x00\x01")
    params = mem.put(
        struct.pack("<B7xq", 0, -5) + struct.pack("<B7xd", 1, 2.5) + struct.pack("<B7xII", 2, text, 6)
        + struct.pack("<B7xII", 3, blob, 2) + struct.pack("<B15x", 4),
        8,
    )
    assert read_sqlite_values(mem, params, 5) == [-5, 2.5, "héllo", b"\x00\x01", None]
    with pytest.raises(AbiError, match="tag 9"):
        read_sqlite_values(mem, mem.put(struct.pack("<B15x", 9), 8), 1)

    at = mem.alloc(16, 4)
    store_query_result(mem, at, ["a", "b"], [(1 << 40, "x"), (None, b"\xff")])
    cols_ptr, cols_len, rows_ptr, rows_len = struct.unpack_from("<IIII", mem.data, at)
    assert read_string_list(mem, cols_ptr, cols_len) == ["a", "b"]
    assert rows_len == 2
    rows = []
    for i in range(rows_len):
        values_ptr, count = struct.unpack_from("<II", mem.data, rows_ptr + 8 * i)
        assert values_ptr % 8 == 0
        rows.append(read_sqlite_values(mem, values_ptr, count))
    assert rows == [[1 << 40, "x"], [None, b"\xff"]]


def test_interfaces_tauon_lacks_answer_with_their_own_errors() -> None:
    """PostgreSQL, outbound HTTP and LLM imports write an error result instead of trapping."""
    services = ComponentServices(
        component_id="c", variables=ComponentVariables({}, VariableResolver({}, {}, {})),
        key_value_labels=frozenset(), database_labels=frozenset(), ai_models=frozenset({"llama2-chat"}),
        stores=KeyValueStores({}), databases=Databases({}),
    )
    context = RequestContext(services, "a/c", logging.getLogger("test"), lambda url: "allowed" in url)
    mem = FakeMemory()

    def call(module: str, name: str, *args: int) -> int:
        ret = mem.alloc(32, 8)
        mem.write(ret, bytes(32))
        IMPORTS[(module, name)][1](mem, context, *args, ret)
        return ret

    ret = call("outbound-pg", "execute", 0, 0, 0, 0, 0, 0)
    assert mem.data[ret] == 1 and mem.data[ret + 8] == 1  # connection-failed, u64-aligned payload
    assert read_string(mem, *struct.unpack_from("<II", mem.data, ret + 12)) == (
        "invalid connection string: host missing")  # an empty address: refused before any connection

    url = mem.put(b"https://denied.example/x")
    ret = call("wasi-outbound-http", "request", 0, url, 24, 0, 0, 0, 0, 1, 0, 0)
    assert mem.data[ret] == 1 and mem.data[ret + 4] == 1  # destination-not-allowed
    url = mem.put(b"https://allowed.example/")
    ret = call("wasi-outbound-http", "request", 0, url, 24, 0, 0, 0, 0, 1, 0, 0)
    assert mem.data[ret] == 1 and mem.data[ret + 4] == 4  # runtime-error

    model = mem.put(b"llama2-chat")
    ret = call("llm", "infer", model, 11, 0, 0, 0, 0, 0.0, 0, 0.0, 0, 0.0)  # type: ignore[arg-type]
    assert (mem.data[ret], mem.data[ret + 4]) == (1, 1)
    assert read_string(mem, *struct.unpack_from("<II", mem.data, ret + 8)) == LLM_UNSUPPORTED
    other = mem.put(b"gpt")
    ret = call("llm", "generate-embeddings", other, 3, 0, 0)
    assert (mem.data[ret], mem.data[ret + 4]) == (1, 2)  # invalid-input naming the model
    assert "'gpt'" in read_string(mem, *struct.unpack_from("<II", mem.data, ret + 8))
