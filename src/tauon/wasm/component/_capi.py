"""Direct access to the wasmtime C API for the component model, through the package's own shared library.

Why not the package's Python layer: in wasmtime 50.0.1 it is not thread-safe (a module-global set in
variant lowering, host exceptions passed through a module global) and it is slow (one 32-byte value
per byte of a `list<u8>`, function types re-reflected on every call). tauon keeps the package's types,
structures and shared library, and calls the C functions itself with its own argument types.

`CDLL.__getitem__` returns a fresh function object per name, so the argument types set here never
change the package's own bindings. Everything here relies on the C ABI of wasmtime 50.0.1: `check_version`
refuses any other version, and tests/unit/test_component_binding.py fails if the pin changes.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
from ctypes import POINTER, c_bool, c_char_p, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p
from typing import Any

from wasmtime import _ffi as ffi

SUPPORTED_WASMTIME = "50.0.1"

Val = ffi.wasmtime_component_val_t
VAL_SIZE = ctypes.sizeof(Val)
VAL_PAYLOAD = Val.of.offset
"""Byte offset of the payload union inside a value (the kind byte is at 0)."""
ValPtr = POINTER(Val)
Name = ffi.wasm_byte_vec_t
RecordEntry = ffi.wasmtime_component_valrecord_entry_t
RECORD_ENTRY_SIZE = ctypes.sizeof(RecordEntry)
RECORD_ENTRY_VAL = ctypes.sizeof(Name)
"""Offset of a record entry's value (after its name)."""
VARIANT_VAL = ctypes.sizeof(Name)
"""Offset of a variant's payload pointer (after its case name)."""
RESULT_VAL = ctypes.alignment(c_void_p)
"""Offset of a result's payload pointer (after its `is_ok` byte, aligned)."""

KIND_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
KIND_S8 = ffi.WASMTIME_COMPONENT_S8.value
KIND_U8 = ffi.WASMTIME_COMPONENT_U8.value
KIND_S16 = ffi.WASMTIME_COMPONENT_S16.value
KIND_U16 = ffi.WASMTIME_COMPONENT_U16.value
KIND_S32 = ffi.WASMTIME_COMPONENT_S32.value
KIND_U32 = ffi.WASMTIME_COMPONENT_U32.value
KIND_S64 = ffi.WASMTIME_COMPONENT_S64.value
KIND_U64 = ffi.WASMTIME_COMPONENT_U64.value
KIND_F32 = ffi.WASMTIME_COMPONENT_F32.value
KIND_F64 = ffi.WASMTIME_COMPONENT_F64.value
KIND_CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
KIND_STRING = ffi.WASMTIME_COMPONENT_STRING.value
KIND_LIST = ffi.WASMTIME_COMPONENT_LIST.value
KIND_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
KIND_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
KIND_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
KIND_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
KIND_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
KIND_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
KIND_FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value
KIND_RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE.value

_dll = ffi.dll


def _fn(name: str, restype: Any, *argtypes: Any) -> Any:
    """A binding that keeps the GIL: for the short conversion calls of the hot path. Releasing and
    re-taking the GIL around a sub-microsecond call costs more than the call, and with several guest
    threads each release invites a thread switch."""
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, _dll))


def _fn_nogil(name: str, restype: Any, *argtypes: Any) -> Any:
    """A binding that releases the GIL while it runs: for calls that run guest code."""
    func = _dll[name]  # a new function object: the package's bindings keep their own signatures
    func.restype = restype
    func.argtypes = argtypes
    return func


# Host functions and resource destructors, as tauon declares them: plain pointers for speed.
# `args` and `results` arrive as plain addresses: a pointer object per array cost more than the value
# views the converters need (Val.from_address).
HostCallback = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p,
                                c_size_t)
DtorCallback = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_uint32)
Finalizer = ctypes.CFUNCTYPE(None, c_void_p)
EpochCallback = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, POINTER(c_uint64), POINTER(c_uint8))
"""(context, data, deadline delta out, update kind out) -> error or 0 (continue)."""

func_call = _fn_nogil("wasmtime_component_func_call", c_void_p,
                c_void_p, c_void_p, ValPtr, c_size_t, ValPtr, c_size_t)
linker_instantiate = _fn_nogil("wasmtime_component_linker_instantiate", c_void_p,
                                c_void_p, c_void_p, c_void_p, c_void_p)
"""(linker, context, component, instance out): start-up code may run, so the GIL is released."""
instance_get_func = _fn("wasmtime_component_instance_get_func", c_bool,
                        c_void_p, c_void_p, c_void_p, c_void_p)
