"""Records and tuples as one `struct` row: for a record (or tuple) whose fields, nested ones included,
are numbers, bools, chars, enums, flags, strings or lists, the whole in-memory layout (padding too) is
one struct format, so loading it is one unpack and storing it one pack, with per-field work only
where a field needs it (a string or list behind its pointer, a char or enum to check). Lists of such
records read and write their elements in one block. Types holding variants or handles return None
and take the field-by-field path (lift.py, lower_compound.py).

`bulk_list_reader` picks the fastest reader of a list's elements: `array` for numbers, one struct per
element for records of plain integers (`plain_struct`) or rows, else None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.scalars import (
    FLOATS,
    INTS,
    bulk_array,
    canon_nan32,
    canon_nan64,
    canonicalize_floats,
    char_code,
    char_from_code,
    to_float,
    to_int,
)
from tauon.wasm.canon.strings import string_loader, string_storer
from tauon.wasm.canon.types import (
    EnumType,
    FlagsType,
    ListType,
    Prim,
    RecordType,
    StringEncoding,
    TupleType,
    ValType,
)

Decode = Callable[[CallContext, tuple[Any, ...]], Any]
"""(context, the unpacked row) -> the value."""
Encode = Callable[[CallContext, Any, list[Any]], None]
"""(context, value, slots): append the value's struct slots."""
Ranges = Callable[[ValType, StringEncoding], tuple[Callable[..., Any], Callable[..., Any]]]
"""element type -> (range loader (cx, ptr, length), range storer (cx, value) -> (ptr, length))."""

_DISC = {1: "B", 2: "H", 4: "I"}


@dataclass(frozen=True, slots=True)
class RowCodec:
    fmt: struct.Struct
    decode: Decode
    encode: Encode


