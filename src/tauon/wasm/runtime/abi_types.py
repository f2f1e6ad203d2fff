"""Converters of compound component types (records, tuples, the variant family, flags) and resource
handles, and `compile_type`, which builds (and caches) the converter of any stage-1 value type."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

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
from tauon.wasm.runtime.abi import (
    CallContext,
    CanonTrap,
    Conv,
    Handle,
    _bool,
    _bytes,
    _char,
    _float,
    _int,
    _list,
    _memops,
    _string,
    align_to,
)
from tauon.wasm.runtime.model import UnsupportedComponent


def _record(fields: Sequence[tuple[str, Conv]], as_tuple: bool) -> Conv:
    names = [name for name, _ in fields]
    convs = [conv for _, conv in fields]
    offsets, at, align = [], 0, 1
    for conv in convs:
        at = align_to(at, conv.align)
        offsets.append(at)
        at += conv.size
        align = max(align, conv.align)
    size = align_to(at, align)
    flat = tuple(t for conv in convs for t in conv.flat)
    placed = list(zip(offsets, convs, strict=True))
    n = len(fields)

    def values_of(v: Any) -> Sequence[Any]:
        if isinstance(v, tuple | list):
            if len(v) != n:
                raise TypeError(f"expected {n} values, got {len(v)}")
            return v
        if isinstance(v, dict):
            return [v[name] for name in names]
        return [getattr(v, name) for name in names]

    def make(values: list[Any]) -> Any:
        return tuple(values) if as_tuple else dict(zip(names, values, strict=True))

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        out = []
        for conv in convs:
            value, i = conv.lift_flat(cx, vals, i)
            out.append(value)
        return make(out), i

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        for conv, value in zip(convs, values_of(v), strict=True):
            conv.lower_flat(cx, value, out)

    def load(cx: CallContext, ptr: int) -> Any:
        return make([conv.load(cx, ptr + offset) for offset, conv in placed])

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        for (offset, conv), value in zip(placed, values_of(v), strict=True):
            conv.store(cx, value, ptr + offset)

    return Conv(size, align, flat, lift_flat, lower_flat, load, store)


_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _coerce_in(have: str, want: str) -> Callable[[Any], Any] | None:
    """A joined variant slot of core type `have`, read as the case's `want` (the spec's CoerceValueIter)."""
    if have == want:
        return None
    if want == "i32":
        return lambda v: v & 0xFFFFFFFF
    if want == "f32":
        return lambda v: _F32.unpack(_U32.pack(v & 0xFFFFFFFF))[0]
    if want == "f64":
        return lambda v: _F64.unpack(_U64.pack(v))[0]
    return None


def _coerce_out(have: str, joined: str) -> Callable[[Any], Any] | None:
    """A case's flat value of core type `have`, put in a joined slot of type `joined`."""
    if have == joined or have in ("i32", "i64"):
        return None  # ints are unsigned already; an i32 in an i64 slot is zero-extended
    if have == "f32":
        return lambda v: _U32.unpack(_F32.pack(v))[0]
    return lambda v: _U64.unpack(_F64.pack(v))[0]


def _join(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} == {"i32", "f32"}:
        return "i32"
    return "i64"


Shape = tuple[Callable[[int, Any], Any], Callable[[Any], tuple[int, Any]]]
"""(to_python(case index, payload), from_python(value) -> (case index, payload))."""


def _variant(cases: Sequence[tuple[str, Conv | None]], shape: Shape) -> Conv:
    n = len(cases)
    disc_fmt = "B" if n <= 256 else "H" if n <= 65536 else "I"
    disc_load, disc_store, disc_size = _memops(disc_fmt)
    convs = [conv for _, conv in cases]
    case_align = max((c.align for c in convs if c is not None), default=1)
    payload_at = align_to(disc_size, case_align)
    align = max(disc_size, case_align)
    size = align_to(payload_at + max((c.size for c in convs if c is not None), default=0), align)
    joined: list[str] = []
    for conv in convs:
        for i, t in enumerate(conv.flat if conv is not None else ()):
            if i < len(joined):
                joined[i] = _join(joined[i], t)
            else:
                joined.append(t)
    width = len(joined)
    ins = [[_coerce_in(joined[i], t) for i, t in enumerate(c.flat)] if c is not None else [] for c in convs]
    outs = [[_coerce_out(t, joined[i]) for i, t in enumerate(c.flat)] if c is not None else [] for c in convs]
    to_py, from_py = shape

    def case_of(disc: int) -> Conv | None:
        if disc >= n:
            raise CanonTrap(f"variant case {disc} out of range ({n} cases)")
        return convs[disc]

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        disc = vals[i] & 0xFFFFFFFF
        conv = case_of(disc)
        payload = None
        if conv is not None:
            raw = [f(v) if f is not None else v for f, v in zip(ins[disc], vals[i + 1:], strict=False)]
            payload = conv.lift_flat(cx, raw, 0)[0]
        return to_py(disc, payload), i + 1 + width

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        disc, payload = from_py(v)
        out.append(disc)
        conv = convs[disc]
        mine: list[Any] = []
        if conv is not None:
            conv.lower_flat(cx, payload, mine)
            mine = [f(x) if f is not None else x for f, x in zip(outs[disc], mine, strict=True)]
        out.extend(mine)
        out.extend(0.0 if t[0] == "f" else 0 for t in joined[len(mine):])

    def load(cx: CallContext, ptr: int) -> Any:
        disc = disc_load(cx, ptr)
        conv = case_of(disc)
        return to_py(disc, conv.load(cx, ptr + payload_at) if conv is not None else None)

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        disc, payload = from_py(v)
        disc_store(cx, disc, ptr)
        conv = convs[disc]
        if conv is not None:
            conv.store(cx, payload, ptr + payload_at)

    return Conv(size, align, ("i32", *joined), lift_flat, lower_flat, load, store)


