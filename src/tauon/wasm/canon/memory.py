"""Linear memory as the canonical ABI sees it: bounds-checked reads and writes of byte ranges and of
little-endian packed values (`struct.Struct`), trapping (CanonTrap) outside the memory.

Two implementations share the access code, which works on a writable memoryview of the whole memory:
`BytesMemory` over a `bytearray` (tests, benchmarks) and `WasmtimeMemory` over a `wasmtime.Memory`,
viewed through ctypes at its `data_ptr`/`data_len`. Byte ranges move with one `ctypes.memmove` /
`ctypes.string_at` (or one slice copy), never a value per byte.

A memory may grow (and, with some wasmtime configurations, move) whenever guest code runs: the
guest's own code or a `realloc` call. `refresh()` re-fetches base and length; `CallContext` calls it
after every realloc, and the call adapters (calls.py) at the start of every lift or lower, so a
stale view is never used.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Protocol, TypeAlias

import wasmtime
from wasmtime import _bindings, _ffi

from tauon.wasm.canon.errors import CanonTrap

Buffer: TypeAlias = bytes | bytearray | memoryview


class GuestMemory(Protocol):
    """What lifting and lowering need from a linear memory. All methods trap outside the memory."""

    def size(self) -> int:
        """The current length in bytes."""
        ...

    def refresh(self) -> None:
        """Re-read the memory's base and length (after guest code ran, e.g. a realloc call)."""
        ...

    def check(self, ptr: int, length: int, what: str) -> None:
        """Trap unless [ptr, ptr+length) lies inside the memory; `what` names the range in the trap."""
        ...

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of [ptr, ptr+length)."""
        ...

    def write(self, ptr: int, data: Buffer) -> None:
        """Copy `data` (bytes, bytearray, memoryview) to ptr."""
        ...

    def unpack(self, fmt: struct.Struct, ptr: int) -> tuple[Any, ...]:
        """`fmt.unpack` of the bytes at ptr."""
        ...

    def pack(self, fmt: struct.Struct, ptr: int, *values: Any) -> None:
        """`fmt.pack` the values into the bytes at ptr."""
        ...

    def load_u32(self, ptr: int) -> int:
        ...

    def store_u32(self, ptr: int, value: int) -> None:
        ...

    def load_int(self, ptr: int, size: int, signed: bool = False) -> int:
        """A little-endian integer of `size` bytes (1, 2, 4 or 8)."""
        ...

    def store_int(self, ptr: int, size: int, value: int, signed: bool = False) -> None:
        ...

    def load_float(self, ptr: int, size: int) -> float:
        """A little-endian f32 (size 4) or f64 (size 8)."""
        ...

    def store_float(self, ptr: int, size: int, value: float) -> None:
        ...


_U32 = struct.Struct("<I")
_INT_FORMATS = {(size, signed): struct.Struct("<" + (code.lower() if signed else code))
                for size, code in ((1, "B"), (2, "H"), (4, "I"), (8, "Q")) for signed in (False, True)}
_FLOAT_FORMATS = {4: struct.Struct("<f"), 8: struct.Struct("<d")}


def outside(ptr: int, length: int, size: int, what: str = "address") -> CanonTrap:
    return CanonTrap(f"{what} 0x{ptr:x} + {length} is outside linear memory ({size} bytes)")


class _ViewMemory:
    """The access code over `self._view` (a writable byte memoryview) and `self._len`."""

    _view: memoryview
    _len: int

    def size(self) -> int:
        return self._len

    def check(self, ptr: int, length: int, what: str) -> None:
        if ptr < 0 or length < 0 or ptr + length > self._len:
            raise outside(ptr, length, self._len, what)

    def read(self, ptr: int, length: int) -> bytes:
        if ptr < 0 or length < 0 or ptr + length > self._len:
            raise outside(ptr, length, self._len)
        return self._view[ptr:ptr + length].tobytes()

    def write(self, ptr: int, data: Buffer) -> None:
        source = memoryview(data).cast("B")
        length = source.nbytes
        if ptr < 0 or ptr + length > self._len:
            raise outside(ptr, length, self._len)
        self._view[ptr:ptr + length] = source

    def unpack(self, fmt: struct.Struct, ptr: int) -> tuple[Any, ...]:
        if ptr < 0 or ptr + fmt.size > self._len:
            raise outside(ptr, fmt.size, self._len)
        return fmt.unpack_from(self._view, ptr)

    def pack(self, fmt: struct.Struct, ptr: int, *values: Any) -> None:
        if ptr < 0 or ptr + fmt.size > self._len:
            raise outside(ptr, fmt.size, self._len)
        fmt.pack_into(self._view, ptr, *values)

    def load_u32(self, ptr: int) -> int:
        if ptr < 0 or ptr + 4 > self._len:
            raise outside(ptr, 4, self._len)
        value: int = _U32.unpack_from(self._view, ptr)[0]
        return value

    def store_u32(self, ptr: int, value: int) -> None:
        if ptr < 0 or ptr + 4 > self._len:
            raise outside(ptr, 4, self._len)
        _U32.pack_into(self._view, ptr, value)

    def load_int(self, ptr: int, size: int, signed: bool = False) -> int:
        value: int = self.unpack(_INT_FORMATS[size, signed], ptr)[0]
        return value

    def store_int(self, ptr: int, size: int, value: int, signed: bool = False) -> None:
        self.pack(_INT_FORMATS[size, signed], ptr, value)

    def load_float(self, ptr: int, size: int) -> float:
        value: float = self.unpack(_FLOAT_FORMATS[size], ptr)[0]
        return value

    def store_float(self, ptr: int, size: int, value: float) -> None:
        self.pack(_FLOAT_FORMATS[size], ptr, value)


class BytesMemory(_ViewMemory):
    """A linear memory held in a Python bytearray (tests and benchmarks)."""

    def __init__(self, size_or_data: int | bytes | bytearray = 65536) -> None:
        self.data = bytearray(size_or_data)
        self._view = memoryview(self.data)
        self._len = len(self.data)

    def grow(self, extra: int) -> None:
        """Append `extra` zero bytes (as memory.grow would), re-creating the view."""
        self._view.release()  # a bytearray with a live view cannot be resized
        self.data.extend(bytes(extra))
        self._view = memoryview(self.data)
        self._len = len(self.data)

    def refresh(self) -> None:
        pass  # only grow() changes the size, and it renews the view itself


_PyBUF_WRITE = 0x200
_from_memory = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)(
    ("PyMemoryView_FromMemory", ctypes.pythonapi))
"""A writable memoryview of `length` bytes at an address. Not `(c_ubyte * length).from_address(...)`:
that makes a ctypes array type per distinct length, each a reference cycle left to the collector."""


def _memory_view(base: int, length: int) -> memoryview:
    view: memoryview = _from_memory(base, length, _PyBUF_WRITE)
    return view


class WasmtimeMemory(_ViewMemory):
    """A wasmtime linear memory, accessed in place: a memoryview of the bytes at its data pointer.
    `refresh()` is one C call when the memory has not grown (wasmtime moves a memory only to grow it)."""

    def __init__(self, memory: wasmtime.Memory, store: wasmtime.Store) -> None:
        self._store = store  # keeps the context alive
        self._context = store._context()
        self._ref = ctypes.byref(memory._memory)
        self._memory = memory
        self._base = 0
        self._len = -1
        self._view = memoryview(b"")
        self.refresh()

    def refresh(self) -> None:
        length: int = _DATA_SIZE(self._context, self._ref)
        if length == self._len:
            return
        base: int = _DATA(self._context, self._ref) or 0
        self._base, self._len = base, length
        if length == 0:
            self._view = memoryview(bytearray())
            return
        self._view = _memory_view(base, length)

    def read(self, ptr: int, length: int) -> bytes:
        if ptr < 0 or length < 0 or ptr + length > self._len:
            raise outside(ptr, length, self._len)
        return ctypes.string_at(self._base + ptr, length)

    def write(self, ptr: int, data: Buffer) -> None:
        if isinstance(data, bytes):
            length = len(data)
            if ptr < 0 or ptr + length > self._len:
                raise outside(ptr, length, self._len)
            ctypes.memmove(self._base + ptr, data, length)
            return
        super().write(ptr, data)


class CoreRealloc:
    """A component's `cabi_realloc` core function as a `Realloc` callable, called through wasmtime's
    unchecked raw-value call: its type is checked once here, so a call converts no values and reflects
    no types (the package's `Func.__call__` does both on every call, at ~100 times the cost).
    A trap in the guest raises `wasmtime.Trap`, an error `wasmtime.WasmtimeError`."""

    def __init__(self, func: wasmtime.Func, store: wasmtime.Store) -> None:
        fty = func.type(store)
        i32 = wasmtime.ValType.i32()
        if list(fty.params) != [i32] * 4 or list(fty.results) != [i32]:
            raise wasmtime.WasmtimeError("cabi_realloc must have type (i32, i32, i32, i32) -> i32")
        self._store = store  # keeps the context alive
        self._func = func
        self._context = store._context()
        self._ref = ctypes.byref(func._func)
        self._args = (_ffi.wasmtime_val_raw_t * 4)()
        self._trap = ctypes.POINTER(_ffi.wasm_trap_t)()  # stays NULL until a call traps
        self._trap_ref = ctypes.byref(self._trap)

    def __call__(self, old_ptr: int, old_size: int, align: int, new_size: int) -> int:
        args = self._args
        args[0].i32, args[1].i32, args[2].i32, args[3].i32 = old_ptr, old_size, align, new_size
        error = _CALL_UNCHECKED(self._context, self._ref, args, 4, self._trap_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if self._trap:
            trap = self._trap
            self._trap = ctypes.POINTER(_ffi.wasm_trap_t)()
            self._trap_ref = ctypes.byref(self._trap)
            raise wasmtime.Trap._from_ptr(trap)
        result: int = args[0].i32
        return result & 0xFFFFFFFF


# The ctypes functions themselves, without the package's Python wrappers around them.
_CALL_UNCHECKED = _bindings._wasmtime_func_call_unchecked
# Called without releasing the GIL (PYFUNCTYPE): they only read two fields, and a release and re-acquire
# per call cost more than the call (the epoch thread may take the GIL in between).
_CONTEXT, _MEMORY = ctypes.POINTER(_ffi.wasmtime_context_t), ctypes.POINTER(_ffi.wasmtime_memory_t)
_DATA_SIZE = ctypes.PYFUNCTYPE(ctypes.c_size_t, _CONTEXT, _MEMORY)(("wasmtime_memory_data_size", _ffi.dll))
# The base as an int (a ctypes.cast of a pointer result would leave a reference cycle per refresh).
_DATA = ctypes.PYFUNCTYPE(ctypes.c_void_p, _CONTEXT, _MEMORY)(("wasmtime_memory_data", _ffi.dll))
