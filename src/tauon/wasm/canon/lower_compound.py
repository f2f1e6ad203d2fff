"""Lowering of records, tuples, variants (and enum, option, result), flags and resource handles; the
rest of lowering is in lower.py, which passes its compiler in (so neither module imports the other)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.handles import GuestResource
from tauon.wasm.canon.rows import row_codec
from tauon.wasm.canon.scalars import f32_bits, f64_bits
from tauon.wasm.canon.types import (
    BorrowType,
    EnumType,
    FlagsType,
    OptionType,
    OwnType,
    RecordType,
    ResourceType,
    ResultType,
    StringEncoding,
    TupleType,
    ValType,
    VariantType,
)

if TYPE_CHECKING:
    from tauon.wasm.canon.lower import CoreValue, Lowerer, LowerFlat, Store

Compiler = Callable[[ValType, StringEncoding], "Lowerer"]
_MISSING = object()
_U32 = struct.Struct("<I")


def compile_compound(t: ValType, enc: StringEncoding, compile_lowerer: Compiler) -> tuple[Store, LowerFlat]:
    if isinstance(t, RecordType):
        store, flat = _record(tuple(n for n, _ in t.fields), tuple(ft for _, ft in t.fields), enc,
                              compile_lowerer, False)
        return _row_store(t, enc) or store, flat
    if isinstance(t, TupleType):
        store, flat = _record(tuple(str(i) for i in range(len(t.elements))), t.elements, enc,
                              compile_lowerer, True)
        return _row_store(t, enc) or store, flat
    if isinstance(t, (VariantType, EnumType, OptionType, ResultType)):
        return _variant(t, enc, compile_lowerer)
    if isinstance(t, FlagsType):
        return _flags(t)
    if isinstance(t, (OwnType, BorrowType)):
        return _resource(t)
    raise CanonUnsupported(f"unknown value type {t!r}")


def _row_store(t: RecordType | TupleType, enc: StringEncoding) -> Store | None:
    """The one-pack store of a record or tuple (rows.py), if its fields allow it."""
    rows = row_codec(t, enc)
    if rows is None:
        return None
    fmt, encode = rows.fmt, rows.encode

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        slots: list[Any] = []
        encode(cx, x, slots)
        cx.mem().pack(fmt, ptr, *slots)
    return store


def field_values(x: Any, names: tuple[str, ...], as_tuple: bool) -> Any:
    """A record's field values in order: from a tuple (or list) in field order, a dict, or an object's
    attributes; a tuple type's from any sequence of the right length."""
    if isinstance(x, (tuple, list)):
        if len(x) != len(names):
            raise CanonTrap(f"expected {len(names)} values, got {len(x)}")
        return x
    if as_tuple:
        raise CanonTrap(f"expected a tuple of {len(names)}, got {type(x).__name__}")
    if isinstance(x, dict):
        values = [x.get(name, _MISSING) for name in names]
    else:
        values = [getattr(x, name, _MISSING) for name in names]
    if _MISSING in values:
        missing = [name for name, v in zip(names, values, strict=True) if v is _MISSING]
        raise CanonTrap(f"record value {type(x).__name__} has no field {missing[0]!r}")
    return values


def _record(names: tuple[str, ...], types: tuple[ValType, ...], enc: StringEncoding,
            compile_lowerer: Compiler, as_tuple: bool) -> tuple[Store, LowerFlat]:
    lowerers = [compile_lowerer(ft, enc) for ft in types]
    offsets = L.field_offsets(types)
    stores = [lw.store for lw in lowerers]
    flats = [lw.lower_flat for lw in lowerers]
    label = "tuple element" if as_tuple else "record field"
    count = len(names)

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        values = field_values(x, names, as_tuple)
        i = 0
        try:
            for i in range(count):
                stores[i](cx, values[i], ptr + offsets[i])
        except CanonTrap as exc:
            raise exc.within(f"{label} {names[i]}") from None

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        values = field_values(x, names, as_tuple)
        i = 0
        try:
            for i in range(count):
                flats[i](cx, values[i], out)
        except CanonTrap as exc:
            raise exc.within(f"{label} {names[i]}") from None
    return store, flat


