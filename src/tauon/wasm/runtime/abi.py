"""The canonical ABI as far as stage 1 needs it (CanonicalABI.md): per-type converters compiled once,
call adapters per function type, handle tables and linear memory in place.

Written here, not taken from `tauon.wasm.canon` (part A), because that API was not committed when this
runtime needed it; it keeps the same names (`CallContext`, `HandleTable`, `CanonTrap`) so the switch
is local to this module. UTF-8 string encoding only (the plan refuses the others).

Python shapes are those of the wasmtime path (`wasm/component/codec.py`), so host functions serve both
runtimes unchanged: records lift to dicts (and lower from tuples, dicts or attributes), variants are
`(case, payload)`, results `("ok", v)` / `("err", e)`, options None or the value, enums str, flags a
set, `list<u8>` bytes, host resources their rep.

"lift" reads a value from the guest (flat values or memory); "lower" writes one into it.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from tauon.wasm.canon.types import (
    ResourceType,
)


class CanonTrap(Exception):
    """The guest broke a canonical ABI rule (or the host gave a value that does not fit the type)."""


# ---- memory -------------------------------------------------------------------------------------------

_data = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
    ("wasmtime_memory_data", ffi.dll))
_data_size = ctypes.PYFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
    ("wasmtime_memory_data_size", ffi.dll))


class StoreMemory:
    """A core memory of one Store, viewed in place; `refresh` after guest code ran (it may grow)."""

    def __init__(self, ctx: int, memory: wasmtime.Memory) -> None:
        self._ctx = ctx
        self._ref = ctypes.addressof(memory._memory)
        self._memory = memory
        self.base = 0
        self.size = -1
        self.view = memoryview(b"")
        self.refresh()

    def refresh(self) -> None:
        size = _data_size(self._ctx, self._ref)
        if size != self.size:
            self.base = _data(self._ctx, self._ref) or 0
            self.size = size
            self.view = memoryview((ctypes.c_ubyte * size).from_address(self.base)).cast("B") if size else \
                memoryview(bytearray())

    def check(self, ptr: int, length: int, what: str) -> None:
        if ptr + length > self.size:
            raise CanonTrap(f"{what} at 0x{ptr:x} (+{length}) is outside linear memory ({self.size} bytes)")

    def read(self, ptr: int, length: int, what: str = "bytes") -> bytes:
        self.check(ptr, length, what)
        return ctypes.string_at(self.base + ptr, length)

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.check(ptr, view.nbytes, "bytes")
        self.view[ptr:ptr + view.nbytes] = view


# ---- handles ------------------------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class Handle:
    rtype: ResourceType
    rep: int
    own: bool
    lends: int = 0
    scope: BorrowScope | None = None


class BorrowScope:
    """Borrows of one call: handles the guest lent to a host function (returned when it ends), and
    borrow handles the host gave a guest export (which must all be dropped before it returns)."""

    __slots__ = ("borrows", "lent")

    def __init__(self) -> None:
        self.lent: list[Handle] = []
        self.borrows = 0

    def end(self) -> None:
        for handle in self.lent:
            handle.lends -= 1
        self.lent.clear()
        if self.borrows:
            raise CanonTrap(f"{self.borrows} borrow handle(s) still remain at the end of the call")


class HandleTable:
    """One component instance's resource handles; index 0 is never used, freed indices are reused."""

    def __init__(self) -> None:
        self._entries: list[Handle | None] = [None]
        self._free: list[int] = []

    def add(self, handle: Handle) -> int:
        if self._free:
            index = self._free.pop()
            self._entries[index] = handle
            return index
        self._entries.append(handle)
        return len(self._entries) - 1

    def handle(self, rtype: ResourceType, index: int) -> Handle:
        entries = self._entries
        if not 0 < index < len(entries) or (entry := entries[index]) is None:
            raise CanonTrap(f"handle index {index} is not in use")
        if entry.rtype is not rtype:
            raise CanonTrap(f"handle index {index} is a handle of {entry.rtype.name!r}, expected "
                            f"{rtype.name!r}")
        return entry

    def _remove(self, index: int) -> None:
        self._entries[index] = None
        self._free.append(index)

    def lower_own(self, rtype: ResourceType, rep: int) -> int:
        return self.add(Handle(rtype, rep, True))

    def lift_own(self, rtype: ResourceType, index: int) -> int:
        handle = self.handle(rtype, index)
        if not handle.own:
            raise CanonTrap(f"handle index {index} is a borrow, passed where an own is expected")
        if handle.lends:
            raise CanonTrap(f"handle index {index} is lent to a call in progress")
        self._remove(index)
        return handle.rep

    def drop(self, rtype: ResourceType, index: int) -> Handle:
        """`resource.drop`: remove the handle; the caller runs the destructor of an own one."""
        handle = self.handle(rtype, index)
        if handle.lends:
            raise CanonTrap(f"handle index {index} is dropped while lent to a call in progress")
        self._remove(index)
        if not handle.own and handle.scope is not None:
            handle.scope.borrows -= 1
        return handle

    def __len__(self) -> int:
        return len(self._entries) - 1 - len(self._free)