class _Builder:
    """Walks a type, laying its leaves out as struct format characters at their offsets."""

    def __init__(self, enc: StringEncoding, ranges: Ranges) -> None:
        self.enc = enc
        self.ranges = ranges
        self.parts: list[str] = ["<"]
        self.at = 0
        self.slot = 0

    def place(self, offset: int, chars: str, size: int) -> int:
        if offset > self.at:
            self.parts.append(f"{offset - self.at}x")
        self.parts.append(chars)
        self.at = offset + size
        first = self.slot
        self.slot += len(chars)
        return first

    def build(self, t: ValType, offset: int) -> tuple[Decode, Encode] | None:
        if isinstance(t, Prim):
            return self._prim(t.name, offset)
        if isinstance(t, (EnumType, FlagsType)):
            return self._labels(t, offset)
        if isinstance(t, ListType) and t.fixed_length is None:
            return self._ranged(self.ranges(t.element, self.enc), offset)
        if isinstance(t, RecordType):
            return self._fields(tuple(n for n, _ in t.fields), tuple(ft for _, ft in t.fields), offset, False)
        if isinstance(t, TupleType):
            names = tuple(str(i) for i in range(len(t.elements)))
            return self._fields(names, t.elements, offset, True)
        return None

    def _prim(self, name: str, offset: int) -> tuple[Decode, Encode] | None:
        size = L.elem_size(Prim(name)) if name != "string" else 8  # type: ignore[arg-type]
        if name == "string":
            return self._ranged((string_loader(self.enc), string_storer(self.enc)), offset)
        if name in INTS:
            info = INTS[name]
            i = self.place(offset, info.fmt, size)
            return (lambda cx, row: row[i]), (lambda cx, x, out: out.append(to_int(x, info, name)))
        if name in FLOATS:
            i = self.place(offset, FLOATS[name][0], size)
            canon = canon_nan32 if name == "f32" else canon_nan64
            return (lambda cx, row: canon(row[i])), (lambda cx, x, out: out.append(to_float(x, name)))
        if name == "bool":
            i = self.place(offset, "B", 1)

            def encode_bool(cx: CallContext, x: Any, out: list[Any]) -> None:
                if not isinstance(x, bool):
                    raise CanonTrap(f"expected a bool, got {type(x).__name__}")
                out.append(1 if x else 0)
            return (lambda cx, row: row[i] != 0), encode_bool
        i = self.place(offset, "I", 4)  # char
        return (lambda cx, row: char_from_code(row[i])), (lambda cx, x, out: out.append(char_code(x)))

    def _ranged(self, pair: tuple[Callable[..., Any], Callable[..., Any]],
                offset: int) -> tuple[Decode, Encode]:
        load_range, store_range = pair
        i = self.place(offset, "II", 8)
        return (lambda cx, row: load_range(cx, row[i], row[i + 1])), (
            lambda cx, x, out: out.extend(store_range(cx, x)))

    def _labels(self, t: EnumType | FlagsType, offset: int) -> tuple[Decode, Encode]:
        labels = t.labels
        size = L.elem_size(t)
        i = self.place(offset, _DISC[size], size)
        if isinstance(t, FlagsType):
            bit = {label: 1 << n for n, label in enumerate(labels)}

            def encode_flags(cx: CallContext, x: Any, out: list[Any]) -> None:
                if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
                    raise CanonTrap(f"expected a set of flag names, got {type(x).__name__}")
                bits = 0
                for label in x:
                    if label not in bit:
                        raise CanonTrap(f"unknown flag {label!r:.60}; flags are {', '.join(labels)}")
                    bits |= bit[label]
                out.append(bits)
            return (lambda cx, row: {lb for n, lb in enumerate(labels) if row[i] >> n & 1}), encode_flags
        index = {label: n for n, label in enumerate(labels)}

        def decode_enum(cx: CallContext, row: tuple[Any, ...]) -> str:
            n: int = row[i]
            if n >= len(labels):
                raise CanonTrap(f"enum case index {n} is out of range ({len(labels)} cases)")
            return labels[n]

        def encode_enum(cx: CallContext, x: Any, out: list[Any]) -> None:
            n = index.get(x) if isinstance(x, str) else None
            if n is None:
                raise CanonTrap(f"no enum case {x!r:.60}; cases are {', '.join(labels)}")
            out.append(n)
        return decode_enum, encode_enum

    def _fields(self, names: tuple[str, ...], types: tuple[ValType, ...], offset: int,
                as_tuple: bool) -> tuple[Decode, Encode] | None:
        parts = []
        for ft, field_offset in zip(types, L.field_offsets(types), strict=True):
            built = self.build(ft, offset + field_offset)
            if built is None:
                return None
            parts.append(built)
        decoders = [d for d, _ in parts]
        encoders = [e for _, e in parts]
        return _record_decoder(names, decoders, as_tuple), _record_encoder(names, encoders, as_tuple)


def _record_decoder(names: tuple[str, ...], decoders: list[Decode], as_tuple: bool) -> Decode:
    pairs = list(zip(names, decoders, strict=True))
    label = "tuple element" if as_tuple else "record field"

    def decode(cx: CallContext, row: tuple[Any, ...]) -> Any:
        name = ""
        try:
            if as_tuple:
                return tuple([d(cx, row) for d in decoders])
            out = {}
            for name, d in pairs:
                out[name] = d(cx, row)
            return out
        except CanonTrap as exc:
            raise exc.within(f"{label} {name}" if name else label) from None
    return decode


def _record_encoder(names: tuple[str, ...], encoders: list[Encode], as_tuple: bool) -> Encode:
    from tauon.wasm.canon.lower_compound import field_values

    label = "tuple element" if as_tuple else "record field"
    count = len(names)

    def encode(cx: CallContext, x: Any, out: list[Any]) -> None:
        values = field_values(x, names, as_tuple)
        i = 0
        try:
            for i in range(count):
                encoders[i](cx, values[i], out)
        except CanonTrap as exc:
            raise exc.within(f"{label} {names[i]}") from None
    return encode


