"""The flat converters (codec_flat.py) against the generic codec (codec.py): for any value of any
type they support, lowering flat and lifting with the generic codec gives what the generic codec's
own round trip gives, and lifting flat reads what the generic codec lowered. Checked with hypothesis
over random types, and for spin:postgres@4.0.0's query as the c-postgres fixture imports it, with
every `db-value`, `db-data-type` and `parameter-value` case."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wasmtime.component import Component, ComponentInstanceType, FuncType

from tauon.wasm.component import _capi, codec, codec_basic, codec_flat, codec_flat_basic
from tauon.wasm.component.codec_basic import Codec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "build" / "components" / "c-postgres.wasm"


def generic_roundtrip(c: Codec, value: Any) -> Any:
    v = _capi.Val()
    c.lower(0, value, v)
    try:
        return c.lift(0, v)
    finally:
        _capi.val_delete(ctypes.byref(v))


def flat_lowered(flat: Codec, generic: Codec, value: Any) -> Any:
    """Lowered flat, lifted by the generic codec."""
    v = _capi.Val()
    flat.lower(0, value, v)
    try:
        return generic.lift(0, v)
    finally:
        _capi.val_delete(ctypes.byref(v))


def flat_lifted(flat: Codec, generic: Codec, value: Any) -> Any:
    """Lowered by the generic codec, lifted flat."""
    v = _capi.Val()
    generic.lower(0, value, v)
    try:
        return flat.lift(0, v)
    finally:
        _capi.val_delete(ctypes.byref(v))


def check(flat: Codec, generic: Codec, value: Any) -> None:
    expected = generic_roundtrip(generic, value)
    assert flat_lowered(flat, generic, value) == expected
    assert flat_lifted(flat, generic, value) == expected


# -- random types: (generic codec, flat converters, value strategy) ------------------------------------

Built = tuple[Codec, tuple[Any, Any], st.SearchStrategy[Any]]
NAMES = st.lists(st.text("abcdefghij-", min_size=1, max_size=8), min_size=1, max_size=4, unique=True)
INTS = {"s8": (_capi.KIND_S8, "b", 8, True), "u8": (_capi.KIND_U8, "B", 8, False),
        "s16": (_capi.KIND_S16, "h", 16, True), "u16": (_capi.KIND_U16, "H", 16, False),
        "s32": (_capi.KIND_S32, "i", 32, True), "u32": (_capi.KIND_U32, "I", 32, False),
        "s64": (_capi.KIND_S64, "q", 64, True), "u64": (_capi.KIND_U64, "Q", 64, False)}


def _int(name: str) -> Built:
    kind, code, bits, signed = INTS[name]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return codec_basic.scalar(kind, name), codec_flat_basic.scalar(kind, code), st.integers(lo, hi)


def _leaf() -> st.SearchStrategy[Built]:
    return st.one_of(
        st.sampled_from(sorted(INTS)).map(_int),
        st.just((codec_basic.scalar(_capi.KIND_F64, "f64"), codec_flat_basic.scalar(_capi.KIND_F64, "d"),
                 st.floats(allow_nan=False))),
        st.just((codec_basic.scalar(_capi.KIND_F32, "f32"), codec_flat_basic.scalar(_capi.KIND_F32, "f"),
                 st.floats(width=32, allow_nan=False))),
        st.just((codec_basic.boolean(), codec_flat_basic.boolean(), st.booleans())),
        st.just((codec_basic.char(), codec_flat_basic.char(), st.characters(blacklist_categories=["Cs"]))),
        st.just((codec_basic.string(), codec_flat_basic.string(), st.text(max_size=40))),
        st.just((codec_basic.byte_list(), codec_flat_basic.byte_list(), st.binary(max_size=300))),
        NAMES.map(lambda names: (codec._enum(names), codec_flat.enum(names), st.sampled_from(names))),
        NAMES.map(lambda names: (codec._flags(names), codec_flat.flags(names),
                                 st.sets(st.sampled_from(names)))),
    )


def _list(inner: Built) -> Built:
    return (codec._list(inner[0]), codec_flat.listing(inner[1]), st.lists(inner[2], max_size=5))


def _option(inner: Built) -> Built:
    return codec._option(inner[0]), codec_flat.option(inner[1]), st.none() | inner[2]


def _tuple(parts: list[Built]) -> Built:
    return (codec._tuple([p[0] for p in parts]), codec_flat.tupled([p[1] for p in parts]),
            st.tuples(*[p[2] for p in parts]))


def _record(fields: list[tuple[str, Built]]) -> Built:
    return (codec._record([(n, b[0]) for n, b in fields]), codec_flat.record([(n, b[1]) for n, b in fields]),
            st.tuples(*[b[2] for _, b in fields]))


def _variant(cases: list[tuple[str, Built | None]]) -> Built:
    values = st.one_of(*[st.tuples(st.just(n), b[2]) if b is not None else st.just((n, None))
                         for n, b in cases])
    return (codec._variant([(n, b[0] if b else None) for n, b in cases]),
            codec_flat.variant([(n, b[1] if b else None) for n, b in cases]), values)


def _result(ok: Built | None, err: Built | None) -> Built:
    oks = st.tuples(st.just("ok"), ok[2]) if ok is not None else st.just(("ok", None))
    errs = st.tuples(st.just("err"), err[2]) if err is not None else st.just(("err", None))
    return (codec._result(ok[0] if ok else None, err[0] if err else None),
            codec_flat.result(ok[1] if ok else None, err[1] if err else None), oks | errs)


def _compound(inner: st.SearchStrategy[Built]) -> st.SearchStrategy[Built]:
    named = NAMES.flatmap(lambda names: st.tuples(*[st.tuples(st.just(n), inner) for n in names]))
    maybe = st.none() | inner
    return st.one_of(
        inner.map(_list), inner.map(_option),
        st.lists(inner, min_size=1, max_size=3).map(_tuple),
        named.map(lambda fields: _record(list(fields))),
        NAMES.flatmap(lambda names: st.tuples(*[st.tuples(st.just(n), maybe) for n in names]))
        .map(lambda cases: _variant(list(cases))),
        st.tuples(maybe, maybe).map(lambda p: _result(*p)),
    )


TYPES = st.recursive(_leaf(), _compound, max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_flat_converters_agree_with_the_generic_codec(data: st.DataObject) -> None:
    generic, converters, values = data.draw(TYPES)
    value = data.draw(values)
    check(codec_flat.flat_codec(converters, generic), generic, value)


def test_a_value_larger_than_the_scratch_goes_through_the_generic_codec() -> None:
    generic = codec._list(codec_basic.string())
    flat = codec_flat.flat_codec(codec_flat.listing(codec_flat_basic.string()), generic)
    big = ["x" * 1000] * (codec_flat_basic.SCRATCH_MAX // 1000 + 10)
    assert flat_lowered(flat, generic, big) == big
    bytes_generic = codec_basic.byte_list()
    many = bytes(range(256)) * (codec_flat_basic.BYTES_LIMIT // 256 + 1)
    assert flat_lowered(codec_flat.flat_codec(codec_flat_basic.byte_list(), bytes_generic), bytes_generic,
                        many) == many


def test_a_bad_value_raises_and_leaves_the_destination_alone() -> None:
    generic = codec._list(codec._variant([("a", codec_basic.string())]))
    flat = codec_flat.flat_codec(codec_flat.listing(codec_flat.variant([("a", codec_flat_basic.string())])),
                                 generic)
    v = _capi.Val()
    with pytest.raises(TypeError, match="no variant case 'b'"):
        flat.lower(0, [("a", "x"), ("b", "y")], v)
    assert v.kind == _capi.KIND_BOOL  # nothing handed to the runtime to free


# -- spin:postgres@4.0.0's query, as a real component imports it --------------------------------------


@pytest.fixture(scope="module")
def query_type() -> FuncType:
    if not FIXTURE.exists():
        pytest.skip("c-postgres fixture not built (scripts/build-components c-postgres)")
    engine = wasmtime.Engine()
    component = Component(engine, FIXTURE.read_bytes())
    extern = component.type.imports(engine)["spin:postgres/postgres@4.0.0"]
    assert isinstance(extern.ty, ComponentInstanceType)
    fty = extern.ty.exports(engine)["[method]connection.query"].ty
    assert isinstance(fty, FuncType)
    return fty


def _pair(ty: Any) -> tuple[Codec, Codec]:
    generic = codec.compile_type(ty, lambda _: 1)
    flat = codec_flat.compile_flat(ty, generic)
    assert flat is not None
    return flat, generic


DB_VALUES: list[Any] = [
    ("boolean", True), ("int8", -5), ("int16", -300), ("int32", 1 << 30), ("int64", -(1 << 60)),
    ("floating32", 1.5), ("floating64", -2.25e300), ("str", "value é 42"), ("binary", b"\x00\xff" * 9),
    ("date", (2024, 2, 29)), ("time", (23, 59, 58, 999_999_000)),
    ("datetime", (1999, 12, 31, 23, 59, 59, 1000)), ("timestamp", 1_700_000_000),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("jsonb", b'{"a":[1,2]}'), ("decimal", "-12.50"),
    ("range-int32", ((1, "inclusive"), (10, "exclusive"))), ("range-int32", (None, None)),
    ("range-int64", (None, (5, "inclusive"))), ("range-decimal", (("1.5", "exclusive"), None)),
    ("array-int32", [1, None, -3]), ("array-int64", []), ("array-decimal", ["1.0", None]),
    ("array-str", ["a", None, ""]), ("interval", (1, 2, 3)), "db-null", ("unsupported", b"\x01\x02"),
]
DATA_TYPES: list[Any] = ["boolean", "int8", "int16", "int32", "int64", "floating32", "floating64", "str",
                         "binary", "date", "time", "datetime", "timestamp", "uuid", "jsonb", "decimal",
                         "range-int32", "range-int64", "range-decimal", "array-int32", "array-int64",
                         "array-decimal", "array-str", "interval", ("other", "circle")]


def test_every_db_value_and_data_type_of_a_row_set(query_type: FuncType) -> None:
    assert query_type.result is not None
    flat, generic = _pair(query_type.result)
    columns = codec.Frozen((f"c{i}", t) for i, t in enumerate(DATA_TYPES))
    rows = [[v for v in DB_VALUES], list(reversed(DB_VALUES)), []]
    check(flat, generic, ("ok", (columns, rows)))
    check(flat, generic, ("ok", ([], [])))
    errors = [("connection-failed", "refused"), ("bad-parameter", "no"), ("value-conversion-failed", "x"),
              ("query-failed", ("text", "boom")),
              ("query-failed", ("db-error", ("db error: ERROR: x", "ERROR", "42P01", "x", None,
                                             [("table", "kv"), ("hint", "h")]))),
              ("other", "else")]
    for error in errors:
        check(flat, generic, ("err", error))


PARAMETERS: list[Any] = [
    ("boolean", False), ("int8", 3), ("int16", 7), ("int32", -42), ("int64", 1 << 40),
    ("floating32", 0.5), ("floating64", 3.25), ("str", "x'y"), ("binary", b"\x00"),
    ("date", (2024, 1, 2)), ("time", (1, 2, 3, 4)), ("datetime", (2024, 1, 2, 3, 4, 5, 6)),
    ("timestamp", -1), ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("jsonb", b"[]"),
    ("decimal", "1e3"), ("range-int32", ((1, "inclusive"), None)), ("range-int64", (None, None)),
    ("range-decimal", (None, ("2", "exclusive"))), ("array-int32", [None, 1]), ("array-int64", [2]),
    ("array-decimal", ["3"]), ("array-str", ["s", None]), ("interval", (-1, -2, -3)), "db-null",
]


def test_every_parameter_value_lifts_as_the_generic_codec_lifts_it(query_type: FuncType) -> None:
    (_, statement_ty), (_, params_ty) = query_type.params[1], query_type.params[2]
    for ty, value in ((statement_ty, "SELECT v FROM kv WHERE k = $1 -- é"), (params_ty, PARAMETERS),
                      (params_ty, [])):
        flat, generic = _pair(ty)
        check(flat, generic, value)


def test_resources_are_left_to_the_generic_codec(query_type: FuncType) -> None:
    (_, connection_ty) = query_type.params[0]
    generic = codec.compile_type(connection_ty, lambda _: 1)
    assert codec_flat.compile_flat(connection_ty, generic) is None


def test_frozen_lists_are_lowered_once_and_pointed_at() -> None:
    """A Frozen list (a query's columns) is lowered into memory of its own the first time; later
    values point at it and the runtime's copies are equal and independent of each other."""
    column = codec._record([("name", codec_basic.string()),
                            ("data-type", codec._variant([("str", None), ("other", codec_basic.string())]))])
    generic = codec._list(column)
    flat_type = codec_flat.variant([("str", None), ("other", codec_flat_basic.string())])
    flat_column = codec_flat.record([("name", codec_flat_basic.string()), ("data-type", flat_type)])
    flat = codec_flat.flat_codec(codec_flat.listing(flat_column), generic)
    columns = codec.Frozen([("v", ("str", None)), ("w", ("other", "circle"))])
    expected = [{"name": "v", "data-type": ("str", None)}, {"name": "w", "data-type": ("other", "circle")}]
    copies = []
    for _ in range(3):
        v = _capi.Val()
        flat.lower(0, codec.Frozen(list(columns)), v)  # equal, not the same object
        copies.append(v)
    try:
        assert [generic.lift(0, v) for v in copies] == [expected] * 3
        data = [codec_basic.raw_pointer(v.of.list, ctypes.sizeof(ctypes.c_size_t)) for v in copies]
        assert len(set(data)) == 3  # each a copy the runtime owns
    finally:
        for v in copies:
            _capi.val_delete(ctypes.byref(v))
    many = codec.Frozen([(f"c{i}", ("str", None)) for i in range(codec.MEMO_ITEMS + 1)])  # not kept
    assert flat_lowered(flat, generic, many) == [{"name": f"c{i}", "data-type": ("str", None)}
                                                 for i in range(codec.MEMO_ITEMS + 1)]
