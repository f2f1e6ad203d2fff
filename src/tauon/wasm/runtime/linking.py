"""Instantiating a component's core modules through wasmtime linkers (the C API, via ctypes).

Once per component (`ComponentLinker`): a linker holding every `canon lower` trampoline and resource
builtin as a Store-independent host function (`wasmtime_linker_define_func_unchecked`, all entering
Python through corefn's shared trampoline with their slot as `env`), and an `InstancePre` for each
module whose imports are all such functions (imports resolved and type-checked once).

Per Store (`instantiate_steps`): a clone of that linker; each module is instantiated from its
InstancePre or by the linker (one C call resolving its whole renamed import list, see wiring.py), and
an instance later modules import from is added to the clone with one `define_instance` call. So a
Store costs about two C calls per core module, whatever the number of imports.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Sequence
from ctypes import POINTER, c_char_p, c_size_t, c_void_p
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.wiring import Step

_dll = ffi.dll


def _fn(name: str, restype: Any, *argtypes: Any, release_gil: bool = False) -> Any:
    if release_gil:  # it may run guest code (start functions): other threads run meanwhile
        func = _dll[name]  # a fresh object: our own argument types
        func.restype, func.argtypes = restype, argtypes
        return func
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, _dll))


_linker_new = _fn("wasmtime_linker_new", c_void_p, c_void_p)
_linker_delete = _fn("wasmtime_linker_delete", None, c_void_p)
_linker_clone = _fn("wasmtime_linker_clone", c_void_p, c_void_p)
_define_func = _fn("wasmtime_linker_define_func_unchecked", c_void_p, c_void_p, c_char_p, c_size_t, c_char_p,
                   c_size_t, c_void_p, corefn.Callback, c_void_p, c_void_p)
_define_instance = _fn("wasmtime_linker_define_instance", c_void_p, c_void_p, c_void_p, c_char_p, c_size_t,
                       c_void_p)
_linker_get = _fn("wasmtime_linker_get", ctypes.c_bool, c_void_p, c_void_p, c_char_p, c_size_t, c_char_p,
                  c_size_t, c_void_p)
_instantiate_pre = _fn("wasmtime_linker_instantiate_pre", c_void_p, c_void_p, c_void_p, POINTER(c_void_p))
_pre_delete = _fn("wasmtime_instance_pre_delete", None, c_void_p)
_INSTANTIATE = (c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_void_p))
_PRE_INSTANTIATE = (c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_void_p))
# A start function is guest code: the GIL is released around it, so the epoch thread can interrupt it.
# Without one, instantiating runs no guest code, and keeping the GIL saves a hand-over per module.
_linker_instantiate = {starts: _fn("wasmtime_linker_instantiate", *_INSTANTIATE, release_gil=starts)
                       for starts in (False, True)}
_pre_instantiate = {starts: _fn("wasmtime_instance_pre_instantiate", *_PRE_INSTANTIATE, release_gil=starts)
                    for starts in (False, True)}


def _check(error: int | None, what: str) -> None:
    if error:
        message = str(wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t))))
        raise corefn.CoreTrap(f"{what}: {message}")


class ComponentLinker:
    """The Store-independent part of a component's linking (thread-safe once built)."""

    def __init__(self, engine: wasmtime.Engine, steps: Sequence[Step], modules: Sequence[wasmtime.Module],
                 host_funcs: Sequence[tuple[str, str, wasmtime.FuncType, int]]) -> None:
        """`host_funcs`: (module, name, type, corefn slot) of every trampoline and builtin."""
        self.steps = list(steps)
        self.modules = list(modules)
        self._linker: int = _linker_new(ctypes.cast(engine.ptr(), c_void_p)) or 0
        self._pres: list[int | None] = []
        owned = _Owned(self._linker)
        weakref.finalize(self, owned.free)
        for module, name, ty, slot in host_funcs:
            m, n = module.encode(), name.encode()
            _check(_define_func(self._linker, m, len(m), n, len(n), ctypes.cast(ty.ptr(), c_void_p),
                                corefn.TRAMPOLINE, slot, None), f"defining {module}#{name}")
        for step in self.steps:
            pre: int | None = None
            if step.host_only:
                out = c_void_p()
                _check(_instantiate_pre(self._linker, ctypes.cast(self.modules[step.module].ptr(), c_void_p),
                                        ctypes.byref(out)), "pre-instantiating a core module")
                pre = out.value
                owned.pres.append(pre)
            self._pres.append(pre)
        self._names = [str(index).encode() for index in range(len(self.steps))]
        self._module_ptrs = [ctypes.cast(module.ptr(), c_void_p) for module in self.modules]

    def instantiate_steps(self, ctx: int) -> list[Any]:
        """Every core instance of the component in the Store `ctx`, in order (`wasmtime_instance_t`s).
        Raises corefn.CoreTrap (a start function trapped, a link error)."""
        linker = _linker_clone(self._linker)
        instances: list[Any] = []
        try:
            trap = c_void_p()
            for index, step in enumerate(self.steps):
                instance = ffi.wasmtime_instance_t()
                at = ctypes.addressof(instance)
                corefn.clear_error()
                pre = self._pres[index]
                if pre is not None:
                    error = _pre_instantiate[step.starts](pre, ctx, at, ctypes.byref(trap))
                else:
                    error = _linker_instantiate[step.starts](linker, ctx, self._module_ptrs[step.module], at,
                                                             ctypes.byref(trap))
                if error or trap:
                    raise corefn.failure(error, trap)
                if step.exported:
                    name = self._names[index]
                    _check(_define_instance(linker, ctx, name, len(name), at), "linking a core instance")
                instances.append(instance)
        finally:
            _linker_delete(linker)
        return instances

    def host_extern(self, ctx: int, module: str, name: str) -> Any:
        """A trampoline or builtin as a `wasmtime_extern_t` of the Store `ctx`."""
        found = ffi.wasmtime_extern_t()
        m, n = module.encode(), name.encode()
        if not _linker_get(self._linker, ctx, m, len(m), n, len(n), ctypes.addressof(found)):
            raise corefn.CoreTrap(f"no host function {module}#{name}")
        return found


class _Owned:
    """The C objects of a ComponentLinker, freed when it goes (a finalizer may not refer to it)."""

    def __init__(self, linker: int) -> None:
        self.linker = linker
        self.pres: list[int | None] = []

    def free(self) -> None:
        for pre in self.pres:
            if pre:
                _pre_delete(pre)
        _linker_delete(self.linker)
