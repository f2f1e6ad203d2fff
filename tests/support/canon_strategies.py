"""Hypothesis strategies for the canonical ABI: random component value types, values of them (in the
Python shapes lifting produces, so a lower-then-lift round trip must give back an equal value), and
flat core values of given core types."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from tauon.wasm.canon.layout import flatten_type
from tauon.wasm.canon.types import (
    BorrowType,
    EnumType,
    FlagsType,
    ListType,
    OptionType,
    OwnType,
    Prim,
    RecordType,
    ResourceType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)

HOST_RESOURCE = ResourceType("thing", host=True)

_PRIMS = ["bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32", "f64", "char", "string"]
_LABELS = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=5, unique=True)


def _leaves(resources: bool) -> st.SearchStrategy[ValType]:
    leaves: list[st.SearchStrategy[ValType]] = [
        st.sampled_from([Prim(name) for name in _PRIMS]),  # type: ignore[arg-type]
        _LABELS.map(lambda labels: EnumType(tuple(labels))),
        st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=32, unique=True)
        .map(lambda labels: FlagsType(tuple(labels))),
    ]
    if resources:
        leaves.append(st.sampled_from([OwnType(HOST_RESOURCE), BorrowType(HOST_RESOURCE)]))
    return st.one_of(leaves)


def _compound(children: st.SearchStrategy[ValType]) -> st.SearchStrategy[ValType]:
    optional = st.one_of(st.none(), children)
    return st.one_of(
        children.map(ListType),
        st.tuples(children, st.integers(1, 3)).map(lambda a: ListType(a[0], a[1])),
        st.lists(children, min_size=1, max_size=4).map(lambda ts: TupleType(tuple(ts))),
        _LABELS.flatmap(lambda names: st.lists(children, min_size=len(names), max_size=len(names)).map(
            lambda ts: RecordType(tuple(zip(names, ts, strict=True))))),
        _LABELS.flatmap(lambda names: st.lists(optional, min_size=len(names), max_size=len(names)).map(
            lambda ts: VariantType(tuple(zip(names, ts, strict=True))))),
        children.map(OptionType),
        st.tuples(optional, optional).map(lambda a: ResultType(a[0], a[1])),
    )


def val_types(resources: bool = False) -> st.SearchStrategy[ValType]:
    """Random value types, nested a few levels."""
    return st.recursive(_leaves(resources), _compound, max_leaves=8)


def _f32(x: float) -> float:
    value: float = struct.unpack("<f", struct.pack("<f", x))[0]
    return value


_INT_RANGES = {"s8": 8, "s16": 16, "s32": 32, "s64": 64}
_UINT_RANGES = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}


def _prim_values(name: str) -> st.SearchStrategy[Any]:
    if name in _INT_RANGES:
        bits = _INT_RANGES[name]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if name in _UINT_RANGES:
        return st.integers(0, (1 << _UINT_RANGES[name]) - 1)
    if name == "f32":
        return st.floats(width=32, allow_nan=False).map(_f32)
    if name == "f64":
        return st.floats(allow_nan=False)
    if name == "char":
        return st.characters(exclude_categories=["Cs"])
    if name == "string":
        return st.text(max_size=20)
    return st.booleans()


def values_of(t: ValType) -> st.SearchStrategy[Any]:
    """Values of `t` in the shapes lifting returns."""
    if isinstance(t, Prim):
        return _prim_values(t.name)
    if isinstance(t, ListType):
        if t.fixed_length is not None:
            return st.lists(values_of(t.element), min_size=t.fixed_length, max_size=t.fixed_length)
        if t.element == Prim("u8"):
            return st.binary(max_size=64)
        return st.lists(values_of(t.element), max_size=5)
    if isinstance(t, TupleType):
        return st.tuples(*(values_of(e) for e in t.elements))
    if isinstance(t, RecordType):
        return st.fixed_dictionaries({name: values_of(ft) for name, ft in t.fields})
    if isinstance(t, VariantType):
        return st.one_of([st.tuples(st.just(name), values_of(ct) if ct is not None else st.none())
                          for name, ct in t.cases])
    if isinstance(t, EnumType):
        return st.sampled_from(t.labels)
    if isinstance(t, OptionType):
        # option<option<T>> cannot carry some(none) in this shape; generate what round-trips
        inner = values_of(t.element).filter(lambda v: v is not None)
        return st.one_of(st.none(), inner)
    if isinstance(t, ResultType):
        return st.one_of(st.tuples(st.just("ok"), values_of(t.ok) if t.ok is not None else st.none()),
                         st.tuples(st.just("err"), values_of(t.err) if t.err is not None else st.none()))
    if isinstance(t, FlagsType):
        return st.sets(st.sampled_from(t.labels))
    if isinstance(t, (OwnType, BorrowType)):
        return st.integers(0, 0xFFFFFFFF)
    raise AssertionError(f"no strategy for {t!r}")


def flat_values_for(t: ValType) -> st.SearchStrategy[list[Any]]:
    """Arbitrary core values of `t`'s flat types (ints signed or not, any float bits)."""
    parts: list[st.SearchStrategy[Any]] = []
    for core in flatten_type(t):
        if core == "i32":
            parts.append(st.integers(-(1 << 31), (1 << 32) - 1))
        elif core == "i64":
            parts.append(st.integers(-(1 << 63), (1 << 64) - 1))
        else:
            parts.append(st.floats(width=32 if core == "f32" else 64))
    return st.tuples(*parts).map(list)
