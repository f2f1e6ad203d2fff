"""Lowering: Python values (the shapes codec.py documents) into linear memory (`store`) and into flat
core values (`lower_flat`), allocating with the component's realloc where the type needs memory.

`compile_lowerer(type, encoding)` builds both converters once per type. Fast paths: `list<u8>` from
bytes, bytearray or memoryview is one allocation and one copy; lists of other numbers are packed by
`array` in bulk. A host value of the wrong shape raises CanonTrap naming the path to it.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.lower_compound import compile_compound
from tauon.wasm.canon.rows import RowCodec, row_codec
from tauon.wasm.canon.scalars import (
    FLOATS,
    INTS,
    LITTLE_ENDIAN,
    M32,
    M64,
    char_code,
    to_float,
    to_int,
)
from tauon.wasm.canon.strings import string_storer
from tauon.wasm.canon.types import (
    ErrorContextType,
    FutureType,
    ListType,
    Prim,
    StreamType,
    StringEncoding,
    ValType,
)

CoreValue = int | float
Store = Callable[[CallContext, Any, int], None]
"""(context, value, pointer): write the value at the (aligned) pointer."""
LowerFlat = Callable[[CallContext, Any, list[CoreValue]], None]
"""(context, value, out): append the value's flat core values to `out`."""

_PAIR = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class Lowerer:
    type: ValType
    store: Store
    lower_flat: LowerFlat
    size: int
    align: int


@lru_cache(maxsize=2048)
def compile_lowerer(t: ValType, encoding: StringEncoding = "utf8") -> Lowerer:
    """The lowering converters of `t` for canonical options with string `encoding`.
    Raises CanonUnsupported for streams, futures and error-context (not supported yet)."""
    store, flat = _compile(t, encoding)
    return Lowerer(t, store, flat, L.elem_size(t), L.alignment(t))


def _compile(t: ValType, enc: StringEncoding) -> tuple[Store, LowerFlat]:
    if isinstance(t, Prim):
        return _prim(t.name, enc)
    if isinstance(t, ListType):
        return _list(t, enc)
    if isinstance(t, (StreamType, FutureType)):
        return _async_end(t)
    if isinstance(t, ErrorContextType):
        raise CanonUnsupported(f"{type(t).__name__} values (component-model async) are not supported yet")
    return compile_compound(t, enc, compile_lowerer)


def _async_end(t: StreamType | FutureType) -> tuple[Store, LowerFlat]:
    """A stream or future the host gives the guest (a host reader): a new readable end in its table
    (the component runtime's `streams` module owns the ends; imported late, as it builds on this
    layer)."""
    from tauon.wasm.runtime.streams import lower_end

    def store(cx: CallContext, value: Any, ptr: int) -> None:
        cx.mem().store_u32(ptr, lower_end(cx.table(), t, value))

    def flat(cx: CallContext, value: Any, out: list[CoreValue]) -> None:
        out.append(lower_end(cx.table(), t, value))
    return store, flat


