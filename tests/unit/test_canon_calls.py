"""Call adapters: host imports called by the guest (ImportCall) and guest exports called by the host
(ExportCall), flat and spilled in both directions, with borrow scopes ending with the call."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from support.canon import Heap
from tauon.wasm.canon.calls import ExportCall, ImportCall
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import HandleTable
from tauon.wasm.canon.types import (
    BorrowType,
    FuncType,
    ListType,
    OptionType,
    OwnType,
    Prim,
    RecordType,
    ResourceType,
    ResultType,
    TupleType,
    ValType,
)

U8, U32, STRING = Prim("u8"), Prim("u32"), Prim("string")
STREAM = ResourceType("output-stream", host=True)


def _ft(params: list[ValType], result: ValType | None) -> FuncType:
    return FuncType(tuple((f"p{i}", t) for i, t in enumerate(params)), result)


def test_flat_import_call() -> None:
    heap = Heap()
    call = ImportCall(_ft([U32, STRING], U32))
    ptr, n = 100, 3
    heap.memory.data[ptr:ptr + n] = b"abc"
    got: list[Any] = []
    assert call.invoke(heap.context(), lambda *args: got.extend(args) or 7, [-1, ptr, n]) == [7]
    assert got == [0xFFFFFFFF, "abc"]


def test_import_with_17_params_reads_them_from_memory() -> None:
    heap = Heap()
    call = ImportCall(_ft([U8] * 16 + [STRING], None))
    assert call.core.params == ("i32",)
    heap.memory.data[64:64 + 16] = bytes(range(16))
    heap.memory.data[80:88] = struct.pack("<II", 200, 2)
    heap.memory.data[200:202] = b"ok"
    assert call.lift_params(heap.context(), [64]) == [*range(16), "ok"]
    with pytest.raises(CanonTrap, match="spilled parameters pointer 0x41 is not aligned to 4"):
        call.lift_params(heap.context(), [65])
    with pytest.raises(CanonTrap, match="spilled parameters pointer 0xfffffffc \\+ 24 is outside"):
        call.lift_params(heap.context(), [-4])


def test_import_result_through_the_return_pointer() -> None:
    heap = Heap()
    call = ImportCall(_ft([U32], ResultType(ListType(U8), U32)))
    assert call.core.params == ("i32", "i32") and call.core.results == ()
    retptr = 64
    assert call.invoke(heap.context(), lambda n: ("ok", b"x" * n), [3, retptr]) == []
    tag, ptr, length = struct.unpack_from("<BxxxII", heap.memory.data, retptr)
    assert (tag, length, bytes(heap.memory.data[ptr:ptr + length])) == (0, 3, b"xxx")
    with pytest.raises(CanonTrap, match="result: return pointer 0x3 is not aligned to 4"):
        call.invoke(heap.context(), lambda n: ("err", 1), [3, 3])


def test_import_borrows_are_lent_for_the_call_only() -> None:
    heap = Heap()
    table = HandleTable()
    index = table.lower_own(STREAM, 9)
    call = ImportCall(_ft([BorrowType(STREAM), OwnType(STREAM)], None))
    with pytest.raises(CanonTrap, match=r"parameter p1: own handle index 1 .* is lent to a call in progress"):
        call.invoke(heap.context(table), lambda a, b: None, [index, index])
    assert table.resource_rep(STREAM, index) == 9  # the failed call gave the lend back
    seen: list[int] = []
    ImportCall(_ft([BorrowType(STREAM)], None)).invoke(heap.context(table), seen.append, [index])
    assert seen == [9]
    assert ImportCall(_ft([OwnType(STREAM)], None)).lift_params(heap.context(table), [index]) == [9]


def test_borrows_nested_in_parameters_get_a_scope_too() -> None:
    heap = Heap()
    table = HandleTable()
    index = table.lower_own(STREAM, 9)
    nested = RecordType((("target", OptionType(BorrowType(STREAM))), ("n", U32)))
    call = ImportCall(_ft([ListType(U8), nested], None))
    assert call.has_borrows and not ImportCall(_ft([OptionType(OwnType(STREAM))], None)).has_borrows
    seen: list[Any] = []
    call.invoke(heap.context(table), lambda data, rec: seen.append(rec), [0, 0, 1, index, 5])
    assert seen == [{"target": 9, "n": 5}]
    assert table.lift_own(STREAM, index) == 9  # the lend ended with the call


def test_flat_export_call_and_post_return_values() -> None:
    heap = Heap()
    call = ExportCall(_ft([STRING, U32], U32))
    seen: list[list[Any]] = []

    def core(flat: list[Any]) -> list[Any]:
        seen.append(flat)
        ptr, n, x = flat
        return [len(bytes(heap.memory.data[ptr:ptr + n]).decode()) + x]

    assert call.call(heap.context(), core, ["h\u00e9", 10]) == (12, [12])
    assert seen[0][1] == 3


def test_export_with_spilled_params_and_result() -> None:
    heap = Heap()
    ft = _ft([U32] * 17, TupleType((STRING, U32)))
    call = ExportCall(ft)
    assert (call.core.params, call.core.results) == (("i32",), ("i32",))

    def core(flat: list[Any]) -> list[Any]:
        (ptr,) = flat
        values = struct.unpack_from("<17I", heap.memory.data, ptr)
        heap.memory.data[900:902] = b"hi"
        struct.pack_into("<III", heap.memory.data, 800, 900, 2, sum(values))
        return [800]

    result, flat = call.call(heap.context(), core, list(range(17)))
    assert result == ("hi", sum(range(17))) and flat == [800]
    assert heap.calls[0] == (0, 0, 4, 68)


def test_an_export_keeping_a_borrow_traps_at_the_end_of_the_call() -> None:
    heap = Heap()
    table = HandleTable()
    call = ExportCall(_ft([BorrowType(STREAM)], None))
    with pytest.raises(CanonTrap, match="still remain at the end of the call"):
        call.call(heap.context(table), lambda flat: [], [4])
    dropped = ExportCall(_ft([BorrowType(STREAM)], None))
    result = dropped.call(heap.context(table), lambda flat: table.resource_drop(STREAM, flat[0]) or [], [4])
    assert result == (None, [])


def test_argument_count_and_host_values_are_checked() -> None:
    call = ExportCall(_ft([U8], None))
    with pytest.raises(CanonTrap, match="expected 1 arguments, got 2"):
        call.lower_params(Heap().context(), [1, 2])
    with pytest.raises(CanonTrap, match="parameter p0: 300 is out of range for u8"):
        call.lower_params(Heap().context(), [300])