Realloc = Callable[[int, int, int, int], int]


class CallContext:
    __slots__ = ("handles", "memory", "realloc", "scope")

    def __init__(self, memory: StoreMemory | None, realloc: Realloc | None, handles: HandleTable,
                 scope: BorrowScope | None = None) -> None:
        self.memory = memory
        self.realloc = realloc
        self.handles = handles
        self.scope = scope

    def mem(self) -> StoreMemory:
        if self.memory is None:
            raise CanonTrap("this value needs linear memory, but the canonical options name none")
        return self.memory

    def allocate(self, align: int, size: int, what: str) -> int:
        if self.realloc is None:
            raise CanonTrap(f"lowering {what} needs realloc, but the canonical options name none")
        ptr = self.realloc(0, 0, align, size) & 0xFFFFFFFF
        memory = self.mem()
        memory.refresh()
        if ptr % align:
            raise CanonTrap(f"realloc returned 0x{ptr:x} for {what}, not aligned to {align}")
        memory.check(ptr, size, f"realloc result for {what}")
        return ptr


# ---- converters ---------------------------------------------------------------------------------------

LiftFlat = Callable[[CallContext, list[Any], int], tuple[Any, int]]
LowerFlat = Callable[[CallContext, Any, list[Any]], None]
Load = Callable[[CallContext, int], Any]
Store = Callable[[CallContext, Any, int], None]


@dataclass(frozen=True, slots=True)
class Conv:
    size: int
    align: int
    flat: tuple[str, ...]
    lift_flat: LiftFlat
    lower_flat: LowerFlat
    load: Load
    store: Store


