"""Lifting: component values out of linear memory (`load`) and out of flat core values (`lift_flat`),
as Python values of the shapes codec.py documents (see this package's docstring).

`compile_lifter(type, encoding)` builds both converters once per type as closures over the type's
layout, so a call does no type reflection. Fast paths: `list<u8>` is one copy to `bytes`; lists of
other numbers go through `array` in bulk; records of plain integers are one `struct` unpack.
Everything the guest controls is checked; a violation raises CanonTrap, nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.handles import GuestResource
from tauon.wasm.canon.rows import bulk_list_reader, plain_struct, row_codec
from tauon.wasm.canon.scalars import (
    FLOATS,
    INTS,
    M32,
    M64,
    canon_nan32,
    canon_nan64,
    char_from_code,
    f32_from_bits,
    f64_from_bits,
)
from tauon.wasm.canon.strings import string_loader
from tauon.wasm.canon.types import (
    BorrowType,
    EnumType,
    ErrorContextType,
    FlagsType,
    FutureType,
    ListType,
    OptionType,
    OwnType,
    Prim,
    RecordType,
    ResultType,
    StreamType,
    StringEncoding,
    TupleType,
    ValType,
    VariantType,
)

CoreValue = int | float
Load = Callable[[CallContext, int], Any]
"""(context, pointer) -> value; the pointer is aligned (the caller checked or computed it)."""
LiftFlat = Callable[[CallContext, Iterator[CoreValue]], Any]
"""(context, flat values) -> value, consuming exactly the type's flat values."""

_PAIR = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class Lifter:
    type: ValType
    load: Load
    lift_flat: LiftFlat
    size: int
    align: int


@lru_cache(maxsize=2048)
def compile_lifter(t: ValType, encoding: StringEncoding = "utf8") -> Lifter:
    """The lifting converters of `t` for canonical options with string `encoding`.
    Raises CanonUnsupported for streams, futures and error-context (not supported yet)."""
    load, lift_flat = _compile(t, encoding)
    return Lifter(t, load, lift_flat, L.elem_size(t), L.alignment(t))


def _compile(t: ValType, enc: StringEncoding) -> tuple[Load, LiftFlat]:
    if isinstance(t, Prim):
        return _prim(t.name, enc)
    if isinstance(t, ListType):
        return _list(t, enc)
    if isinstance(t, RecordType):
        return _record(tuple(n for n, _ in t.fields), tuple(ft for _, ft in t.fields), enc, False)
    if isinstance(t, TupleType):
        return _record(tuple(str(i) for i in range(len(t.elements))), t.elements, enc, True)
    if isinstance(t, (VariantType, EnumType, OptionType, ResultType)):
        return _variant(t, enc)
    if isinstance(t, FlagsType):
        return _flags(t)
    if isinstance(t, (OwnType, BorrowType)):
        return _resource(t)
    if isinstance(t, (StreamType, FutureType)):
        return _async_end(t)
    if isinstance(t, ErrorContextType):
        raise CanonUnsupported(f"{type(t).__name__} values (component-model async) are not supported yet")
    raise CanonUnsupported(f"unknown value type {t!r}")


def _prim(name: str, enc: StringEncoding) -> tuple[Load, LiftFlat]:
    if name in INTS:
        info = INTS[name]
        fmt = struct.Struct("<" + info.fmt)
        mask, sign = (1 << info.bits) - 1, 1 << (info.bits - 1)

        def load_int(cx: CallContext, ptr: int) -> Any:
            return cx.mem().unpack(fmt, ptr)[0]

        if info.signed:
            def flat_int(cx: CallContext, it: Iterator[CoreValue]) -> Any:
                v = int(next(it)) & mask
                return v - (sign << 1) if v & sign else v
        else:
            def flat_int(cx: CallContext, it: Iterator[CoreValue]) -> Any:
                return int(next(it)) & mask
        return load_int, flat_int
    if name in FLOATS:
        ffmt = struct.Struct("<" + FLOATS[name][0])
        canon = canon_nan32 if name == "f32" else canon_nan64

        def load_float(cx: CallContext, ptr: int) -> Any:
            return canon(cx.mem().unpack(ffmt, ptr)[0])

        def flat_float(cx: CallContext, it: Iterator[CoreValue]) -> Any:
            return canon(float(next(it)))
        return load_float, flat_float
    if name == "bool":
        return _bool()
    if name == "char":
        return _char()
    return _string(enc)


_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")


def _bool() -> tuple[Load, LiftFlat]:
    def load(cx: CallContext, ptr: int) -> bool:
        return bool(cx.mem().unpack(_U8, ptr)[0])

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> bool:
        return int(next(it)) & M32 != 0
    return load, flat


