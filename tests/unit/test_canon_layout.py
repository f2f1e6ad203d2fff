"""Canonical ABI layout: alignment, sizes, discriminants, flags, despecialization and flattening of
value and function types (the specification's examples and run_tests.py's flattening cases)."""

from __future__ import annotations

import pytest

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.errors import CanonUnsupported
from tauon.wasm.canon.types import (
    BorrowType,
    EnumType,
    FlagsType,
    FuncType,
    ListType,
    OptionType,
    OwnType,
    Prim,
    RecordType,
    ResourceType,
    ResultType,
    StreamType,
    TupleType,
    ValType,
    VariantType,
)

U8, U16, U32, U64 = Prim("u8"), Prim("u16"), Prim("u32"), Prim("u64")
S8, F32, F64, STRING = Prim("s8"), Prim("f32"), Prim("f64"), Prim("string")


@pytest.mark.parametrize(("t", "align", "size"), [
    (Prim("bool"), 1, 1), (U8, 1, 1), (U16, 2, 2), (U32, 4, 4), (U64, 8, 8), (F32, 4, 4), (F64, 8, 8),
    (Prim("char"), 4, 4), (STRING, 4, 8), (ListType(U64), 4, 8), (ListType(U16, 3), 2, 6),
    (TupleType((U8, U8, U16, U32)), 4, 8), (TupleType((U8, U16, U8, U32)), 4, 12),
    (TupleType((U16, U8)), 2, 4), (TupleType((TupleType((U16, U8)), U8)), 2, 6),
    (RecordType((("a", U8), ("b", U64))), 8, 16), (RecordType((("a", U64), ("b", U8))), 8, 16),
    (OptionType(U8), 1, 2), (OptionType(U64), 8, 16), (OptionType(STRING), 4, 12),
    (ResultType(None, None), 1, 1), (ResultType(U32, STRING), 4, 12), (EnumType(("a", "b")), 1, 1),
    (EnumType(tuple(str(i) for i in range(257))), 2, 2),
    (VariantType((("x", U8), ("y", F32), ("z", None))), 4, 8),
    (FlagsType(("a",)), 1, 1), (FlagsType(tuple(str(i) for i in range(9))), 2, 2),
    (FlagsType(tuple(str(i) for i in range(17))), 4, 4), (FlagsType(tuple(str(i) for i in range(32))), 4, 4),
    (OwnType(ResourceType("r")), 4, 4), (BorrowType(ResourceType("r")), 4, 4),
])
def test_alignment_and_size(t: ValType, align: int, size: int) -> None:
    assert (L.alignment(t), L.elem_size(t)) == (align, size)


def test_discriminant_sizes_follow_the_case_count() -> None:
    assert [L.discriminant_size(n) for n in (1, 2, 256, 257, 65536, 65537)] == [1, 1, 1, 2, 2, 4]


def test_flags_beyond_32_labels_are_refused() -> None:
    with pytest.raises(CanonUnsupported, match="33 labels"):
        L.elem_size(FlagsType(tuple(str(i) for i in range(33))))


def test_despecialize() -> None:
    assert L.despecialize(TupleType((U8, STRING))) == RecordType((("0", U8), ("1", STRING)))
    assert L.despecialize(EnumType(("a", "b"))) == VariantType((("a", None), ("b", None)))
    assert L.despecialize(OptionType(U8)) == VariantType((("none", None), ("some", U8)))
    assert L.despecialize(ResultType(U8, None)) == VariantType((("ok", U8), ("error", None)))
    assert L.despecialize(U8) is U8


def test_field_offsets_pad_to_each_alignment() -> None:
    assert L.field_offsets((U8, U16, U8, U32)) == (0, 2, 4, 8)
    assert L.variant_payload_offset(VariantType((("a", U64), ("b", None)))) == 8


@pytest.mark.parametrize(("t", "flat"), [
    (U8, ("i32",)), (S8, ("i32",)), (U64, ("i64",)), (F32, ("f32",)), (F64, ("f64",)),
    (STRING, ("i32", "i32")), (ListType(F64), ("i32", "i32")), (ListType(F32, 3), ("f32", "f32", "f32")),
    (RecordType((("a", U8), ("b", F64))), ("i32", "f64")),
    (VariantType((("x", U32), ("y", F32), ("z", None))), ("i32", "i32")),
    (VariantType((("x", F32), ("y", F64))), ("i32", "i64")),
    (VariantType((("x", U32), ("y", U64))), ("i32", "i64")),
    (VariantType((("x", F32), ("y", F32))), ("i32", "f32")),
    (OptionType(F64), ("i32", "f64")), (ResultType(STRING, U64), ("i32", "i64", "i32")),
    (ResultType(None, None), ("i32",)), (FlagsType(("a", "b")), ("i32",)),
    (OwnType(ResourceType("r")), ("i32",)),
])
def test_flatten_type(t: ValType, flat: tuple[str, ...]) -> None:
    assert L.flatten_type(t) == flat


def test_join() -> None:
    assert [L.join("i32", "f32"), L.join("f32", "i32"), L.join("i32", "i64"), L.join("f32", "f64"),
            L.join("f64", "f64")] == ["i32", "i32", "i64", "i64", "f64"]


def _ft(params: list[ValType], result: ValType | None) -> FuncType:
    return FuncType(tuple((f"p{i}", t) for i, t in enumerate(params)), result)


def test_flatten_functype_small() -> None:
    sig = L.flatten_functype(_ft([U8, F32, F64], F32), "lift")
    assert (sig.params, sig.results, sig.params_spilled, sig.results_spilled) == (
        ("i32", "f32", "f64"), ("f32",), False, False)
    assert L.flatten_functype(_ft([U8, F32, F64], TupleType((F32,))), "lower").results == ("f32",)


def test_flatten_functype_spills_more_than_16_params() -> None:
    sixteen = L.flatten_functype(_ft([U8] * 16, None), "lift")
    assert sixteen.params == ("i32",) * 16 and not sixteen.params_spilled
    sig = L.flatten_functype(_ft([U8] * 17, None), "lift")
    assert (sig.params, sig.params_spilled) == (("i32",), True)
    # a string counts two flat values: 8 strings fit, 8 strings and a u8 do not
    assert not L.flatten_functype(_ft([STRING] * 8, None), "lower").params_spilled
    assert L.flatten_functype(_ft([STRING] * 8 + [U8], None), "lower").params_spilled


def test_flatten_functype_spills_more_than_one_result() -> None:
    ft = _ft([U8] * 17, TupleType((U8, U8)))
    lifted = L.flatten_functype(ft, "lift")
    assert (lifted.params, lifted.results, lifted.results_spilled) == (("i32",), ("i32",), True)
    lowered = L.flatten_functype(ft, "lower")
    assert (lowered.params, lowered.results, lowered.results_spilled) == (("i32", "i32"), (), True)
    string_result = L.flatten_functype(_ft([U8], STRING), "lower")
    assert (string_result.params, string_result.results) == (("i32", "i32"), ())


def test_async_functions_and_async_values_are_not_supported_yet() -> None:
    with pytest.raises(CanonUnsupported, match="async"):
        L.flatten_functype(FuncType((), None, is_async=True), "lift")
    assert L.flatten_type(StreamType(U8)) == ("i32",)  # layout known; converters refuse (test_canon_values)
