"""The component codec's lowering through raw addresses (codec.py): the offsets it writes at are the C
API's, nested values (a PostgreSQL row set's shape) survive a round trip, and a value that fails
half-way is never marked lowered."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from wasmtime import _ffi as ffi

from tauon.wasm.component import _capi, codec, codec_basic


def test_offsets_are_the_c_structures() -> None:
    assert ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t) == _capi.RECORD_ENTRY_SIZE
    assert ffi.wasmtime_component_valrecord_entry_t.val.offset == _capi.RECORD_ENTRY_VAL
    assert ffi.wasmtime_component_valvariant_t.val.offset == _capi.VARIANT_VAL
    assert ffi.wasmtime_component_valresult_t.val.offset == _capi.RESULT_VAL


def _row_set() -> codec.Codec:
    """result<row-set, error> as spin:postgres@4 declares it, trimmed to a few cases."""
    string = codec_basic.string()
    s32 = codec_basic.scalar(_capi.KIND_S32, "s32")
    data_type = codec._variant([("int32", None), ("str", None), ("other", string)])
    value = codec._variant([("int32", s32), ("str", string), ("db-null", None),
                            ("array-int32", codec._list(codec._option(s32)))])
    column = codec._record([("name", string), ("data-type", data_type)])
    row_set = codec._record([("columns", codec._list(column)), ("rows", codec._list(codec._list(value)))])
    error = codec._variant([("connection-failed", string), ("other", string)])
    return codec._result(row_set, error)


def roundtrip(c: codec.Codec, value: Any) -> Any:
    v = _capi.Val()
    c.lower(0, value, v)
    try:
        return c.lift(0, v)
    finally:
        _capi.val_delete(ctypes.byref(v))


def test_a_row_set_round_trips() -> None:
    rows = [[("int32", i), ("str", f"value {i}"), "db-null", ("array-int32", [1, None, -3])]
            for i in range(50)]
    value = ("ok", ([("k", "int32"), ("v", "str"), ("n", ("other", "circle")), ("a", "int32")], rows))
    lifted = roundtrip(_row_set(), value)
    assert lifted[0] == "ok"
    assert lifted[1]["columns"] == [{"name": "k", "data-type": ("int32", None)},
                                    {"name": "v", "data-type": ("str", None)},
                                    {"name": "n", "data-type": ("other", "circle")},
                                    {"name": "a", "data-type": ("int32", None)}]
    assert lifted[1]["rows"] == [[("int32", i), ("str", f"value {i}"), ("db-null", None),
                                  ("array-int32", [1, None, -3])] for i in range(50)]
    assert roundtrip(_row_set(), ("err", ("other", "no"))) == ("err", ("other", "no"))
    empty = roundtrip(_row_set(), ("ok", ([], [])))
    assert empty == ("ok", {"columns": [], "rows": []})


def test_records_lower_from_dicts_and_lists_from_tuples() -> None:
    string = codec_basic.string()
    record = codec._record([("a", string), ("b", codec._list(string))])
    assert roundtrip(record, {"a": "x", "b": ("y", "z")}) == {"a": "x", "b": ["y", "z"]}


@pytest.mark.parametrize("bad_row", [0, 7, 49])
def test_a_value_failing_half_way_raises_and_leaves_its_outer_value_unset(bad_row: int) -> None:
    """A bad value deep in the rows raises naming the case, and the values around it stay plain
    bools (the kind byte is written last), so nothing half-built is ever handed to the runtime."""
    rows: list[list[Any]] = [[("int32", i), ("str", "x")] for i in range(50)]
    rows[bad_row][1] = ("no-such-case", 1)
    v = _capi.Val()
    with pytest.raises(TypeError, match="no variant case 'no-such-case'"):
        _row_set().lower(0, ("ok", ([("k", "int32")], rows)), v)
    assert v.kind == _capi.KIND_BOOL
    record = codec._record([("name", codec_basic.string()), ("rows", codec._list(codec._list(
        codec._variant([("str", codec_basic.string())]))))])
    inner = _capi.Val()
    with pytest.raises(TypeError):
        record.lower(0, ("n", [[("str", "a")], [("bad", "b")]]), inner)
    assert inner.kind == _capi.KIND_BOOL


def test_frozen_lists_lower_from_their_kept_copy() -> None:
    """A Frozen value's lowering is kept and copied: the copies are equal and independent (each freed
    on its own), past the memo's bound too, and for values longer than it keeps."""
    columns = codec._list(codec._record([("name", codec_basic.string()), ("data-type", codec._variant(
        [("str", None), ("other", codec_basic.string())]))]))
    value = codec.Frozen([("v", "str"), ("w", ("other", "circle"))])
    expected = [{"name": "v", "data-type": ("str", None)}, {"name": "w", "data-type": ("other", "circle")}]
    for _ in range(3):
        assert roundtrip(columns, value) == expected
    for i in range(codec.MEMO_ENTRIES + 10):
        lifted = roundtrip(columns, codec.Frozen([(f"c{i}", "str")]))
        assert lifted == [{"name": f"c{i}", "data-type": ("str", None)}]
    long = codec.Frozen([(f"c{i}", "str") for i in range(codec.MEMO_ITEMS + 1)])
    assert len(roundtrip(columns, long)) == codec.MEMO_ITEMS + 1
    assert roundtrip(columns, value) == expected