"""(instance, context, export index, func out) -> found."""
linker_instance_add_func = _fn("wasmtime_component_linker_instance_add_func", c_void_p,
                               c_void_p, c_char_p, c_size_t, HostCallback, c_void_p, Finalizer)
linker_instance_add_resource = _fn("wasmtime_component_linker_instance_add_resource", c_void_p,
                                   c_void_p, c_char_p, c_size_t, c_void_p, DtorCallback, c_void_p,
                                   Finalizer)
store_epoch_deadline_callback = _fn("wasmtime_store_epoch_deadline_callback", None,
                                    c_void_p, EpochCallback, c_void_p, c_void_p)
"""(store, callback, data, finalizer): called on the running thread when the epoch deadline passes."""
resource_type_new_host = _fn("wasmtime_component_resource_type_new_host", c_void_p, c_uint32)
resource_type_delete = _fn("wasmtime_component_resource_type_delete", None, c_void_p)

resource_host_new = _fn("wasmtime_component_resource_host_new", c_void_p, c_bool, c_uint32, c_uint32)
resource_host_rep = _fn("wasmtime_component_resource_host_rep", c_uint32, c_void_p)
resource_host_type = _fn("wasmtime_component_resource_host_type", c_uint32, c_void_p)
resource_host_delete = _fn("wasmtime_component_resource_host_delete", None, c_void_p)
resource_host_to_any = _fn("wasmtime_component_resource_host_to_any", c_void_p,
                           c_void_p, c_void_p, POINTER(c_void_p))
resource_any_to_host = _fn("wasmtime_component_resource_any_to_host", c_void_p,
                           c_void_p, c_void_p, POINTER(c_void_p))
resource_any_delete = _fn("wasmtime_component_resource_any_delete", None, c_void_p)
resource_host_to_any_at = _fn("wasmtime_component_resource_host_to_any", c_void_p,
                              c_void_p, c_void_p, c_void_p)
"""resource_host_to_any writing its result to a plain address (a value's payload): no pointer object."""

val_new = _fn("wasmtime_component_val_new", ValPtr, ValPtr)
val_new_at = _fn("wasmtime_component_val_new", c_void_p, c_void_p)
"""val_new on and to plain addresses (no pointer objects made)."""
val_delete = _fn("wasmtime_component_val_delete", None, ValPtr)
val_clone = _fn("wasmtime_component_val_clone", None, c_void_p, c_void_p)
"""(source, destination): a deep copy."""
vallist_new = _fn("wasmtime_component_vallist_new", None, c_void_p, c_size_t, c_void_p)
vallist_new_uninit = _fn("wasmtime_component_vallist_new_uninit", None, c_void_p, c_size_t)
valrecord_new_uninit = _fn("wasmtime_component_valrecord_new_uninit", None, c_void_p, c_size_t)
valtuple_new_uninit = _fn("wasmtime_component_valtuple_new_uninit", None, c_void_p, c_size_t)
valflags_new_uninit = _fn("wasmtime_component_valflags_new_uninit", None, c_void_p, c_size_t)
byte_vec_new = _fn("wasm_byte_vec_new", None, c_void_p, c_size_t, c_char_p)

error_new = _fn("wasmtime_error_new", c_void_p, c_char_p)
_error_message = _fn("wasmtime_error_message", None, c_void_p, POINTER(Name))
_error_delete = _fn("wasmtime_error_delete", None, c_void_p)
_byte_vec_delete = _fn("wasm_byte_vec_delete", None, POINTER(Name))


def take_error(ptr: int) -> str:
    """The message of a `wasmtime_error_t` (which is freed)."""
    name = Name()
    _error_message(ptr, ctypes.byref(name))
    try:
        return ctypes.string_at(name.data, name.size).decode("utf-8", "replace")
    finally:
        _byte_vec_delete(ctypes.byref(name))
        _error_delete(ptr)


def set_name(vec: ctypes.Structure, data: bytes) -> None:
    """Fill a `wasm_name_t` inside a value with a copy of `data`."""
    byte_vec_new(ctypes.addressof(vec), len(data), data)


@functools.cache  # the loaded package cannot change under a running process; reading it took 0.2 ms per app
def installed_version() -> str:
    return importlib.metadata.version("wasmtime")


def check_version() -> None:
    version = installed_version()
    if version != SUPPORTED_WASMTIME:
        raise RuntimeError(
            f"tauon's component binding is written against wasmtime=={SUPPORTED_WASMTIME} (its C ABI and "
            f"the package's ctypes structures), but wasmtime {version} is installed: re-check "
            "src/tauon/wasm/component/ against the new release, then update SUPPORTED_WASMTIME"
        )