def _named_shape(names: Sequence[str]) -> Shape:
    index = {name: i for i, name in enumerate(names)}

    def to_py(disc: int, payload: Any) -> Any:
        return (names[disc], payload)

    def from_py(v: Any) -> tuple[int, Any]:
        case, payload = (v, None) if isinstance(v, str) else v
        if case not in index:
            raise TypeError(f"no variant case {case!r}; cases are {', '.join(names)}")
        return index[case], payload

    return to_py, from_py


def _enum_shape(names: Sequence[str]) -> Shape:
    index = {name: i for i, name in enumerate(names)}

    def from_py(v: Any) -> tuple[int, Any]:
        if v not in index:
            raise TypeError(f"no enum case {v!r}; cases are {', '.join(names)}")
        return index[v], None

    return (lambda disc, _: names[disc]), from_py


_OPTION: Shape = ((lambda disc, payload: payload if disc else None),
                  (lambda v: (0, None) if v is None else (1, v)))


def _result_from(v: Any) -> tuple[int, Any]:
    tag, payload = v
    if tag == "ok":
        return 0, payload
    if tag == "err":
        return 1, payload
    raise TypeError(f"expected ('ok', value) or ('err', error), got {v!r}")


_RESULT: Shape = ((lambda disc, payload: ("err" if disc else "ok", payload)), _result_from)


def _flags(labels: Sequence[str]) -> Conv:
    if not 0 < len(labels) <= 32:
        raise UnsupportedComponent(f"flags with {len(labels)} labels")
    fmt = "B" if len(labels) <= 8 else "H" if len(labels) <= 16 else "I"
    mload, mstore, size = _memops(fmt)
    bit = {label: 1 << i for i, label in enumerate(labels)}

    def to_py(bits: int) -> set[str]:
        return {label for i, label in enumerate(labels) if bits & (1 << i)}

    def from_py(v: Any) -> int:
        try:
            return sum(bit[label] for label in set(v))
        except KeyError as exc:
            raise TypeError(f"unknown flag {exc.args[0]!r}") from None

    return Conv(size, size, ("i32",), lambda cx, vals, i: (to_py(vals[i]), i + 1),
                lambda cx, v, out: out.append(from_py(v)), lambda cx, p: to_py(mload(cx, p)),
                lambda cx, v, p: mstore(cx, from_py(v), p))


def _handle(rtype: ResourceType, own: bool) -> Conv:
    mload, mstore, _ = _memops("I")

    def lift(cx: CallContext, index: int) -> int:
        if own:
            return cx.handles.lift_own(rtype, index)
        handle = cx.handles.handle(rtype, index)
        scope = cx.scope
        if scope is not None:
            handle.lends += 1
            scope.lent.append(handle)
        return handle.rep

    def lower(cx: CallContext, rep: Any) -> int:
        if not isinstance(rep, int):
            raise TypeError(f"expected a resource rep (int), got {type(rep).__name__}")
        if own:
            return cx.handles.lower_own(rtype, rep)
        scope = cx.scope
        if scope is None:
            raise CanonTrap("a borrow lowered outside of a call")
        scope.borrows += 1
        return cx.handles.add(Handle(rtype, rep, False, scope=scope))

    return Conv(4, 4, ("i32",), lambda cx, vals, i: (lift(cx, vals[i] & 0xFFFFFFFF), i + 1),
                lambda cx, v, out: out.append(lower(cx, v)), lambda cx, p: lift(cx, mload(cx, p)),
                lambda cx, v, p: mstore(cx, lower(cx, v), p))


_cache: dict[ValType, Conv] = {}


def compile_type(t: ValType) -> Conv:
    """The converter of `t` (cached). Raises UnsupportedComponent for types stage 1 does not run."""
    conv = _cache.get(t)
    if conv is None:
        conv = _compile(t)
        _cache[t] = conv
    return conv


def _compile(t: ValType) -> Conv:
    if isinstance(t, Prim):
        name = t.name
        if name == "string":
            return _string()
        if name == "bool":
            return _bool()
        if name == "char":
            return _char()
        if name in ("f32", "f64"):
            return _float(name)
        return _int(name)
    if isinstance(t, ListType):
        if t.fixed_length is not None:
            raise UnsupportedComponent("fixed-length lists")
        if t.element == Prim("u8"):
            return _bytes()
        return _list(compile_type(t.element))
    if isinstance(t, RecordType):
        return _record([(name, compile_type(ft)) for name, ft in t.fields], as_tuple=False)
    if isinstance(t, TupleType):
        return _record([(str(i), compile_type(et)) for i, et in enumerate(t.elements)], as_tuple=True)
    if isinstance(t, VariantType):
        return _variant([(name, compile_type(ct) if ct is not None else None) for name, ct in t.cases],
                        _named_shape([name for name, _ in t.cases]))
    if isinstance(t, EnumType):
        return _variant([(label, None) for label in t.labels], _enum_shape(t.labels))
    if isinstance(t, OptionType):
        return _variant([("none", None), ("some", compile_type(t.element))], _OPTION)
    if isinstance(t, ResultType):
        return _variant([("ok", compile_type(t.ok) if t.ok is not None else None),
                         ("error", compile_type(t.err) if t.err is not None else None)], _RESULT)
    if isinstance(t, FlagsType):
        return _flags(t.labels)
    if isinstance(t, OwnType | BorrowType):
        return _handle(t.resource, isinstance(t, OwnType))
    raise UnsupportedComponent(f"values of type {type(t).__name__} (component-model async)")