def _prim(name: str, enc: StringEncoding) -> tuple[Store, LowerFlat]:
    if name in INTS:
        info = INTS[name]
        fmt = struct.Struct("<" + info.fmt)
        mask = (1 << info.bits) - 1 if info.bits > 32 else M32

        def store_int(cx: CallContext, x: Any, ptr: int) -> None:
            cx.mem().pack(fmt, ptr, to_int(x, info, name))

        def flat_int(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
            out.append(to_int(x, info, name) & mask)
        return store_int, flat_int
    if name in FLOATS:
        ffmt = struct.Struct("<" + FLOATS[name][0])

        def store_float(cx: CallContext, x: Any, ptr: int) -> None:
            cx.mem().pack(ffmt, ptr, to_float(x, name))

        def flat_float(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
            out.append(to_float(x, name))
        return store_float, flat_float
    if name == "bool":
        return _bool()
    if name == "char":
        return _char()
    return _string(enc)


_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")


def _bool_value(x: Any) -> int:
    if not isinstance(x, bool):
        raise CanonTrap(f"expected a bool, got {type(x).__name__}")
    return 1 if x else 0


def _bool() -> tuple[Store, LowerFlat]:
    def store(cx: CallContext, x: Any, ptr: int) -> None:
        cx.mem().pack(_U8, ptr, _bool_value(x))

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.append(_bool_value(x))
    return store, flat


def _char() -> tuple[Store, LowerFlat]:
    def store(cx: CallContext, x: Any, ptr: int) -> None:
        cx.mem().pack(_U32, ptr, char_code(x))

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.append(char_code(x))
    return store, flat


def _string(enc: StringEncoding) -> tuple[Store, LowerFlat]:
    store_range = string_storer(enc)

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        begin, units = store_range(cx, x)
        cx.mem().pack(_PAIR, ptr, begin, units)

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.extend(store_range(cx, x))
    return store, flat


def list_range_storer(element: ValType, enc: StringEncoding) -> Callable[[CallContext, Any], tuple[int, int]]:
    """(context, value) -> (pointer, length) of the list freshly allocated and written in memory."""
    bulk = _bulk_bytes(element)
    if bulk is not None:
        align = L.alignment(element)

        def store_bulk(cx: CallContext, x: Any) -> tuple[int, int]:
            data, length = bulk(x)
            ptr = cx.allocate(align, len(data), "a list")
            cx.mem().write(ptr, data)
            return ptr, length
        return store_bulk
    rows = row_codec(element, enc)
    if rows is not None:
        return _row_storer(rows, L.alignment(element))
    return _element_storer(element, enc)


def _list_items(x: Any) -> list[Any] | tuple[Any, ...]:
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__iter__"):
        raise CanonTrap(f"expected a list, got {type(x).__name__}")
    return x if isinstance(x, (list, tuple)) else list(x)


def _row_storer(rows: RowCodec, align: int) -> Callable[[CallContext, Any], tuple[int, int]]:
    """Lists of one-struct records: the elements are packed in order (their strings and lists allocated
    as they go, as the specification orders it) and the block written at once."""
    fmt, encode = rows.fmt, rows.encode

    def store_rows(cx: CallContext, x: Any) -> tuple[int, int]:
        items = _list_items(x)
        n = len(items)
        if n * fmt.size > L.MAX_LIST_BYTE_LENGTH:
            raise CanonTrap(f"a list of {n} elements is longer than the canonical ABI allows")
        ptr = cx.allocate(align, n * fmt.size, "a list")
        pack = fmt.pack
        parts: list[bytes] = []
        try:
            for item in items:
                slots: list[Any] = []
                encode(cx, item, slots)
                parts.append(pack(*slots))
        except CanonTrap as exc:
            raise exc.within(f"list element {len(parts)}") from None
        cx.mem().write(ptr, b"".join(parts))
        return ptr, n
    return store_rows


def _byte_data(x: Any) -> tuple[bytes | bytearray | memoryview, int]:
    if isinstance(x, (bytes, bytearray)):
        return x, len(x)
    if isinstance(x, memoryview):
        if not x.c_contiguous:  # a strided view: gather it once
            data = x.tobytes()
            return data, len(data)
        view = x.cast("B") if x.format != "B" or x.ndim != 1 else x
        return view, view.nbytes
    try:
        data = bytes(x)
    except (TypeError, ValueError) as exc:
        raise CanonTrap(f"expected bytes for a list<u8>, got {type(x).__name__} ({exc})") from None
    return data, len(data)


def _bool_bytes(x: Any) -> tuple[bytes, int]:
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        raise CanonTrap(f"expected a list of bool, got {type(x).__name__}")
    items = x if isinstance(x, list) else list(x)
    if not all(isinstance(v, bool) for v in items):
        raise CanonTrap("expected a list of bool: an element is not a bool")
    return bytes(items), len(items)


def _bulk_bytes(element: ValType) -> Callable[[Any], tuple[bytes | bytearray | memoryview, int]] | None:
    """The packed bytes (and element count) of a list of numbers; None for other elements."""
    if element == Prim("u8"):
        return _byte_data
    if element == Prim("bool"):
        return _bool_bytes
    if not isinstance(element, Prim) or (element.name not in INTS and element.name not in FLOATS):
        return None
    name = element.name
    code = INTS[name].array_code if name in INTS else FLOATS[name][1]

    def pack(x: Any) -> tuple[bytes, int]:
        if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
            raise CanonTrap(f"expected a list of {name}, got {type(x).__name__}")
        items = x if isinstance(x, list) else list(x)
        if any(isinstance(v, bool) for v in items) or (
                name in INTS and not all(isinstance(v, int) for v in items)):
            raise CanonTrap(f"expected a list of {name}: an element is not an int")
        try:
            packed = array(code, items)
        except (OverflowError, TypeError) as exc:
            raise CanonTrap(f"a list<{name}> element is out of range or not a number ({exc})") from None
        if not LITTLE_ENDIAN:
            packed.byteswap()
        return packed.tobytes(), len(packed)
    return pack


def _element_storer(element: ValType, enc: StringEncoding) -> Callable[[CallContext, Any], tuple[int, int]]:
    estore = compile_lowerer(element, enc).store
    size, align = L.elem_size(element), L.alignment(element)

    def store_items(cx: CallContext, x: Any) -> tuple[int, int]:
        items = _list_items(x)
        n = len(items)
        if n * size > L.MAX_LIST_BYTE_LENGTH:
            raise CanonTrap(f"a list of {n} elements is longer than the canonical ABI allows")
        ptr = cx.allocate(align, n * size, "a list")
        i = 0
        try:
            for i, item in enumerate(items):
                estore(cx, item, ptr + i * size)
        except CanonTrap as exc:
            raise exc.within(f"list element {i}") from None
        return ptr, n
    return store_items


def _list(t: ListType, enc: StringEncoding) -> tuple[Store, LowerFlat]:
    if t.fixed_length is not None:
        return _fixed_list(t.element, t.fixed_length, enc)
    store_range = list_range_storer(t.element, enc)

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        begin, length = store_range(cx, x)
        cx.mem().pack(_PAIR, ptr, begin, length)

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        out.extend(store_range(cx, x))
    return store, flat


def _fixed_list(element: ValType, length: int, enc: StringEncoding) -> tuple[Store, LowerFlat]:
    inner = compile_lowerer(element, enc)
    estore, eflat, size = inner.store, inner.lower_flat, inner.size

    def items(x: Any) -> list[Any]:
        if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__iter__"):
            raise CanonTrap(f"expected a list of {length}, got {type(x).__name__}")
        values = list(x)
        if len(values) != length:
            raise CanonTrap(f"expected a list of exactly {length} elements, got {len(values)}")
        return values

    def store(cx: CallContext, x: Any, ptr: int) -> None:
        for i, item in enumerate(items(x)):
            estore(cx, item, ptr + i * size)

    def flat(cx: CallContext, x: Any, out: list[CoreValue]) -> None:
        for item in items(x):
            eflat(cx, item, out)
    return store, flat


__all__ = ["M64", "CoreValue", "LowerFlat", "Lowerer", "Store", "compile_lowerer", "list_range_storer"]
