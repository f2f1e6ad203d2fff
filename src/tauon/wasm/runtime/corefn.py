"""Core wasm functions through wasmtime's C API, without the package's Python layer on the hot path.

Host functions are unchecked functions (defined once per component on a linker, linking.py) that all
enter Python through one shared ctypes trampoline, with a slot index as their `env`: arguments and
results travel as raw 16-byte values (`wasmtime_val_raw_t`), unpacked with one precompiled `struct`
format per signature. An exception a host function raises becomes a wasm trap, and the exception is
kept in a thread-local for the caller on the same thread to re-raise (the package keeps it in a module
global, which other threads see).
Guest functions are called with `wasmtime_func_call_unchecked`, releasing the GIL while wasm runs.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable, Sequence
from ctypes import POINTER, c_size_t, c_void_p
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

RAW_SIZE = ctypes.sizeof(ffi.wasmtime_val_raw_t)
_CODES = {"i32": "I12x", "i64": "Q8x", "f32": "f12x", "f64": "d8x"}
_MASKS = {"i32": 0xFFFFFFFF, "i64": 0xFFFFFFFFFFFFFFFF}
_VALTYPES = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64, "f32": wasmtime.ValType.f32,
             "f64": wasmtime.ValType.f64}


class CoreTrap(Exception):
    """A core call trapped or failed. `host_error`: the exception a host function raised, if one did."""

    def __init__(self, message: str, host_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.host_error = host_error


def innermost(exc: CoreTrap) -> CoreTrap:
    """The failure behind a chain of nested guest calls (a host call that ran the guest's realloc,
    which trapped): what the guest did wrong, not that a host function failed."""
    while isinstance(exc.host_error, CoreTrap):
        exc = exc.host_error
    return exc


def raw_format(types: Sequence[str]) -> struct.Struct:
    """The struct format of raw values of these core types, one 16-byte slot each (unsigned ints)."""
    return struct.Struct("<" + "".join(_CODES[t] for t in types))


def functype(params: Sequence[str], results: Sequence[str]) -> wasmtime.FuncType:
    return wasmtime.FuncType([_VALTYPES[t]() for t in params], [_VALTYPES[t]() for t in results])


def masks(types: Sequence[str]) -> tuple[int | None, ...]:
    """Per core type, the mask that turns a Python int into its unsigned raw form (None for floats)."""
    return tuple(_MASKS.get(t) for t in types)


# ---- host functions -----------------------------------------------------------------------------------

HostCall = Callable[[int, int], None]
"""Called as fn(caller address, args_and_results address): reads its arguments from the raw values
there and writes its results over them."""


class _Local(threading.local):
    error: BaseException | None = None


_local = _Local()
_slots: list[HostCall | None] = [None]
_free: list[int] = []
_slots_lock = threading.Lock()

Callback = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_size_t)
_trap_new = ctypes.PYFUNCTYPE(c_void_p, ctypes.c_char_p, c_size_t)(("wasmtime_trap_new", ffi.dll))


def _trampoline(env: int, caller: int, args: int, _n: int) -> int | None:
    fn = _slots[env]
    try:
        assert fn is not None
        fn(caller, args)
        return None
    except BaseException as exc:  # nothing may unwind through C: everything becomes a trap
        _local.error = exc
        text = (str(exc) or type(exc).__name__).encode("utf-8", "replace")
        return int(_trap_new(text, len(text)) or 0)


TRAMPOLINE = Callback(_trampoline)


def register(fn: HostCall) -> int:
    """A slot for `fn`, for `new_host_func`; held until `unregister`."""
    with _slots_lock:
        if _free:
            slot = _free.pop()
            _slots[slot] = fn
        else:
            slot = len(_slots)
            _slots.append(fn)
        return slot


def unregister(slot: int) -> None:
    with _slots_lock:
        _slots[slot] = None
        _free.append(slot)


def clear_error() -> None:
    _local.error = None


def take_error() -> BaseException | None:
    error, _local.error = _local.error, None
    return error


# ---- calling guest functions --------------------------------------------------------------------------

_call_unchecked = ffi.dll["wasmtime_func_call_unchecked"]  # a fresh object: our own argument types
_call_unchecked.restype = c_void_p
_call_unchecked.argtypes = (c_void_p, c_void_p, c_void_p, c_size_t, POINTER(c_void_p))


def failure(error: int | None, trap: c_void_p) -> CoreTrap:
    host_error = take_error()
    if error:
        message = str(wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t))))
    else:
        message = str(wasmtime.Trap._from_ptr(ctypes.cast(trap, POINTER(ffi.wasm_trap_t))))
    return CoreTrap(message, host_error)


class GuestCall:
    """Calls of one core function type: `call(ctx, func, *args)` returns the results as a tuple."""

    def __init__(self, params: Sequence[str], results: Sequence[str]) -> None:
        self.slots = max(len(params), len(results), 1)
        self._in = raw_format(params)
        self._out = raw_format(results)
        self._masks = masks(params)
        self._nresults = len(results)

    def call(self, ctx: int, func: wasmtime.Func, *args: Any) -> tuple[Any, ...]:
        buf = ctypes.create_string_buffer(self.slots * RAW_SIZE)
        self._in.pack_into(buf, 0, *[a & m if m is not None else a
                                     for a, m in zip(args, self._masks, strict=True)])
        _local.error = None
        trap = c_void_p()
        error = _call_unchecked(ctx, ctypes.addressof(func._func), buf, self.slots, ctypes.byref(trap))
        if error or trap:
            raise failure(error, trap)
        return self._out.unpack_from(buf, 0) if self._nresults else ()


_REALLOC_ARGS = raw_format(("i32", "i32", "i32", "i32"))
_I32_RESULT = raw_format(("i32",))


class GuestRealloc:
    """A component's `cabi_realloc` in one Store, called for every string or list lowered into the guest:
    one preallocated raw-value frame, no per-call masking (its arguments are the host's own unsigned
    sizes and pointers). A nested call (guest code inside realloc calling the host) may reuse the frame:
    wasmtime reads the arguments before running the guest and writes the result after it returns."""

    __slots__ = ("_args", "_ctx", "_frame", "_func", "_trap", "_trap_ref")

    def __init__(self, ctx: int, func: wasmtime.Func) -> None:
        self._ctx = ctx
        self._func = func  # keeps its handle alive
        self._frame = ctypes.create_string_buffer(4 * RAW_SIZE)
        self._args = ctypes.addressof(self._frame)
        self._trap = c_void_p()
        self._trap_ref = ctypes.byref(self._trap)

    def __call__(self, old: int, old_size: int, align: int, size: int) -> int:
        frame = self._frame
        _REALLOC_ARGS.pack_into(frame, 0, old, old_size, align, size)
        _local.error = None
        error = _call_unchecked(self._ctx, ctypes.addressof(self._func._func), self._args, 4, self._trap_ref)
        if error or self._trap:
            trap, self._trap = self._trap, c_void_p()
            self._trap_ref = ctypes.byref(self._trap)
            raise failure(error, trap)
        result: int = _I32_RESULT.unpack_from(frame, 0)[0]
        return result
