"""Flat converters: a whole component value moved across the C API with one C call, for the host
functions whose interface asks for them (`HostInterface.flat`: spin:postgres's query results).

Lowering builds the value's `wasmtime_component_val_t` tree in a per-thread scratch buffer that
Python owns (every nested array, name and string inside it, pointers as absolute addresses), then
`wasmtime_component_val_clone` copies the tree into memory the runtime owns. The generic codec
(codec.py) makes a C call per list, record, name, string and boxed payload (ten for a one-row
PostgreSQL row set, ~1 us each through ctypes); here each value is a `struct.pack_into`.

Lifting reads the runtime's tree through one read-only memoryview over the process's address space
(`codec_flat_basic.RAM`, indexed by address - 1: a memoryview cannot start at NULL) with
`struct.unpack_from`, instead of a ctypes object per field: exactly what `ctypes.from_address`
would read.

The Python shapes are codec.py's. Types holding resources are not flat (their handles need the
runtime's calls): `compile_flat` returns None for them and codec.py's converters are used. A value
too large for the scratch (a `list<u8>` beyond `BYTES_LIMIT`) is lowered by codec.py's converter.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from wasmtime.component import (
    BorrowType,
    EnumType,
    FlagsType,
    ListType,
    OptionType,
    OwnType,
    RecordType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)
from wasmtime.component import _types as wt

from tauon.wasm.component import _capi as c
from tauon.wasm.component.codec import MEMO_ENTRIES, MEMO_ITEMS, Frozen
from tauon.wasm.component.codec_basic import Codec
from tauon.wasm.component.codec_flat_basic import (
    ENTRY,
    HEAD,
    PAYLOAD,
    POINTER,
    RAM,
    READ_PTR,
    READ_RESULT,
    READ_VARIANT,
    READ_VEC,
    RESULT,
    SCALARS,
    SCRATCH_MAX,
    SCRATCH_START,
    VAL,
    VARIANT,
    VEC,
    FlatLift,
    FlatLower,
    Full,
    Name,
    Scratch,
    TooBig,
    boolean,
    byte_list,
    char,
    per_thread,
    read,
    scalar,
    string,
)


class _Kept:
    """A Frozen list's items lowered once into memory of their own, pointed at by every value that
    holds the list (val_clone copies them from there): a query's columns, the same on every run."""

    def __init__(self, items: Frozen, elower: FlatLower) -> None:
        self.count = len(items)
        size = max(SCRATCH_START // 16, self.count * VAL * 2)
        while True:
            scratch = Scratch(size)
            scratch.top = self.count * VAL
            try:
                for i, item in enumerate(items):
                    elower(scratch, item, i * VAL)
                break
            except Full:
                size *= 2
                if size > SCRATCH_MAX:
                    raise TooBig from None
        self._scratch = scratch
        self.address = scratch.base


def listing(element: tuple[FlatLift, FlatLower]) -> tuple[FlatLift, FlatLower]:
    elift, elower = element
    kind = c.KIND_LIST

    def lift(a: int) -> list[Any]:
        size, data = READ_VEC(RAM, a + PAYLOAD - 1)
        return [elift(data + i * VAL) for i in range(size)]

    memo: dict[Frozen, _Kept] = {}

    def lower(s: Scratch, x: Any, at: int) -> None:
        if type(x) is Frozen and len(x) <= MEMO_ITEMS:
            kept = memo.get(x)
            if kept is None and len(memo) < MEMO_ENTRIES:
                # never replaced once kept: a thread may be pointing a value at it
                kept = memo.setdefault(x, _Kept(x, elower))
            if kept is not None:
                HEAD(s.buf, at, kind, kept.count, kept.address)
                return
        items = x if isinstance(x, (list, tuple)) else list(x)
        n = len(items)
        off = s.top
        end = off + n * VAL
        s.top = end
        if end > s.size:
            raise Full
        slot = off
        for item in items:
            elower(s, item, slot)
            slot += VAL
        HEAD(s.buf, at, kind, n, s.base + off)

    return lift, lower


def tupled(elements: Sequence[tuple[FlatLift, FlatLower]]) -> tuple[FlatLift, FlatLower]:
    lifts = [e[0] for e in elements]
    lowers = [e[1] for e in elements]
    n = len(elements)
    kind = c.KIND_TUPLE

    def lift(a: int) -> tuple[Any, ...]:
        _, data = READ_VEC(RAM, a + PAYLOAD - 1)
        return tuple(f(data + i * VAL) for i, f in enumerate(lifts))

    def lower(s: Scratch, x: Any, at: int) -> None:
        if len(x) != n:
            raise TypeError(f"expected a tuple of {n}, got {len(x)} values")
        off = s.alloc(n * VAL)
        for i, f in enumerate(lowers):
            f(s, x[i], off + i * VAL)
        HEAD(s.buf, at, kind, n, s.base + off)

    return lift, lower


def record(fields: Sequence[tuple[str, tuple[FlatLift, FlatLower]]]) -> tuple[FlatLift, FlatLower]:
    names = [name for name, _ in fields]
    kept = [Name(name) for name in names]
    heads = [(k.size, k.address) for k in kept]
    lifts = [f[0] for _, f in fields]
    lowers = [f[1] for _, f in fields]
    n = len(fields)
    kind = c.KIND_RECORD
    entry_val = c.RECORD_ENTRY_VAL

    def lift(a: int) -> dict[str, Any]:
        _, data = READ_VEC(RAM, a + PAYLOAD - 1)
        return {name: lifts[i](data + i * ENTRY + entry_val) for i, name in enumerate(names)}

    def lower(s: Scratch, x: Any, at: int) -> None:
        if isinstance(x, tuple):
            values: Sequence[Any] = x
        elif isinstance(x, dict):
            values = [x[name] for name in names]
        else:
            values = [getattr(x, name) for name in names]
        off = s.top
        end = off + n * ENTRY
        s.top = end
        if end > s.size:
            raise Full
        buf = s.buf
        for i in range(n):
            entry = off + i * ENTRY
            size, address = heads[i]
            VEC(buf, entry, size, address)
            lowers[i](s, values[i], entry + entry_val)
        HEAD(buf, at, kind, n, s.base + off)

    lower.kept = kept  # type: ignore[attr-defined]  # the names live as long as the converter
    return lift, lower


def variant(cases: Sequence[tuple[str, tuple[FlatLift, FlatLower] | None]]) -> tuple[FlatLift, FlatLower]:
    kept = {name: Name(name) for name, _ in cases}
    table = {name: (kept[name].size, kept[name].address, f[1] if f else None) for name, f in cases}
    by_name = {name.encode(): (name, f[0] if f else None) for name, f in cases}
    kind = c.KIND_VARIANT

    def lift(a: int) -> tuple[str, Any]:
        size, data, payload = READ_VARIANT(RAM, a + PAYLOAD - 1)
        tag, f = by_name[bytes(read(data, size))]
        return (tag, f(payload) if f is not None and payload else None)

    def lower(s: Scratch, x: Any, at: int) -> None:
        if isinstance(x, str):
            tag, payload = x, None
        else:
            tag, payload = x
        try:
            size, address, f = table[tag]
        except KeyError:
            raise TypeError(f"no variant case {tag!r}; cases are {', '.join(table)}") from None
        boxed = 0
        if f is not None:
            off = s.top
            s.top = off + VAL
            if off + VAL > s.size:
                raise Full
            f(s, payload, off)
            boxed = s.base + off
        VARIANT(s.buf, at, kind, size, address, boxed)

    lower.kept = kept  # type: ignore[attr-defined]
    return lift, lower


def enum(names: Sequence[str]) -> tuple[FlatLift, FlatLower]:
    kept = {name: Name(name) for name in names}
    kind = c.KIND_ENUM

    def lift(a: int) -> str:
        size, data = READ_VEC(RAM, a + PAYLOAD - 1)
        return str(read(data, size), "utf-8")

    def lower(s: Scratch, x: Any, at: int) -> None:
        try:
            name = kept[x]
        except KeyError:
            raise TypeError(f"no enum case {x!r}; cases are {', '.join(kept)}") from None
        HEAD(s.buf, at, kind, name.size, name.address)

    return lift, lower


def option(payload: tuple[FlatLift, FlatLower]) -> tuple[FlatLift, FlatLower]:
    plift, plower = payload
    kind = c.KIND_OPTION

    def lift(a: int) -> Any:
        (p,) = READ_PTR(RAM, a + PAYLOAD - 1)
        return plift(p) if p else None

    def lower(s: Scratch, x: Any, at: int) -> None:
        boxed = 0
        if x is not None:
            off = s.alloc(VAL)
            plower(s, x, off)
            boxed = s.base + off
        POINTER(s.buf, at, kind, boxed)

    return lift, lower


def result(ok_f: tuple[FlatLift, FlatLower] | None,
           err_f: tuple[FlatLift, FlatLower] | None) -> tuple[FlatLift, FlatLower]:
    kind = c.KIND_RESULT

    def lift(a: int) -> tuple[str, Any]:
        is_ok, p = READ_RESULT(RAM, a + PAYLOAD - 1)
        f = ok_f if is_ok else err_f
        return ("ok" if is_ok else "err", f[0](p) if f is not None and p else None)

    def lower(s: Scratch, x: Any, at: int) -> None:
        tag, payload = x
        if tag == "ok":
            f, is_ok = ok_f, True
        elif tag == "err":
            f, is_ok = err_f, False
        else:
            raise TypeError(f"expected ('ok', value) or ('err', error), got {x!r}")
        boxed = 0
        if f is not None:
            off = s.alloc(VAL)
            f[1](s, payload, off)
            boxed = s.base + off
        RESULT(s.buf, at, kind, is_ok, boxed)

    return lift, lower


def flags(names: Sequence[str]) -> tuple[FlatLift, FlatLower]:
    kept = {name: Name(name) for name in names}
    kind = c.KIND_FLAGS

    def lift(a: int) -> set[str]:
        size, data = READ_VEC(RAM, a + PAYLOAD - 1)
        out = set()
        for i in range(size):
            n, p = READ_VEC(RAM, data + i * 16 - 1)
            out.add(str(read(p, n), "utf-8"))
        return out

    def lower(s: Scratch, x: Any, at: int) -> None:
        chosen = [kept[name] for name in names if name in x]
        if len(chosen) != len(x):
            raise TypeError(f"unknown flags {set(x) - set(names)}")
        off = s.alloc(len(chosen) * 16)
        for i, name in enumerate(chosen):
            VEC(s.buf, off + i * 16, name.size, name.address)
        HEAD(s.buf, at, kind, len(chosen), s.base + off)

    return lift, lower


class _Unflat(Exception):
    pass


def _compile(ty: ValType) -> tuple[FlatLift, FlatLower]:
    kind = SCALARS.get(type(ty))
    if kind is not None:
        return scalar(*kind)
    if isinstance(ty, wt.Bool):
        return boolean()
    if isinstance(ty, wt.Char):
        return char()
    if isinstance(ty, wt.String):
        return string()
    if isinstance(ty, ListType):
        return byte_list() if isinstance(ty.element, wt.U8) else listing(_compile(ty.element))
    if isinstance(ty, RecordType):
        return record([(name, _compile(t)) for name, t in ty.fields])
    if isinstance(ty, TupleType):
        return tupled([_compile(t) for t in ty.elements])
    if isinstance(ty, VariantType):
        return variant([(name, _compile(t) if t is not None else None) for name, t in ty.cases])
    if isinstance(ty, EnumType):
        return enum(ty.names)
    if isinstance(ty, OptionType):
        return option(_compile(ty.payload))
    if isinstance(ty, ResultType):
        return result(_compile(ty.ok) if ty.ok is not None else None,
                      _compile(ty.err) if ty.err is not None else None)
    if isinstance(ty, FlagsType):
        return flags(ty.names)
    if isinstance(ty, (OwnType, BorrowType)):
        raise _Unflat("resources are converted by codec.py")
    raise _Unflat(f"{type(ty).__name__} is not converted flat")


def compile_flat(ty: ValType, generic: Codec) -> Codec | None:
    """Flat converters for `ty` (None when it holds resources or anything else not flat), with
    `generic` (codec.py's for the same type) for values too large for the scratch buffer."""
    try:
        converters = _compile(ty)
    except _Unflat:
        return None
    return flat_codec(converters, generic)


def flat_codec(converters: tuple[FlatLift, FlatLower], generic: Codec) -> Codec:
    """A Codec with codec.py's signatures over flat converters."""
    flift, flower = converters
    clone = c.val_clone
    addressof = ctypes.addressof
    fallback = generic.lower

    def lift(ctx: int, v: Any) -> Any:
        return flift(addressof(v))

    def lower(ctx: int, x: Any, v: Any) -> None:
        s = per_thread.scratch
        if s is None:
            s = per_thread.scratch = Scratch(SCRATCH_START)
        while True:
            s.top = VAL  # the value itself at offset 0
            try:
                flower(s, x, 0)
                break
            except Full:
                size = max(len(s.buf) * 2, s.top * 2)
                if size > SCRATCH_MAX:
                    fallback(ctx, x, v)
                    return
                s = per_thread.scratch = Scratch(size)
            except TooBig:
                fallback(ctx, x, v)
                return
        clone(s.base, addressof(v))

    return Codec(lift, lower)

