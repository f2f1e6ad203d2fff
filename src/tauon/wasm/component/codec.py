"""Converters between component-model values (the C API's `wasmtime_component_val_t`) and Python.

A function's converters are compiled once, from the types the component imports or exports, so a
call does no type reflection. Python shapes, chosen for host code that reads well:

| component type | Python |
|---|---|
| bool, integers, floats, char, string | bool, int, float, str (1 char), str |
| `list<u8>` | bytes (lowering also takes bytearray / memoryview), converted in bulk |
| `list<T>`, `tuple<...>` | list, tuple |
| record | lifted as a dict; lowered from a tuple in field order, a dict, or an object's attributes |
| variant | `(case, payload)`; a case without payload may be lowered from the bare case name |
| enum | str |
| `option<T>` | None or the value |
| `result<T, E>` | `("ok", value)` or `("err", error)` (see `ok()` / `err()`) |
| flags | set of str |
| `own<R>` / `borrow<R>` of a host resource | the resource's `rep` (int) |

Composite values set their kind byte last, so a failed conversion leaves a plain `bool` behind
(which frees nothing) rather than half-built memory the runtime would free.
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
from tauon.wasm.component.codec_basic import (
    VOIDP,
    Codec,
    Lift,
    Lower,
    ResourceError,
    ResourceIds,
    UnsupportedType,
    boolean,
    byte_list,
    char,
    err,
    fill_rest,
    latin1_string,
    ok,
    scalar,
    string,
)
from tauon.wasm.component.codec_flat_basic import RAM, READ_PTR

__all__ = ["Codec", "Frozen", "Lift", "Lower", "ResourceError", "ResourceIds", "UnsupportedType",
           "compile_type", "err", "ok"]

# Lowering writes through raw addresses: each ctypes attribute step (`v.of.record.data[i].val`) makes
# an object, and a row set of a few values took ~25 us that way.
_PAYLOAD = c.VAL_PAYLOAD
_VAL_SIZE = c.VAL_SIZE
_VEC_DATA = ctypes.sizeof(ctypes.c_size_t)
"""Offset of `data` in a size + data vector (lists, records, tuples, names)."""
_ENTRY_SIZE = c.RECORD_ENTRY_SIZE
_ENTRY_VAL = c.RECORD_ENTRY_VAL
_VARIANT_VAL = c.VARIANT_VAL
_RESULT_VAL = c.RESULT_VAL
_val_at = c.Val.from_address


def _pointer_at(address: int) -> int:
    return VOIDP.from_address(address).value or 0


class Frozen(tuple[Any, ...]):
    """A tuple a host function returns for a `list<T>` and promises never to change, holding no
    resources (e.g. a query's columns, the same for every run of a statement): its lowering is kept,
    per function, and copied with one C call the next time (a few us saved per value)."""


MEMO_ENTRIES = 64
"""Frozen values kept per list type; beyond, they are lowered as plain tuples (never evicted: a
thread may be copying from one)."""
MEMO_ITEMS = 64
"""Longest Frozen value kept."""


class _Template:
    """A lowered value owned by a memo; freed when the memo (its function's linker) goes."""

    def __init__(self) -> None:
        self.val = c.Val()

    def __del__(self) -> None:
        if self.val.kind != c.KIND_BOOL:
            c.val_delete(ctypes.byref(self.val))


def _list(element: Codec) -> Codec:
    elift, elower = element.lift, element.lower
    memo: dict[Frozen, _Template] = {}

    def lift(ctx: int, v: Any) -> list[Any]:
        lst = v.of.list
        data = lst.data
        return [elift(ctx, data[i]) for i in range(lst.size)]

    def lower(ctx: int, x: Any, v: Any) -> None:
        if type(x) is Frozen and len(x) <= MEMO_ITEMS:
            template = memo.get(x)
            if template is None and len(memo) < MEMO_ENTRIES:
                template = _Template()
                lower_items(ctx, x, template.val)
                memo[x] = template
            if template is not None:
                c.val_clone(ctypes.addressof(template.val), ctypes.addressof(v))
                return
        lower_items(ctx, x, v)

    def lower_items(ctx: int, x: Any, v: Any) -> None:
        items = x if isinstance(x, (list, tuple)) else list(x)
        n = len(items)
        at = ctypes.addressof(v) + _PAYLOAD
        c.vallist_new_uninit(at, n)
        base = _pointer_at(at + _VEC_DATA)
        done = 0
        try:
            for item in items:
                elower(ctx, item, _val_at(base + done * _VAL_SIZE))
                done += 1
        finally:
            if done < n:
                fill_rest(c.ValPtr.from_address(at + _VEC_DATA), done, n)
        v.kind = c.KIND_LIST

    return Codec(lift, lower)


def _tuple(elements: Sequence[Codec]) -> Codec:
    lifts = [e.lift for e in elements]
    lowers = [e.lower for e in elements]
    n = len(elements)

    def lift(ctx: int, v: Any) -> tuple[Any, ...]:
        data = v.of.tuple.data
        return tuple(f(ctx, data[i]) for i, f in enumerate(lifts))

    def lower(ctx: int, x: Any, v: Any) -> None:
        if len(x) != n:
            raise TypeError(f"expected a tuple of {n}, got {len(x)} values")
        at = ctypes.addressof(v) + _PAYLOAD
        c.valtuple_new_uninit(at, n)
        base = _pointer_at(at + _VEC_DATA)
        done = 0
        try:
            for f, item in zip(lowers, x, strict=True):
                f(ctx, item, _val_at(base + done * _VAL_SIZE))
                done += 1
        finally:
            if done < n:
                fill_rest(c.ValPtr.from_address(at + _VEC_DATA), done, n)
        v.kind = c.KIND_TUPLE

    return Codec(lift, lower)


def _record(fields: Sequence[tuple[str, Codec]]) -> Codec:
    names = [name for name, _ in fields]
    encoded = [name.encode() for name in names]
    lifts = [codec.lift for _, codec in fields]
    lowers = [codec.lower for _, codec in fields]
    n = len(fields)

    def lift(ctx: int, v: Any) -> dict[str, Any]:
        data = v.of.record.data
        return {name: f(ctx, data[i].val) for i, (name, f) in enumerate(zip(names, lifts, strict=True))}

    def lower(ctx: int, x: Any, v: Any) -> None:
        if isinstance(x, tuple):
            values: Sequence[Any] = x
        elif isinstance(x, dict):
            values = [x[name] for name in names]
        else:
            values = [getattr(x, name) for name in names]
        at = ctypes.addressof(v) + _PAYLOAD
        c.valrecord_new_uninit(at, n)
        base = _pointer_at(at + _VEC_DATA)
        done = 0
        try:
            for i in range(n):
                entry = base + i * _ENTRY_SIZE
                lowers[i](ctx, values[i], _val_at(entry + _ENTRY_VAL))
                name = encoded[i]
                c.byte_vec_new(entry, len(name), name)
                done += 1
        finally:
            for i in range(done, n):
                entry = base + i * _ENTRY_SIZE
                _val_at(entry + _ENTRY_VAL).kind = c.KIND_BOOL
                c.byte_vec_new(entry, 0, b"")
        v.kind = c.KIND_RECORD

    return Codec(lift, lower)


def _boxed(ctx: int, lower: Lower, x: Any) -> int:
    """Lower `x` into a fresh heap value (the C API's `val_new` moves it): its address."""
    tmp = c.Val()
    lower(ctx, x, tmp)
    return int(c.val_new_at(ctypes.addressof(tmp)))


def _variant(cases: Sequence[tuple[str, Codec | None]]) -> Codec:
    table = {name: (name.encode(), codec) for name, codec in cases}
    by_name = {name.encode(): (name, codec.lift if codec else None) for name, codec in cases}

    def lift(ctx: int, v: Any) -> tuple[str, Any]:
        var = v.of.variant
        disc = var.discriminant
        tag, f = by_name[ctypes.string_at(disc.data, disc.size)]
        return (tag, f(ctx, var.val.contents) if f is not None else None)

    def lower(ctx: int, x: Any, v: Any) -> None:
        if isinstance(x, str):
            tag, payload = x, None
        else:
            tag, payload = x
        try:
            encoded, codec = table[tag]
        except KeyError:
            raise TypeError(f"no variant case {tag!r}; cases are {', '.join(table)}") from None
        boxed = _boxed(ctx, codec.lower, payload) if codec is not None else None
        at = ctypes.addressof(v) + _PAYLOAD
        c.byte_vec_new(at, len(encoded), encoded)
        VOIDP.from_address(at + _VARIANT_VAL).value = boxed
        v.kind = c.KIND_VARIANT

    return Codec(lift, lower)


def _enum(names: Sequence[str]) -> Codec:
    encoded = {name: name.encode() for name in names}

    def lift(ctx: int, v: Any) -> str:
        e = v.of.enumeration
        return ctypes.string_at(e.data, e.size).decode()

    def lower(ctx: int, x: Any, v: Any) -> None:
        try:
            raw = encoded[x]
        except KeyError:
            raise TypeError(f"no enum case {x!r}; cases are {', '.join(encoded)}") from None
        c.set_name(v.of.enumeration, raw)
        v.kind = c.KIND_ENUM

    return Codec(lift, lower)


def _option(payload: Codec) -> Codec:
    plift, plower = payload.lift, payload.lower

    def lift(ctx: int, v: Any) -> Any:
        p = v.of.option
        return plift(ctx, p.contents) if p else None

    def lower(ctx: int, x: Any, v: Any) -> None:
        VOIDP.from_address(ctypes.addressof(v) + _PAYLOAD).value = (
            None if x is None else _boxed(ctx, plower, x))
        v.kind = c.KIND_OPTION

    return Codec(lift, lower)


def _result(ok_codec: Codec | None, err_codec: Codec | None) -> Codec:

    def lift(ctx: int, v: Any) -> tuple[str, Any]:
        r = v.of.result
        if r.is_ok:
            return ("ok", ok_codec.lift(ctx, r.val.contents) if ok_codec else None)
        return ("err", err_codec.lift(ctx, r.val.contents) if err_codec else None)

    def lower(ctx: int, x: Any, v: Any) -> None:
        tag, payload = x
        if tag == "ok":
            codec, is_ok = ok_codec, True
        elif tag == "err":
            codec, is_ok = err_codec, False
        else:
            raise TypeError(f"expected ('ok', value) or ('err', error), got {x!r}")
        at = ctypes.addressof(v) + _PAYLOAD
        VOIDP.from_address(at + _RESULT_VAL).value = (
            _boxed(ctx, codec.lower, payload) if codec is not None else None)
        ctypes.c_bool.from_address(at).value = is_ok
        v.kind = c.KIND_RESULT

    return Codec(lift, lower)


def _flags(names: Sequence[str]) -> Codec:
    known = set(names)

    def lift(ctx: int, v: Any) -> set[str]:
        f = v.of.flags
        return {ctypes.string_at(f.data[i].data, f.data[i].size).decode() for i in range(f.size)}

    def lower(ctx: int, x: Any, v: Any) -> None:
        chosen = [name for name in names if name in x]
        if len(chosen) != len(x):
            raise TypeError(f"unknown flags {set(x) - known}")
        f = v.of.flags
        c.valflags_new_uninit(ctypes.addressof(f), len(chosen))
        for i, name in enumerate(chosen):
            c.set_name(f.data[i], name.encode())
        v.kind = c.KIND_FLAGS

    return Codec(lift, lower)


def _resource(host_id: int | None, owned: bool) -> Codec:
    # A handle crosses in three C calls each way; everything around them is kept to plain integers
    # (a request of the C fixture converts eleven handles).
    payload = c.VAL_PAYLOAD - 1  # RAM is indexed by address - 1
    to_host, rep_of, delete = c.resource_any_to_host, c.resource_host_rep, c.resource_host_delete
    new_host, to_any = c.resource_host_new, c.resource_host_to_any_at
    addressof, byref, kind = ctypes.addressof, ctypes.byref, c.KIND_RESOURCE

    def lift(ctx: int, v: Any) -> int:
        host = VOIDP()
        error = to_host(ctx, READ_PTR(RAM, addressof(v) + payload)[0], byref(host))
        if error:
            raise ResourceError(f"expected a host resource: {c.take_error(error)}")
        rep: int = rep_of(host)
        delete(host)
        return rep

    def lower(ctx: int, x: Any, v: Any) -> None:
        if host_id is None:
            raise ResourceError("cannot pass a guest-defined resource from the host")
        host = new_host(owned, x, host_id)
        error = to_any(ctx, host, addressof(v) + payload + 1)  # the handle, into the payload
        delete(host)
        if error:
            raise ResourceError(c.take_error(error))
        v.kind = kind

    return Codec(lift, lower)


_SCALARS: dict[type, tuple[int, str]] = {
    wt.S8: (c.KIND_S8, "s8"), wt.U8: (c.KIND_U8, "u8"), wt.S16: (c.KIND_S16, "s16"),
    wt.U16: (c.KIND_U16, "u16"), wt.S32: (c.KIND_S32, "s32"), wt.U32: (c.KIND_U32, "u32"),
    wt.S64: (c.KIND_S64, "s64"), wt.U64: (c.KIND_U64, "u64"), wt.F32: (c.KIND_F32, "f32"),
    wt.F64: (c.KIND_F64, "f64"),
}


def compile_type(ty: ValType, resources: ResourceIds, *, latin1_bytes: bool = False) -> Codec:
    """Build the converters for one value type. Raises UnsupportedType. `latin1_bytes`: strings in
    this type stand for byte lists (rewriting/reads.py, routing.py); Python sees bytes."""
    kind = _SCALARS.get(type(ty))
    if kind is not None:
        return scalar(*kind)
    if isinstance(ty, wt.Bool):
        return boolean()
    if isinstance(ty, wt.Char):
        return char()
    if isinstance(ty, wt.String):
        return latin1_string() if latin1_bytes else string()
    if isinstance(ty, ListType):
        element = ty.element
        if isinstance(element, wt.U8):
            return byte_list()
        return _list(compile_type(element, resources))
    if isinstance(ty, RecordType):
        return _record([(name, compile_type(t, resources)) for name, t in ty.fields])
    if isinstance(ty, TupleType):
        return _tuple([compile_type(t, resources) for t in ty.elements])
    if isinstance(ty, VariantType):
        return _variant([(name, compile_type(t, resources) if t is not None else None)
                         for name, t in ty.cases])
    if isinstance(ty, EnumType):
        return _enum(ty.names)
    if isinstance(ty, OptionType):
        return _option(compile_type(ty.payload, resources))
    if isinstance(ty, ResultType):
        ok_ty, err_ty = ty.ok, ty.err
        return _result(compile_type(ok_ty, resources, latin1_bytes=latin1_bytes) if ok_ty is not None
                       else None, compile_type(err_ty, resources) if err_ty is not None else None)
    if isinstance(ty, FlagsType):
        return _flags(ty.names)
    if isinstance(ty, OwnType):
        return _resource(resources(ty.ty), owned=True)
    if isinstance(ty, BorrowType):
        return _resource(resources(ty.ty), owned=False)
    raise UnsupportedType(f"values of type {type(ty).__name__} are not supported by this host")