def _case_picker(t: VariantType | EnumType | OptionType | ResultType, vt: VariantType
                 ) -> Callable[[Any], tuple[int, Any]]:
    """Python value -> (case index, payload), per codec.py's shapes."""
    if isinstance(t, OptionType):
        return lambda x: (0, None) if x is None else (1, x)
    index = {name: i for i, (name, _) in enumerate(vt.cases)}
    if isinstance(t, EnumType):
        def pick_enum(x: Any) -> tuple[int, Any]:
            i = index.get(x) if isinstance(x, str) else None
            if i is None:
                raise CanonTrap(f"no enum case {x!r:.60}; cases are {', '.join(t.labels)}")
            return i, None
        return pick_enum
    if isinstance(t, ResultType):
        index = {"ok": 0, "err": 1}
    has_payload = [ct is not None for _, ct in vt.cases]

    def pick(x: Any) -> tuple[int, Any]:
        if isinstance(x, str):
            tag, payload = x, None
        elif isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str):
            tag, payload = x
        else:
            raise CanonTrap(f"expected (case, payload) or a case name, got {type(x).__name__}")
        i = index.get(tag)
        if i is None:
            raise CanonTrap(f"no case {tag!r:.60}; cases are {', '.join(index)}")
        if payload is not None and not has_payload[i]:
            raise CanonTrap(f"case {tag!r} carries no payload, got one")
        if payload is None and has_payload[i] and isinstance(x, str):
            raise CanonTrap(f"case {tag!r} needs a payload: pass ({tag!r}, value)")
        return i, payload
    return pick


_COERCE: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("f32", "i32"): f32_bits,
    ("f32", "i64"): f32_bits,
    ("f64", "i64"): f64_bits,
}
_ZERO: dict[str, CoreValue] = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0}
_Case = tuple[str, "Store | None", "LowerFlat | None", list[Callable[[Any], Any] | None], list["CoreValue"]]
"""(name, payload store, payload flat lowering, per-slot coercions, zero padding)."""


def _variant(t: VariantType | EnumType | OptionType | ResultType, enc: StringEncoding,
             compile_lowerer: Compiler) -> tuple[Store, LowerFlat]:
    vt = L.despecialize(t)
    assert isinstance(vt, VariantType)
    pick = _case_picker(t, vt)
    disc = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[L.discriminant_size(len(vt.cases))])
    offset = L.variant_payload_offset(vt)
    joined = L.variant_payload_flat(vt)
    cases: list[_Case] = []
    for name, ct in vt.cases:
        own = L.flatten_type(ct) if ct is not None else ()
        coerce = [_COERCE.get((have, want)) for have, want in zip(own, joined, strict=False)]
        padding = [_ZERO[want] for want in joined[len(own):]]
        lw = compile_lowerer(ct, enc) if ct is not None else None
        cases.append((name, lw.store if lw else None, lw.lower_flat if lw else None, coerce, padding))

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        i, payload = pick(x)
        name, cstore, _, _, _ = cases[i]
        cx.mem().pack(disc, ptr, i)
        if cstore is not None:
            try:
                cstore(cx, payload, ptr + offset)
            except CanonTrap as exc:
                raise exc.within(f"case {name}") from None

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        i, payload = pick(x)
        name, _, cflat, coerce, padding = cases[i]
        out.append(i)
        if cflat is not None:
            values: list[CoreValue] = []
            try:
                cflat(cx, payload, values)
            except CanonTrap as exc:
                raise exc.within(f"case {name}") from None
            out.extend(v if f is None else f(v) for v, f in zip(values, coerce, strict=True))
        out.extend(padding)
    return store, flat


def _flags(t: FlagsType) -> tuple[Store, LowerFlat]:
    bit = {label: 1 << i for i, label in enumerate(t.labels)}
    fmt = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[L.flags_size(len(t.labels))])

    def pack(x: Any) -> int:
        if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
            raise CanonTrap(f"expected a set of flag names, got {type(x).__name__}")
        bits = 0
        for label in x:
            b = bit.get(label) if isinstance(label, str) else None
            if b is None:
                raise CanonTrap(f"unknown flag {label!r:.60}; flags are {', '.join(t.labels)}")
            bits |= b
        return bits

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        cx.mem().pack(fmt, ptr, pack(x))

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.append(pack(x))
    return store, flat


def _rep(rtype: ResourceType, x: Any) -> int:
    """The rep a host value stands for: an int for a host resource, a GuestResource of this very type
    for a resource a component implements."""
    if rtype.host:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 0xFFFFFFFF:
            raise CanonTrap(f"expected the rep (a u32 int) of a {rtype.name!r}, got {x!r:.60}")
        return x
    if not isinstance(x, GuestResource) or x.rtype is not rtype:
        raise CanonTrap(f"expected a GuestResource of {rtype.name!r}, got {x!r:.60}")
    return x.rep


def _resource(t: OwnType | BorrowType) -> tuple[Store, LowerFlat]:
    rtype = t.resource
    if isinstance(t, OwnType):
        def index(cx: CallContext, x: Any) -> int:
            return cx.table().lower_own(rtype, _rep(rtype, x))
    else:
        def index(cx: CallContext, x: Any) -> int:
            return cx.table().lower_borrow(rtype, _rep(rtype, x), cx.borrow_scope())

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        cx.mem().pack(_U32, ptr, index(cx, x))

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.append(index(cx, x))
    return store, flat