def _char() -> tuple[Load, LiftFlat]:
    def load(cx: CallContext, ptr: int) -> str:
        return char_from_code(cx.mem().unpack(_U32, ptr)[0])

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> str:
        return char_from_code(int(next(it)) & M32)
    return load, flat


def _string(enc: StringEncoding) -> tuple[Load, LiftFlat]:
    load_range = string_loader(enc)

    def load(cx: CallContext, ptr: int) -> str:
        begin, units = cx.mem().unpack(_PAIR, ptr)
        return load_range(cx, begin, units)

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> str:
        begin = int(next(it)) & M32
        return load_range(cx, begin, int(next(it)) & M32)
    return load, flat


def list_range_loader(element: ValType, enc: StringEncoding) -> Callable[[CallContext, int, int], Any]:
    """(context, pointer, length) -> the list there, after the specification's checks."""
    size, align = L.elem_size(element), L.alignment(element)
    read_items = bulk_list_reader(element, enc) or _element_items(element, enc)

    def load_range(cx: CallContext, ptr: int, length: int) -> Any:
        byte_length = length * size
        if byte_length > L.MAX_LIST_BYTE_LENGTH:
            raise CanonTrap(f"list of {length} elements ({byte_length} bytes) at 0x{ptr:x} is longer than "
                            f"the canonical ABI allows ({L.MAX_LIST_BYTE_LENGTH} bytes)")
        if ptr % align:
            raise CanonTrap(f"list pointer 0x{ptr:x} is not aligned to {align}")
        cx.mem().check(ptr, byte_length, "list pointer")
        return read_items(cx, ptr, length)
    return load_range


def _element_items(element: ValType, enc: StringEncoding) -> Callable[[CallContext, int, int], Any]:
    eload = compile_lifter(element, enc).load
    size = L.elem_size(element)

    def items(cx: CallContext, ptr: int, n: int) -> list[Any]:
        i = 0
        try:
            out = []
            for i in range(n):
                out.append(eload(cx, ptr + i * size))
            return out
        except CanonTrap as exc:
            raise exc.within(f"list element {i}") from None
    return items


def _list(t: ListType, enc: StringEncoding) -> tuple[Load, LiftFlat]:
    if t.fixed_length is not None:
        return _fixed_list(t.element, t.fixed_length, enc)
    load_range = list_range_loader(t.element, enc)

    def load(cx: CallContext, ptr: int) -> Any:
        begin, length = cx.mem().unpack(_PAIR, ptr)
        return load_range(cx, begin, length)

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> Any:
        begin = int(next(it)) & M32
        return load_range(cx, begin, int(next(it)) & M32)
    return load, flat


def _fixed_list(element: ValType, length: int, enc: StringEncoding) -> tuple[Load, LiftFlat]:
    inner = compile_lifter(element, enc)
    eload, eflat, size = inner.load, inner.lift_flat, inner.size

    def load(cx: CallContext, ptr: int) -> list[Any]:
        return [eload(cx, ptr + i * size) for i in range(length)]

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> list[Any]:
        return [eflat(cx, it) for _ in range(length)]
    return load, flat


def _record(names: tuple[str, ...], types: tuple[ValType, ...], enc: StringEncoding,
            as_tuple: bool) -> tuple[Load, LiftFlat]:
    lifters = [compile_lifter(ft, enc) for ft in types]
    fields = list(zip(names, L.field_offsets(types), [lf.load for lf in lifters], strict=True))
    flats = [(name, lf.lift_flat) for name, lf in zip(names, lifters, strict=True)]
    label = "tuple element" if as_tuple else "record field"
    whole = TupleType(types) if as_tuple else RecordType(tuple(zip(names, types, strict=True)))
    plain = plain_struct(whole)
    rows = row_codec(whole, enc)

    def load(cx: CallContext, ptr: int) -> Any:
        if plain is not None:
            row = cx.mem().unpack(plain[0], ptr)
            return row if as_tuple else dict(zip(names, row, strict=True))
        if rows is not None:
            return rows.decode(cx, cx.mem().unpack(rows.fmt, ptr))
        out = {}
        name = ""
        try:
            for name, offset, fload in fields:
                out[name] = fload(cx, ptr + offset)
        except CanonTrap as exc:
            raise exc.within(f"{label} {name}") from None
        return tuple(out.values()) if as_tuple else out

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> Any:
        out = {}
        name = ""
        try:
            for name, fflat in flats:
                out[name] = fflat(cx, it)
        except CanonTrap as exc:
            raise exc.within(f"{label} {name}") from None
        return tuple(out.values()) if as_tuple else out
    return load, flat


