"""A component type's import, or an instance type's export, by its index: the package's `imports()` and
`exports()` build every item of the list to give one (with 60 exports in wasi:http/types, most of
what finding a few resource types cost)."""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import ComponentInstanceType, ComponentType
from wasmtime.component._types import ComponentExtern


def import_at(ctype: ComponentType, engine: wasmtime.Engine,
              index: int) -> tuple[str, ComponentExtern] | None:
    """(name, item) of import `index` of `ctype`, in the order `imports()` lists them; None past the end."""
    return _nth(ffi.wasmtime_component_type_import_nth, ctype, engine, index)


def export_at(itype: ComponentInstanceType, engine: wasmtime.Engine,
              index: int) -> tuple[str, ComponentExtern] | None:
    """(name, item) of export `index` of `itype`, in the order `exports()` lists them."""
    return _nth(ffi.wasmtime_component_instance_type_export_nth, itype, engine, index)


def _nth(nth: object, owner: ComponentType | ComponentInstanceType, engine: wasmtime.Engine,
         index: int) -> tuple[str, ComponentExtern] | None:
    name_ptr = ctypes.POINTER(ctypes.c_char)()
    name_len = ctypes.c_size_t()
    item = ctypes.POINTER(ffi.wasmtime_component_extern_t)()
    found = nth(owner.ptr(), engine.ptr(), index, ctypes.byref(name_ptr),  # type: ignore[operator]
                ctypes.byref(name_len), ctypes.byref(item))
    if not found:
        return None
    return ctypes.string_at(name_ptr, name_len.value).decode("utf-8"), ComponentExtern._from_ptr(item)