def align_to(ptr: int, align: int) -> int:
    return -(-ptr // align) * align


_INTS = {"u8": ("B", 0, 8), "s8": ("b", 1, 8), "u16": ("H", 0, 16), "s16": ("h", 1, 16),
         "u32": ("I", 0, 32), "s32": ("i", 1, 32), "u64": ("Q", 0, 64), "s64": ("q", 1, 64)}


def _memops(fmt: str) -> tuple[Load, Store, int]:
    packer = struct.Struct("<" + fmt)
    unpack, pack = packer.unpack_from, packer.pack_into
    size = packer.size

    def load(cx: CallContext, ptr: int) -> Any:
        memory = cx.mem()
        memory.check(ptr, size, "a value")
        return unpack(memory.view, ptr)[0]

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        memory = cx.mem()
        memory.check(ptr, size, "a value")
        pack(memory.view, ptr, v)

    return load, store, size


def _int(name: str) -> Conv:
    fmt, signed, bits = _INTS[name]
    load, store, size = _memops(fmt)
    core = "i64" if bits == 64 else "i32"
    core_mask = (1 << (64 if bits == 64 else 32)) - 1
    mask, half = (1 << bits) - 1, 1 << (bits - 1)

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        v = vals[i] & mask
        return (v - (1 << bits) if signed and v >= half else v), i + 1

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(int(v) & core_mask)

    return Conv(size, size, (core,), lift_flat, lower_flat, load, store)


def _float(name: str) -> Conv:
    load, store, size = _memops("f" if name == "f32" else "d")

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        return float(vals[i]), i + 1

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(float(v))

    return Conv(size, size, (name,), lift_flat, lower_flat, load, store)


def _bool() -> Conv:
    load8, store8, _ = _memops("B")

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        return bool(vals[i]), i + 1

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(1 if v else 0)

    return Conv(1, 1, ("i32",), lift_flat, lower_flat, lambda cx, p: bool(load8(cx, p)),
                lambda cx, v, p: store8(cx, 1 if v else 0, p))


def _char_of(code: int) -> str:
    if code >= 0x110000 or 0xD800 <= code <= 0xDFFF:
        raise CanonTrap(f"0x{code:x} is not a Unicode scalar value (char)")
    return chr(code)


def _char() -> Conv:
    load32, store32, _ = _memops("I")

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        return _char_of(vals[i] & 0xFFFFFFFF), i + 1

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(ord(v))

    return Conv(4, 4, ("i32",), lift_flat, lower_flat, lambda cx, p: _char_of(load32(cx, p)),
                lambda cx, v, p: store32(cx, ord(v), p))


_PAIR = struct.Struct("<II")


def _pair_load(cx: CallContext, ptr: int) -> tuple[int, int]:
    memory = cx.mem()
    memory.check(ptr, 8, "a pointer and length")
    a, b = _PAIR.unpack_from(memory.view, ptr)
    return a, b


def _pair_store(cx: CallContext, ptr: int, a: int, b: int) -> None:
    memory = cx.mem()
    memory.check(ptr, 8, "a pointer and length")
    _PAIR.pack_into(memory.view, ptr, a, b)


def _buffer(lift: Callable[[CallContext, int, int], Any],
            lower: Callable[[CallContext, Any], tuple[int, int]]) -> Conv:
    """A (pointer, length) value: strings and lists."""

    def lift_flat(cx: CallContext, vals: list[Any], i: int) -> tuple[Any, int]:
        return lift(cx, vals[i] & 0xFFFFFFFF, vals[i + 1] & 0xFFFFFFFF), i + 2

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.extend(lower(cx, v))

    def load(cx: CallContext, ptr: int) -> Any:
        return lift(cx, *_pair_load(cx, ptr))

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        _pair_store(cx, ptr, *lower(cx, v))

    return Conv(8, 4, ("i32", "i32"), lift_flat, lower_flat, load, store)


def _string() -> Conv:
    def lift(cx: CallContext, ptr: int, length: int) -> str:
        data = cx.mem().read(ptr, length, "a string")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CanonTrap(f"a string is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    def lower(cx: CallContext, v: Any) -> tuple[int, int]:
        data = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        ptr = cx.allocate(1, len(data), "a string")
        cx.mem().write(ptr, data)
        return ptr, len(data)

    return _buffer(lift, lower)


def _bytes() -> Conv:
    def lift(cx: CallContext, ptr: int, length: int) -> bytes:
        return cx.mem().read(ptr, length, "a byte list")

    def lower(cx: CallContext, v: Any) -> tuple[int, int]:
        n = memoryview(v).nbytes
        ptr = cx.allocate(1, n, "a byte list")
        cx.mem().write(ptr, v)
        return ptr, n

    return _buffer(lift, lower)


def _list(e: Conv) -> Conv:
    esize, ealign, eload, estore = e.size, e.align, e.load, e.store

    def lift(cx: CallContext, ptr: int, length: int) -> list[Any]:
        if ptr % ealign:
            raise CanonTrap(f"a list at 0x{ptr:x} is not aligned to {ealign}")
        cx.mem().check(ptr, length * esize, "a list")
        return [eload(cx, ptr + i * esize) for i in range(length)]

    def lower(cx: CallContext, v: Any) -> tuple[int, int]:
        items = list(v)
        ptr = cx.allocate(ealign, len(items) * esize, "a list")
        for i, item in enumerate(items):
            estore(cx, item, ptr + i * esize)
        return ptr, len(items)

    return _buffer(lift, lower)