def _shaper(t: VariantType | EnumType | OptionType | ResultType) -> Callable[[int, Any], Any]:
    """How a case index and payload become the Python value of the type (codec.py's shapes)."""
    if isinstance(t, EnumType):
        labels = t.labels
        return lambda index, payload: labels[index]
    if isinstance(t, OptionType):
        return lambda index, payload: payload if index else None
    if isinstance(t, ResultType):
        return lambda index, payload: ("err" if index else "ok", payload)
    names = tuple(name for name, _ in t.cases)
    return lambda index, payload: (names[index], payload)


_COERCE: dict[tuple[str, str], Callable[[CoreValue], CoreValue]] = {
    ("i32", "f32"): lambda v: f32_from_bits(int(v)),
    ("i64", "i32"): lambda v: int(v) & M32,
    ("i64", "f32"): lambda v: f32_from_bits(int(v) & M32),
    ("i64", "f64"): lambda v: f64_from_bits(int(v) & M64),
}


def _variant(t: VariantType | EnumType | OptionType | ResultType, enc: StringEncoding
             ) -> tuple[Load, LiftFlat]:
    vt = L.despecialize(t)
    assert isinstance(vt, VariantType)
    shape = _shaper(t)
    count = len(vt.cases)
    disc = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[L.discriminant_size(count)])
    offset = L.variant_payload_offset(vt)
    joined = L.variant_payload_flat(vt)
    cases: list[tuple[str, Load | None, LiftFlat | None, list[Callable[[CoreValue], CoreValue] | None]]] = []
    for name, ct in vt.cases:
        if ct is None:
            cases.append((name, None, None, []))
            continue
        lf = compile_lifter(ct, enc)
        coerce = [_COERCE.get((have, want)) for have, want in zip(joined, L.flatten_type(ct), strict=False)]
        cases.append((name, lf.load, lf.lift_flat, coerce))

    def load(cx: CallContext, ptr: int) -> Any:
        index = cx.mem().unpack(disc, ptr)[0]
        if index >= count:
            raise CanonTrap(f"variant case index {index} at 0x{ptr:x} is out of range ({count} cases)")
        name, cload, _, _ = cases[index]
        if cload is None:
            return shape(index, None)
        try:
            return shape(index, cload(cx, ptr + offset))
        except CanonTrap as exc:
            raise exc.within(f"case {name}") from None

    width = len(joined)

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> Any:
        index = int(next(it)) & M32
        slots = [next(it) for _ in range(width)]
        if index >= count:
            raise CanonTrap(f"variant case index {index} is out of range ({count} cases)")
        name, _, cflat, coerce = cases[index]
        if cflat is None:
            return shape(index, None)
        values = [v if f is None else f(v) for v, f in zip(slots, coerce, strict=False)]
        try:
            return shape(index, cflat(cx, iter(values)))
        except CanonTrap as exc:
            raise exc.within(f"case {name}") from None
    return load, flat


def _flags(t: FlagsType) -> tuple[Load, LiftFlat]:
    labels = t.labels
    fmt = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[L.flags_size(len(labels))])

    def unpack(bits: int) -> set[str]:
        return {label for i, label in enumerate(labels) if bits >> i & 1}

    def load(cx: CallContext, ptr: int) -> set[str]:
        return unpack(cx.mem().unpack(fmt, ptr)[0])

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> set[str]:
        return unpack(int(next(it)) & M32)
    return load, flat


def _async_end(t: StreamType | FutureType) -> tuple[Load, LiftFlat]:
    """A stream or future: its readable end leaves the guest's table for the host (the component
    runtime's `streams` module owns the ends; imported late, as it builds on this layer)."""
    from tauon.wasm.runtime.streams import lift_end

    def load(cx: CallContext, ptr: int) -> Any:
        return lift_end(cx.table(), t, cx.mem().unpack(_U32, ptr)[0])

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> Any:
        return lift_end(cx.table(), t, int(next(it)) & M32)
    return load, flat


def _resource(t: OwnType | BorrowType) -> tuple[Load, LiftFlat]:
    rtype = t.resource
    wrap: Callable[[int], Any] = int if rtype.host else (lambda rep: GuestResource(rtype, rep))
    if isinstance(t, OwnType):
        def take(cx: CallContext, index: int) -> Any:
            return wrap(cx.table().lift_own(rtype, index))
    else:
        def take(cx: CallContext, index: int) -> Any:
            return wrap(cx.table().lift_borrow(rtype, index, cx.borrow_scope()))

    def load(cx: CallContext, ptr: int) -> Any:
        return take(cx, cx.mem().unpack(_U32, ptr)[0])

    def flat(cx: CallContext, it: Iterator[CoreValue]) -> Any:
        return take(cx, int(next(it)) & M32)
    return load, flat