@lru_cache(maxsize=2048)
def row_codec(t: ValType, enc: StringEncoding) -> RowCodec | None:
    """The one-struct codec of a record or tuple type, or None if it holds a variant, handle or
    fixed-length list (or is not a record or tuple)."""
    if not isinstance(t, (RecordType, TupleType)):
        return None
    from tauon.wasm.canon.lift import list_range_loader
    from tauon.wasm.canon.lower import list_range_storer

    builder = _Builder(enc, lambda element, e: (list_range_loader(element, e), list_range_storer(element, e)))
    built = builder.build(t, 0)
    if built is None:
        return None
    size = L.elem_size(t)
    if size > builder.at:
        builder.parts.append(f"{size - builder.at}x")
    fmt = struct.Struct("".join(builder.parts))
    assert fmt.size == size
    return RowCodec(fmt, built[0], built[1])


def plain_struct(t: ValType) -> tuple[struct.Struct, tuple[str, ...], bool] | None:
    """For a record or tuple of only integers and bools: one struct format covering its whole layout
    (padding included), its field names, and whether it is a tuple. None for anything else."""
    if isinstance(t, RecordType):
        names, types, as_tuple = tuple(n for n, _ in t.fields), tuple(ft for _, ft in t.fields), False
    elif isinstance(t, TupleType):
        names, types, as_tuple = tuple(str(i) for i in range(len(t.elements))), t.elements, True
    else:
        return None
    if not types or not all(isinstance(ft, Prim) and (ft.name in INTS or ft.name == "bool") for ft in types):
        return None
    parts, at = ["<"], 0
    for ft, offset in zip(types, L.field_offsets(types), strict=True):
        assert isinstance(ft, Prim)
        parts.append(f"{offset - at}x" if offset > at else "")
        parts.append("?" if ft.name == "bool" else INTS[ft.name].fmt)
        at = offset + L.elem_size(ft)
    size = L.elem_size(t)
    parts.append(f"{size - at}x" if size > at else "")
    return struct.Struct("".join(parts)), names, as_tuple


def _row_items(element: ValType, enc: StringEncoding) -> Callable[[CallContext, int, int], Any] | None:
    """Lists of one-struct records (rows.py): one read of the block, one unpack per element."""
    rows = row_codec(element, enc)
    if rows is None:
        return None
    fmt, decode = rows.fmt, rows.decode

    def items(cx: CallContext, ptr: int, n: int) -> list[Any]:
        out: list[Any] = []
        try:
            for row in fmt.iter_unpack(cx.mem().read(ptr, n * fmt.size)):
                out.append(decode(cx, row))
        except CanonTrap as exc:
            raise exc.within(f"list element {len(out)}") from None
        return out
    return items


def bulk_list_reader(element: ValType, enc: StringEncoding) -> Callable[[CallContext, int, int], Any] | None:
    """A reader of a list's elements (context, pointer, length) in bulk: numbers through `array`,
    records through their struct row; None for other elements (read one by one)."""
    if element == Prim("u8"):
        return lambda cx, ptr, n: cx.mem().read(ptr, n)
    if isinstance(element, Prim) and (element.name in INTS or element.name in FLOATS):
        name = element.name
        code = INTS[name].array_code if name in INTS else FLOATS[name][1]
        size = L.elem_size(element)
        if name in FLOATS:
            return lambda cx, ptr, n: canonicalize_floats(
                bulk_array(code, cx.mem().read(ptr, n * size)).tolist(), name)
        return lambda cx, ptr, n: bulk_array(code, cx.mem().read(ptr, n * size)).tolist()
    plain = plain_struct(element)
    if plain is None:
        return _row_items(element, enc)
    fmt, names, as_tuple = plain
    if as_tuple:
        return lambda cx, ptr, n: list(fmt.iter_unpack(cx.mem().read(ptr, n * fmt.size)))
    return lambda cx, ptr, n: [dict(zip(names, row, strict=True))
                               for row in fmt.iter_unpack(cx.mem().read(ptr, n * fmt.size))]
