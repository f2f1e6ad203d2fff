"""Lifting and lowering values: flat forms (integer wrapping, sign extension, variant slot coercions),
known byte layouts in memory (run_tests.py's heap cases, written anew), Python shapes, and traps."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from support.canon import Heap, memory_context
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.types import (
    EnumType,
    ErrorContextType,
    FlagsType,
    FutureType,
    ListType,
    OptionType,
    Prim,
    RecordType,
    ResultType,
    StreamType,
    TupleType,
    ValType,
    VariantType,
)

U8, U16, U32, U64 = Prim("u8"), Prim("u16"), Prim("u32"), Prim("u64")
S8, S16, S32, S64 = Prim("s8"), Prim("s16"), Prim("s32"), Prim("s64")
F32, F64, CHAR, STRING, BOOL = Prim("f32"), Prim("f64"), Prim("char"), Prim("string"), Prim("bool")


def lift_flat(t: ValType, flat: list[Any]) -> Any:
    return compile_lifter(t).lift_flat(memory_context(b""), iter(flat))


@pytest.mark.parametrize(("t", "pairs"), [
    (BOOL, [(0, False), (1, True), (2, True), (0xFFFFFFFF, True), (-1, True)]),
    (U8, [(127, 127), (128, 128), (255, 255), (256, 0), (0xFFFFFFFF, 255), (-1, 255)]),
    (S8, [(127, 127), (128, -128), (255, -1), (256, 0), (-1, -1)]),
    (U16, [(32767, 32767), (32768, 32768), (65535, 65535), (65536, 0)]),
    (S16, [(32768, -32768), (65535, -1), (65536, 0)]),
    (U32, [((1 << 31) - 1, (1 << 31) - 1), (1 << 31, 1 << 31), (-1, (1 << 32) - 1)]),
    (S32, [(1 << 31, -(1 << 31)), ((1 << 32) - 1, -1), (-5, -5)]),
    (U64, [((1 << 63), 1 << 63), (-1, (1 << 64) - 1)]),
    (S64, [(1 << 63, -(1 << 63)), ((1 << 64) - 1, -1)]),
    (CHAR, [(0, "\x00"), (65, "A"), (0xD7FF, "\ud7ff"), (0xE000, "\ue000"), (0x10FFFF, "\U0010ffff")]),
    (EnumType(("a", "b")), [(0, "a"), (1, "b")]),
    (FlagsType(("a", "b")), [(0, set()), (2, {"b"}), (3, {"a", "b"}), (4, set())]),
])
def test_lift_flat_scalars(t: ValType, pairs: list[tuple[int, Any]]) -> None:
    assert [lift_flat(t, [core]) for core, _ in pairs] == [value for _, value in pairs]


@pytest.mark.parametrize(("t", "core"), [
    (CHAR, 0xD800), (CHAR, 0xDFFF), (CHAR, 0x110000), (CHAR, 0xFFFFFFFF), (EnumType(("a", "b")), 2),
])
def test_lift_flat_invalid_scalars_trap(t: ValType, core: int) -> None:
    with pytest.raises(CanonTrap):
        lift_flat(t, [core])


def test_variant_flat_slots_are_coerced_per_case() -> None:
    t = VariantType((("x", U8), ("y", F32), ("z", None)))
    assert lift_flat(t, [0, 42]) == ("x", 42)
    assert lift_flat(t, [0, 256]) == ("x", 0)
    assert lift_flat(t, [1, 0x4048F5C3]) == ("y", struct.unpack("<f", struct.pack("<f", 3.14))[0])
    assert lift_flat(t, [2, 0xFFFFFFFF]) == ("z", None)
    wide = VariantType((("w", U32), ("d", F64), ("f", F32)))
    assert lift_flat(wide, [0, (1 << 40) | 42]) == ("w", 42)  # i64 slot wrapped to i32
    assert lift_flat(wide, [1, struct.unpack("<q", struct.pack("<d", -2.5))[0]]) == ("d", -2.5)
    assert lift_flat(wide, [2, struct.unpack("<I", struct.pack("<f", 1.5))[0]]) == ("f", 1.5)
    out: list[Any] = []
    compile_lowerer(wide).lower_flat(memory_context(b""), ("d", -2.5), out)
    assert out == [1, struct.unpack("<Q", struct.pack("<d", -2.5))[0]]
    out = []
    compile_lowerer(wide).lower_flat(memory_context(b""), ("f", 1.5), out)
    assert out == [2, struct.unpack("<I", struct.pack("<f", 1.5))[0]]
    out = []
    compile_lowerer(t).lower_flat(memory_context(b""), "z", out)
    assert out == [2, 0]


def test_option_and_result_shapes() -> None:
    assert lift_flat(OptionType(F32), [0, 3.14]) is None
    assert lift_flat(OptionType(F32), [1, 1.5]) == 1.5
    assert lift_flat(ResultType(U8, U32), [0, 42]) == ("ok", 42)
    assert lift_flat(ResultType(U8, U32), [1, 1000]) == ("err", 1000)
    assert lift_flat(ResultType(None, None), [1]) == ("err", None)


def test_nan_is_canonical_after_lifting() -> None:
    for bits in (0x7FC00001, 0xFFC00000, 0x7F800001):
        value = compile_lifter(F32).load(memory_context(struct.pack("<I", bits)), 0)
        assert struct.pack("<f", value) == struct.pack("<I", 0x7FC00000)
    value = lift_flat(F64, [struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]])
    assert struct.pack("<d", value) == struct.pack("<Q", 0x7FF8000000000000)
    assert math.isinf(lift_flat(F32, [math.inf]))


HEAP_CASES: list[tuple[ValType, Any, bytes]] = [
    (ListType(BOOL), [True, False, True], bytes([1, 0, 1])),
    (ListType(U8), b"\x01\x02\x03", bytes([1, 2, 3])),
    (ListType(U16), [1, 2, 3], bytes([1, 0, 2, 0, 3, 0])),
    (ListType(U32), [1, 2, 3], bytes([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])),
    (ListType(U64), [1, 2], bytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])),
    (ListType(S8), [-1, -2, -3], bytes([0xFF, 0xFE, 0xFD])),
    (ListType(S16), [-1, -2, -3], bytes([0xFF, 0xFF, 0xFE, 0xFF, 0xFD, 0xFF])),
    (ListType(S64), [-1], b"\xff" * 8),
    (ListType(CHAR), ["A", "B", "c"], bytes([65, 0, 0, 0, 66, 0, 0, 0, 99, 0, 0, 0])),
    (ListType(F32), [1.5, -2.0], struct.pack("<ff", 1.5, -2.0)),
    (ListType(ListType(U8, 2)), [[1, 2], [3, 4]], bytes([1, 2, 3, 4])),
    (ListType(ListType(U32, 2)), [[1, 2], [3, 4]], struct.pack("<4I", 1, 2, 3, 4)),
    (ListType(TupleType((U8, U8, U16, U32))), [(6, 7, 8, 9), (4, 5, 6, 7)],
     bytes([6, 7, 8, 0, 9, 0, 0, 0, 4, 5, 6, 0, 7, 0, 0, 0])),
    (ListType(TupleType((U8, U16, U8, U32))), [(6, 7, 8, 9)], bytes([6, 0, 7, 0, 8, 0, 0, 0, 9, 0, 0, 0])),
    (ListType(TupleType((U16, U8))), [(6, 7), (8, 9)], bytes([6, 0, 7, 0, 8, 0, 9, 0])),
    (ListType(TupleType((TupleType((U16, U8)), U8))), [((4, 5), 6), ((7, 8), 9)],
     bytes([4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0])),
    (ListType(FlagsType(("a", "b"))), [set(), {"b"}, {"a", "b"}], bytes([0, 2, 3])),
    (ListType(RecordType((("x", U8), ("y", BOOL)))), [{"x": 42, "y": True}], bytes([42, 1])),
    (ListType(OptionType(U16)), [None, 7], bytes([0, 0, 0, 0, 1, 0, 7, 0])),
    (ListType(ResultType(U8, None)), [("ok", 3), ("err", None)], bytes([0, 3, 1, 0])),
    (ListType(EnumType(tuple(str(i) for i in range(300)))), ["299"], bytes([43, 1])),
]


@pytest.mark.parametrize(("t", "value", "data"), HEAP_CASES)
def test_known_list_layouts_lift(t: ValType, value: Any, data: bytes) -> None:
    cx = memory_context(struct.pack("<II", 8, len(value)) + data)
    assert compile_lifter(t).load(cx, 0) == value
    assert compile_lifter(t).lift_flat(cx, iter([8, len(value)])) == value


@pytest.mark.parametrize(("t", "value", "data"), HEAP_CASES)
def test_known_list_layouts_lower(t: ValType, value: Any, data: bytes) -> None:
    heap = Heap()
    out: list[Any] = []
    compile_lowerer(t).lower_flat(heap.context(), value, out)
    ptr, length = out
    assert length == len(value)
    assert bytes(heap.memory.data[ptr:ptr + len(data)]) == data


def test_list_of_strings_layout() -> None:
    data = struct.pack("<II", 8, 2) + struct.pack("<IIII", 24, 2, 26, 3) + b"hiwat"
    assert compile_lifter(ListType(STRING)).load(memory_context(data), 0) == ["hi", "wat"]


def test_bool_lifts_any_nonzero_byte_as_true() -> None:
    cx = memory_context(bytes([1, 0, 2]))
    assert compile_lifter(ListType(BOOL)).lift_flat(cx, iter([0, 3])) == [True, False, True]


@pytest.mark.parametrize(("t", "flat", "message"), [
    (ListType(U16), [1, 3], "not aligned to 2"),
    (ListType(U32), [0, 100], "outside linear memory"),
    (ListType(U8), [60, 10], "0x3c \\+ 10 is outside linear memory \\(64 bytes\\)"),
    (ListType(U64), [0, 1 << 26], "longer than the canonical ABI allows"),
    (STRING, [0xFFFFFFF0, 32], "outside linear memory"),
])
def test_list_and_string_ranges_are_checked(t: ValType, flat: list[int], message: str) -> None:
    with pytest.raises(CanonTrap, match=message):
        compile_lifter(t).lift_flat(memory_context(bytes(64)), iter(flat))


def test_variant_case_out_of_range_in_memory_traps_with_the_path() -> None:
    t = RecordType((("a", U8), ("b", ListType(OptionType(U8)))))
    data = struct.pack("<BxxxII", 1, 12, 1) + bytes([5, 0])
    with pytest.raises(CanonTrap, match="record field b: list element 0: variant case index 5"):
        compile_lifter(t).load(memory_context(data), 0)


@pytest.mark.parametrize(("t", "value", "message"), [
    (U8, 256, "out of range for u8"), (S8, -129, "out of range"), (U32, "1", "expected an int"),
    (BOOL, 1, "expected a bool"), (CHAR, "ab", "1-character"), (CHAR, "\ud800", "surrogate"),
    (STRING, b"x", "expected a str"), (STRING, "\udc00", "lone surrogate"),
    (EnumType(("a",)), "b", "no enum case 'b'"), (VariantType((("a", U8),)), "a", "needs a payload"),
    (VariantType((("a", None),)), ("a", 1), "carries no payload"),
    (FlagsType(("a",)), {"z"}, "unknown flag 'z'"), (ResultType(U8, None), ("maybe", 1), "no case"),
    (RecordType((("x", U8),)), {"y": 1}, "no field 'x'"), (TupleType((U8, U8)), (1,), "expected 2 values"),
    (ListType(U16), [1, "2"], "not an int"), (ListType(U8), [256], "expected bytes"),
    (ListType(BOOL), [True, 1], "an element is not a bool"),
    (ListType(ListType(U8, 2)), [[1]], "exactly 2"),
    (RecordType((("x", ListType(STRING)),)), {"x": ["a", 3]},
     "record field x: list element 1: expected a str"),
])
def test_lowering_a_wrong_host_value_traps_clearly(t: ValType, value: Any, message: str) -> None:
    with pytest.raises(CanonTrap, match=message):
        compile_lowerer(t).lower_flat(Heap().context(), value, [])


def test_record_lowers_from_tuple_dict_or_attributes() -> None:
    t = RecordType((("x", U8), ("name", STRING)))

    class Row:
        x = 7
        name = "seven"

    heap = Heap()
    flats = []
    for value in ((7, "seven"), {"x": 7, "name": "seven"}, Row()):
        out: list[Any] = []
        compile_lowerer(t).lower_flat(heap.context(), value, out)
        flats.append(compile_lifter(t).lift_flat(heap.context(), iter(out)))
    assert flats == [{"x": 7, "name": "seven"}] * 3


def test_byte_lists_lower_from_bytes_bytearray_and_memoryview() -> None:
    heap = Heap()
    lifter, lowerer = compile_lifter(ListType(U8)), compile_lowerer(ListType(U8))
    for value in (b"abc", bytearray(b"abc"), memoryview(b"xabc")[1:], memoryview(bytearray(b"abc")),
                  memoryview(b"a-b-c")[::2], memoryview(b"abc").cast("c")):
        out: list[Any] = []
        lowerer.lower_flat(heap.context(), value, out)
        assert lifter.lift_flat(heap.context(), iter(out)) == b"abc"
    assert heap.calls[-1] == (0, 0, 1, 3)


@pytest.mark.parametrize("t", [ErrorContextType()])
def test_async_values_are_refused_when_compiling(t: ValType) -> None:
    with pytest.raises(CanonUnsupported, match="not supported yet"):
        compile_lifter(t)
    with pytest.raises(CanonUnsupported, match="not supported yet"):
        compile_lowerer(ListType(t))


@pytest.mark.parametrize("t", [StreamType(U8), FutureType(None)])
def test_stream_and_future_handles_are_checked_against_the_table(t: ValType) -> None:
    """Streams and futures compile (the component runtime's `streams` module moves their ends); a
    handle index that is not an end in the table traps."""
    cx = Heap().context()
    with pytest.raises(CanonTrap, match="handle index 3 is not in use"):
        compile_lifter(t).lift_flat(cx, iter([3]))


ROW = RecordType((("id", U64), ("name", STRING), ("tags", ListType(U8)), ("kind", EnumType(("a", "b"))),
                  ("mark", CHAR), ("on", BOOL)))


def test_a_list_of_records_allocates_as_the_specification_orders_it() -> None:
    """The list's block first, then each element's string and list, element by element."""
    heap = Heap()
    rows = [{"id": 1, "name": "ab", "tags": b"xyz", "kind": "b", "mark": "\u00e9", "on": True},
            {"id": 2, "name": "c", "tags": b"", "kind": "a", "mark": "z", "on": False}]
    out: list[Any] = []
    compile_lowerer(ListType(ROW)).lower_flat(heap.context(), rows, out)
    assert [call[2:] for call in heap.calls] == [(8, 2 * 40), (1, 2), (1, 3), (1, 1), (1, 0)]
    assert compile_lifter(ListType(ROW)).lift_flat(heap.context(), iter(out)) == rows
    ptr = out[0]
    assert struct.unpack_from("<Q", heap.memory.data, ptr)[0] == 1
    # id at 0, name at 8, tags at 16, kind at 24, mark at 28 (aligned to 4), on at 32; 40 bytes a row
    assert struct.unpack_from("<B3xIB", heap.memory.data, ptr + 24) == (1, 0xE9, 1)


@pytest.mark.parametrize(("patch", "message"), [
    ({"kind": 2}, "list element 1: record field kind: enum case index 2 is out of range"),
    ({"mark": 0xD800}, "list element 1: record field mark: 0xd800 is not a Unicode scalar value"),
    ({"name": (5000, 1)}, "list element 1: record field name: string pointer 0x1388 \\+ 1 is outside"),
])
def test_bad_fields_in_a_list_of_records_trap_with_the_path(patch: dict[str, Any], message: str) -> None:
    heap = Heap(size=4096, grow=False)
    rows = [{"id": 1, "name": "ab", "tags": b"", "kind": "b", "mark": "m", "on": True}] * 2
    out: list[Any] = []
    compile_lowerer(ListType(ROW)).lower_flat(heap.context(), rows, out)
    second = out[0] + 40
    fields = {"kind": (24, "<B"), "mark": (28, "<I"), "name": (8, "<II")}
    for name, value in patch.items():
        offset, fmt = fields[name]
        values = value if isinstance(value, tuple) else (value,)
        struct.pack_into(fmt, heap.memory.data, second + offset, *values)
    with pytest.raises(CanonTrap, match=message):
        compile_lifter(ListType(ROW)).lift_flat(heap.context(), iter(out))


def test_bad_host_values_in_a_list_of_records_trap_with_the_path() -> None:
    rows = [{"id": 1, "name": "ab", "tags": b"", "kind": "b", "mark": "m", "on": True},
            {"id": 1, "name": "ab", "tags": b"", "kind": "c", "mark": "m", "on": True}]
    with pytest.raises(CanonTrap, match="list element 1: record field kind: no enum case 'c'"):
        compile_lowerer(ListType(ROW)).lower_flat(Heap().context(), rows, [])
