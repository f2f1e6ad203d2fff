"""The base of the flat converters (codec_flat.py): the per-thread scratch buffer values are built
in, the read-only view of the process's memory values are read through, the struct layouts of the C
API's values, and the converters of scalars, strings and byte lists."""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from typing import Any

from wasmtime.component import _types as wt

from tauon.wasm.component import _capi as c

_FromMemory = ctypes.pythonapi.PyMemoryView_FromMemory
_FromMemory.restype = ctypes.py_object
_FromMemory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
RAM: memoryview = _FromMemory(1, 1 << 62, 0x100)  # PyBUF_READ; offset = address - 1

VAL = c.VAL_SIZE
ENTRY = c.RECORD_ENTRY_SIZE
PAYLOAD = c.VAL_PAYLOAD
assert VAL == 32 and PAYLOAD == 8 and ENTRY == 48 and c.VARIANT_VAL == 16 and c.RESULT_VAL == 8, \
    "the flat layouts below are wasmtime 50.0.1's on a 64-bit host"
BYTES_LIMIT = 64 * 1024
"""Longest `list<u8>` lowered flat (32 bytes of scratch a byte); longer ones go through codec.py."""
SCRATCH_START = 64 * 1024
SCRATCH_MAX = 8 << 20
"""Largest scratch buffer a thread keeps; a value needing more is lowered by codec.py."""
U8 = bytes([c.KIND_U8])

HEAD = struct.Struct("=B7xQQ").pack_into
"""kind, then a (size, data) vector: strings, lists, records, tuples, enums (a name), flags."""
VARIANT = struct.Struct("=B7xQQQ").pack_into
POINTER = struct.Struct("=B7xQ").pack_into
RESULT = struct.Struct("=B7x?7xQ").pack_into
VEC = struct.Struct("=QQ").pack_into
READ_VEC = struct.Struct("=QQ").unpack_from
READ_VARIANT = struct.Struct("=QQQ").unpack_from
READ_PTR = struct.Struct("=Q").unpack_from
READ_RESULT = struct.Struct("=?7xQ").unpack_from


class Full(Exception):
    """The scratch buffer is too small for this value: grow it and start again."""


class TooBig(Exception):
    """The value is not lowered flat (see BYTES_LIMIT)."""


class Scratch:
    """One thread's: one lowering at a time, never outliving it (val_clone copies everything). A
    plain object (threading.local's attribute access costs several times more in the hot loop)."""

    __slots__ = ("_pin", "base", "buf", "size", "top")

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self._pin = (ctypes.c_char * size).from_buffer(self.buf)  # the buffer cannot be resized
        self.base = ctypes.addressof(self._pin)
        self.size = size
        self.top = 0

    def alloc(self, size: int) -> int:
        """An 8-aligned offset of `size` free bytes. Raises Full. The hot converters inline it (a
        method call per value is a tenth of a small row set's lowering)."""
        off = self.top
        end = off + size
        self.top = (end + 7) & ~7
        if end > self.size:
            raise Full
        return off


class PerThread(threading.local):
    scratch: Scratch | None = None


per_thread = PerThread()

FlatLower = Callable[[Scratch, Any, int], None]
"""(scratch, Python value, offset of the 32-byte value slot to fill)."""
FlatLift = Callable[[int], Any]
"""(address of a value) -> Python value."""


class Name:
    """A name (case, field, flag) kept in memory of its own for the trees to point at."""

    def __init__(self, name: str) -> None:
        raw = name.encode()
        self.size = len(raw)
        self._buf = ctypes.create_string_buffer(raw, max(self.size, 1))
        self.address = ctypes.addressof(self._buf)


def read(address: int, size: int) -> memoryview:
    return RAM[address - 1:address - 1 + size]


SCALARS: dict[type, tuple[int, str]] = {
    wt.S8: (c.KIND_S8, "b"), wt.U8: (c.KIND_U8, "B"), wt.S16: (c.KIND_S16, "h"),
    wt.U16: (c.KIND_U16, "H"), wt.S32: (c.KIND_S32, "i"), wt.U32: (c.KIND_U32, "I"),
    wt.S64: (c.KIND_S64, "q"), wt.U64: (c.KIND_U64, "Q"), wt.F32: (c.KIND_F32, "f"),
    wt.F64: (c.KIND_F64, "d"),
}


def scalar(kind: int, code: str) -> tuple[FlatLift, FlatLower]:
    pack = struct.Struct("=B7x" + code).pack_into
    unpack = struct.Struct("=" + code).unpack_from

    def lift(a: int) -> Any:
        return unpack(RAM, a + PAYLOAD - 1)[0]

    def lower(s: Scratch, x: Any, at: int) -> None:
        pack(s.buf, at, kind, x)

    return lift, lower


def boolean() -> tuple[FlatLift, FlatLower]:
    kind = c.KIND_BOOL

    def lift(a: int) -> bool:
        return bool(RAM[a + PAYLOAD - 1])

    def lower(s: Scratch, x: Any, at: int) -> None:
        if not isinstance(x, bool):
            raise TypeError(f"expected bool, got {type(x).__name__}")
        POINTER(s.buf, at, kind, x)

    return lift, lower


def char() -> tuple[FlatLift, FlatLower]:
    lift_u32, lower_u32 = scalar(c.KIND_CHAR, "I")

    def lift(a: int) -> str:
        return chr(lift_u32(a))

    def lower(s: Scratch, x: Any, at: int) -> None:
        lower_u32(s, ord(x), at)

    return lift, lower


def string() -> tuple[FlatLift, FlatLower]:
    kind = c.KIND_STRING

    def lift(a: int) -> str:
        size, data = READ_VEC(RAM, a + PAYLOAD - 1)
        return str(read(data, size), "utf-8") if size else ""

    def lower(s: Scratch, x: Any, at: int) -> None:
        raw = x.encode("utf-8")
        n = len(raw)
        off = s.top
        end = off + n
        s.top = (end + 7) & ~7
        if end > s.size:
            raise Full
        buf = s.buf
        buf[off:end] = raw
        HEAD(buf, at, kind, n, s.base + off)

    return lift, lower


def byte_list() -> tuple[FlatLift, FlatLower]:
    kind = c.KIND_LIST

    def lift(a: int) -> bytes:
        size, data = READ_VEC(RAM, a + PAYLOAD - 1)
        if not size:
            return b""
        start = data - 1 + PAYLOAD
        return bytes(RAM[start:start + size * VAL:VAL])

    def lower(s: Scratch, x: Any, at: int) -> None:
        n = len(x)
        if n > BYTES_LIMIT:
            raise TooBig
        off = s.alloc(n * VAL)
        buf = s.buf
        assert buf is not None
        end = off + n * VAL
        if n:  # an empty extended slice assignment would try to resize the pinned buffer
            buf[off:end:VAL] = U8 * n
            buf[off + PAYLOAD:end:VAL] = x
        HEAD(buf, at, kind, n, s.base + off)

    return lift, lower


