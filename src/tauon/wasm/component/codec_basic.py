"""The base of the component value converters (codec.py): the `Codec` pair, result helpers, and
the converters of scalars, strings and byte lists (in bulk)."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmtime.component import (
    ResourceType,
)

from tauon.wasm.component import _capi as c

Lift = Callable[[int, Any], Any]
"""(store context address, C value) -> Python value."""
Lower = Callable[[int, Any, Any], None]
"""(store context address, Python value, C value to fill)."""
ResourceIds = Callable[[ResourceType], int | None]
"""Maps a resource type seen in a signature to tauon's host resource id (None: not a host resource)."""


class UnsupportedType(Exception):
    """A type this binding cannot convert (component-model async values, error-context, ...)."""


class ResourceError(Exception):
    """A resource handle could not be converted (e.g. a guest resource where a host one was expected)."""


def ok(value: Any = None) -> tuple[str, Any]:
    return ("ok", value)


def err(value: Any = None) -> tuple[str, Any]:
    return ("err", value)


@dataclass(frozen=True, slots=True)
class Codec:
    lift: Lift
    lower: Lower


_PyMemoryView_FromMemory = ctypes.pythonapi.PyMemoryView_FromMemory
_PyMemoryView_FromMemory.restype = ctypes.py_object
_PyMemoryView_FromMemory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PyBUF_WRITE = 0x200
VOIDP = ctypes.c_void_p
_U8_KIND = bytes([c.KIND_U8])


def raw_pointer(struct: Any, offset: int = 0) -> int:
    """The pointer stored at `offset` of a ctypes structure, as an int (0 for NULL)."""
    return VOIDP.from_address(ctypes.addressof(struct) + offset).value or 0


def scalar(kind: int, field: str) -> Codec:
    def lift(ctx: int, v: Any) -> Any:
        return getattr(v.of, field)

    def lower(ctx: int, x: Any, v: Any) -> None:
        setattr(v.of, field, x)
        v.kind = kind

    return Codec(lift, lower)


def boolean() -> Codec:
    def lift(ctx: int, v: Any) -> bool:
        return bool(v.of.boolean)

    def lower(ctx: int, x: Any, v: Any) -> None:
        if not isinstance(x, bool):
            raise TypeError(f"expected bool, got {type(x).__name__}")
        v.of.boolean = x
        v.kind = c.KIND_BOOL

    return Codec(lift, lower)


def char() -> Codec:
    def lift(ctx: int, v: Any) -> str:
        return chr(v.of.character)

    def lower(ctx: int, x: Any, v: Any) -> None:
        v.of.character = ord(x)
        v.kind = c.KIND_CHAR

    return Codec(lift, lower)


def string() -> Codec:
    payload = c.VAL_PAYLOAD
    byte_vec_new = c.byte_vec_new

    def lift(ctx: int, v: Any) -> str:
        s = v.of.string
        return ctypes.string_at(s.data, s.size).decode("utf-8") if s.size else ""

    def lower(ctx: int, x: Any, v: Any) -> None:
        raw = x.encode("utf-8")
        byte_vec_new(ctypes.addressof(v) + payload, len(raw), raw)
        v.kind = c.KIND_STRING

    return Codec(lift, lower)


def latin1_string() -> Codec:
    """A `string` standing for a `list<u8>` (rewriting/reads.py, routing.py): latin1
    bytes on the guest's side, UTF-8 from wasmtime; bytes again here (a plain copy when ASCII)."""
    def lift(ctx: int, v: Any) -> bytes:
        s = v.of.string
        if not s.size:
            return b""
        raw = ctypes.string_at(s.data, s.size)
        return raw if raw.isascii() else raw.decode("utf-8").encode("latin-1")

    def lower(ctx: int, x: Any, v: Any) -> None:
        data = bytes(x)
        c.set_name(v.of.string, data if data.isascii() else data.decode("latin-1").encode("utf-8"))
        v.kind = c.KIND_STRING

    return Codec(lift, lower)


SCRATCH_LIMIT = 256 * 1024
"""Largest `list<u8>` lowered through the per-thread scratch array; longer ones take the slower path."""


# Per thread, not per request: its contents never outlive one lowering (vallist_new copies them), it is
# kept warm across the requests a guest thread runs, and it cannot be shared (ctypes releases the GIL
# during the copy). Lowerings run inside the C trampolines (host.py), which carry no request data.
class _Scratch(threading.local):
    """A per-thread array of u8 values with the kind bytes already written: lowering a byte string is
    then one strided copy plus one C-side copy, with no page faults from fresh 32-byte-per-byte memory."""

    buf: bytearray | None = None
    address = 0

    def get(self, size: int) -> tuple[bytearray, int]:
        if self.buf is None or len(self.buf) < size * c.VAL_SIZE:
            count = max(size, 4096)
            buf = bytearray(count * c.VAL_SIZE)
            buf[0::c.VAL_SIZE] = _U8_KIND * count
            self.buf = buf
            self.address = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
        return self.buf, self.address


_scratch = _Scratch()


def byte_list() -> Codec:
    """`list<u8>`: strided bulk copies instead of a Python object per byte."""
    stride = c.VAL_SIZE
    payload = c.VAL_PAYLOAD
    data_offset = ctypes.sizeof(ctypes.c_size_t)

    def lift(ctx: int, v: Any) -> bytes:
        size = v.of.list.size
        if size == 0:
            return b""
        return ctypes.string_at(raw_pointer(v.of.list, data_offset), size * stride)[payload::stride]

    def lower(ctx: int, x: Any, v: Any) -> None:
        size = len(x)
        lst = v.of.list
        if size <= SCRATCH_LIMIT:
            buf, address = _scratch.get(size)
            buf[payload:size * stride:stride] = x
            c.vallist_new(ctypes.addressof(lst), size, address)
        else:
            c.vallist_new_uninit(ctypes.addressof(lst), size)
            view = _PyMemoryView_FromMemory(raw_pointer(lst, data_offset), size * stride, _PyBUF_WRITE)
            view[0::stride] = _U8_KIND * size
            view[payload::stride] = x
        v.kind = c.KIND_LIST

    return Codec(lift, lower)


def fill_rest(data: Any, start: int, end: int) -> None:
    """Make never-written slots of a fresh value array plain bools, so freeing it is safe."""
    for i in range(start, end):
        data[i].kind = c.KIND_BOOL


