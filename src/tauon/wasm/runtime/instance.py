"""Instantiating a planned component in a wasmtime Store: its core modules in order, wired to each other,
to `canon lower` trampolines over host functions and to the resource builtins.

`RuntimeComponent` is built once per component (core modules compiled, host functions resolved, the
canonical ABI's converters compiled per function type, one trampoline slot per lowered function);
`instantiate` then only creates core instances and trampolines in one Store. The instance being run is
bound to the thread while guest code runs (`running`), which is how a trampoline finds its instance,
handle table and request state: wasmtime hands a host function only its `env` slot and the caller.
Values cross with `tauon.wasm.canon` (part A of issue 19): its `ImportCall` / `ExportCall`, handle
tables, memory access and bounds checks.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern

from tauon.wasm.canon import layout
from tauon.wasm.canon.calls import ImportCall
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.handles import BorrowScope, HandleTable
from tauon.wasm.canon.memory import WasmtimeMemory
from tauon.wasm.canon.types import FuncType, ResourceType
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.plan import Bag, Builtin, CoreRef, HostFunc, Instantiate, Lower, Opts, Plan

HostImpl = Callable[..., Any]


class HostLinks(Protocol):
    """What the host provides (hostif/runtime_link.py): an implementation per imported function
    (`impl(state, *args)`; one that traps for what the host lacks), and the drop of a host resource."""

    def impl(self, func: HostFunc) -> HostImpl: ...

    def drop(self, state: Any, rep: int) -> None: ...


class _Current(threading.local):
    instance: RuntimeInstance | None = None


_current = _Current()


@contextmanager
def running(instance: RuntimeInstance) -> Iterator[None]:
    """Bind `instance` to this thread while its guest code runs (re-entrant)."""
    previous = _current.instance
    _current.instance = instance
    try:
        yield
    finally:
        _current.instance = previous


def current() -> RuntimeInstance:
    instance = _current.instance
    if instance is None:
        raise RuntimeError("a component trampoline ran outside a guest call")
    return instance


class RuntimeComponent:
    """A component prepared for instantiation (thread-safe; shared by every instance of it)."""

    def __init__(self, plan: Plan, modules: list[wasmtime.Module], links: HostLinks) -> None:
        self.plan = plan
        self.modules = modules
        self.links = links
        self.import_names = [[(imp.module, imp.name or "") for imp in module.imports] for module in modules]
        host_resources = [t for exports in plan.imports.values() for t in exports.values()
                          if isinstance(t, ResourceType)]
        self.host_resources = frozenset(host_resources)
        # A resource imported on its own, outside any interface: no host provides one.
        self.unsatisfied = [name for name, t in plan.imports.get("", {}).items()
                            if isinstance(t, ResourceType)]
        self.defined = frozenset(b.resource for b in plan.builtins if not b.resource.host)
        """Resource types the component implements (resource.new); others are the host's."""
        self._slots: list[int] = []
        self.lower_types: list[wasmtime.FuncType] = []
        for lower in plan.lowers:
            ftype = lower.host.type
            try:
                core = layout.flatten_functype(ftype, "lower")
            except CanonUnsupported as exc:
                label = f"{lower.host.interface}#{lower.host.func}"
                raise UnsupportedComponent(f"the import {label}: {exc}") from None
            self.lower_types.append(corefn.functype(core.params, core.results))
            impl = links.impl(lower.host)
            try:
                body = _lower_call(lower, impl, import_call(ftype, lower.opts.string_encoding))
            except CanonUnsupported as exc:  # it traps when called, as on the wasmtime path
                body = _unsupported_call(lower.host, str(exc))
            self._slots.append(corefn.register(body))
        self.builtin_types: list[wasmtime.FuncType] = []
        self._builtin_slots: list[int] = []
        for builtin in plan.builtins:
            results = () if builtin.op == "resource.drop" else ("i32",)
            self.builtin_types.append(corefn.functype(("i32",), results))
            self._builtin_slots.append(corefn.register(_builtin_call(builtin)))
        # The slots' functions do not refer to this object: it goes with its last user.
        weakref.finalize(self, _unregister, [*self._slots, *self._builtin_slots])

    def lower_slot(self, index: int) -> int:
        return self._slots[index]

    def builtin_slot(self, index: int) -> int:
        return self._builtin_slots[index]

    def instantiate(self, store: wasmtime.Store, state: Any) -> RuntimeInstance:
        """Core instances in order. Raises corefn.CoreTrap (a start function trapped, a link error)."""
        if self.unsatisfied:
            raise UnsupportedComponent(f"component imports resource `{self.unsatisfied[0]}`, which tauon "
                                       "does not provide")
        instance = RuntimeInstance(self, store, state)
        with running(instance):
            for step in self.plan.core_instances:
                instance.add_core_instance(step)
        return instance


class RuntimeInstance:
    """One instance of a component in one Store: its core instances, handle table and request state."""

    def __init__(self, component: RuntimeComponent, store: wasmtime.Store, state: Any) -> None:
        self.component = component
        self.store = store
        self.ctx = ctypes.cast(store._context(), ctypes.c_void_p).value or 0
        self.state = state
        self.handles = HandleTable(component.defined)
        drop_host = self._drop_host
        for rtype in component.host_resources:
            self.handles.set_destructor(rtype, drop_host)
        for rtype in component.plan.dtors:
            self.handles.set_destructor(rtype, self._dtor(rtype))
        self._core: list[wasmtime.Instance | dict[str, Any]] = []
        self._externs: dict[tuple[int, str], Any] = {}
        self._trampolines: dict[CoreRef, wasmtime.Func] = {}
        self._memories: dict[CoreRef, WasmtimeMemory] = {}
        self._contexts: dict[Opts, CallContext] = {}

    # -- instantiation

    def add_core_instance(self, step: Instantiate | Bag) -> None:
        if isinstance(step, Bag):
            self._core.append({name: self.resolve(ref) for name, ref in step.exports})
            return
        args = dict(step.args)
        imports = []
        for module_name, name in self.component.import_names[step.module]:
            if module_name not in args:
                raise UnsupportedComponent(f"core import module {module_name!r} is not supplied")
            imports.append(self.export(args[module_name], name))
        self._core.append(corefn.instantiate_module(self.ctx, self.component.modules[step.module], imports))

    def export(self, core_index: int, name: str) -> Any:
        key = (core_index, name)
        found = self._externs.get(key)
        if found is not None:
            return found
        core = self._core[core_index]
        found = core.get(name) if isinstance(core, dict) else _export_get(self.ctx, core, name)
        if found is None:
            raise UnsupportedComponent(f"core instance {core_index} has no export {name!r}")
        self._externs[key] = found
        return found

    def resolve(self, ref: CoreRef) -> Any:
        if ref.kind == "export":
            return self.export(ref.index, ref.name)
        func = self._trampolines.get(ref)
        if func is None:
            component = self.component
            if ref.kind == "lower":
                func = corefn.new_host_func(self.ctx, component.lower_types[ref.index],
                                            component.lower_slot(ref.index))
            else:
                func = corefn.new_host_func(self.ctx, component.builtin_types[ref.index],
                                            component.builtin_slot(ref.index))
            self._trampolines[ref] = func
        return func

    # -- calls

    def context(self, opts: Opts) -> CallContext:
        """The call context of these canonical options (memory, realloc) in this instance."""
        cx = self._contexts.get(opts)
        if cx is None:
            memory = self._memory(opts.memory) if opts.memory is not None else None
            realloc = self._realloc(opts.realloc) if opts.realloc is not None else None
            cx = CallContext(memory, realloc, self.handles)
            self._contexts[opts] = cx
        return cx

    def _memory(self, ref: CoreRef) -> WasmtimeMemory:
        memory = self._memories.get(ref)
        if memory is None:
            extern = self.resolve(ref)
            if not isinstance(extern, wasmtime.Memory):
                raise UnsupportedComponent("the memory option names something that is not a memory")
            memory = WasmtimeMemory(extern, self.store)
            self._memories[ref] = memory
        return memory

    def _realloc(self, ref: CoreRef) -> Callable[[int, int, int, int], int]:
        func = self.resolve(ref)
        call = _REALLOC.call
        ctx = self.ctx

        def realloc(old: int, old_size: int, align: int, size: int) -> int:
            result: int = call(ctx, func, old, old_size, align, size)[0]
            return result

        return realloc

    def _drop_host(self, rep: int) -> None:
        """The guest dropped its own handle to a host resource."""
        self.component.links.drop(self.state, rep)

    def _dtor(self, rtype: ResourceType) -> Callable[[int], None]:
        """`resource.drop` of an own handle of a resource this component implements: its dtor."""
        ref = self.component.plan.dtors[rtype]

        def dtor(rep: int) -> None:
            _DTOR.call(self.ctx, self.core_func(ref), rep)

        return dtor

    def core_func(self, ref: CoreRef) -> wasmtime.Func:
        func = self.resolve(ref)
        if not isinstance(func, wasmtime.Func):
            raise UnsupportedComponent("a lifted function that is not a core function")
        return func


_REALLOC = corefn.GuestCall(("i32", "i32", "i32", "i32"), ("i32",))
_DTOR = corefn.GuestCall(("i32",), ())


def _export_get(ctx: int, instance: wasmtime.Instance, name: str) -> Any:
    raw = name.encode()
    item = ffi.wasmtime_extern_t()
    ok = ffi.wasmtime_instance_export_get(ctypes.cast(ctx, ctypes.POINTER(ffi.wasmtime_context_t)),
                                          ctypes.byref(instance._instance), raw, len(raw),
                                          ctypes.byref(item))
    return wrap_extern(item) if ok else None


_calls: dict[tuple[FuncType, str], ImportCall] = {}


def import_call(ftype: FuncType, encoding: str) -> ImportCall:
    """The canonical ABI's converters for a lowered function type (compiled once per type)."""
    key = (ftype, encoding)
    call = _calls.get(key)
    if call is None:
        call = _calls[key] = ImportCall(ftype, encoding)  # type: ignore[arg-type]
    return call


def _lower_call(lower: Lower, impl: HostImpl, call: ImportCall) -> corefn.HostCall:
    """The trampoline body of one lowered host function."""
    opts = lower.opts
    core = call.core
    frame = ctypes.c_char * (corefn.RAW_SIZE * max(len(core.params), len(core.results), 1))
    unpack = corefn.raw_format(core.params).unpack_from
    pack = corefn.raw_format(core.results).pack_into
    has_results = bool(core.results)
    borrows = call.has_borrows
    lift_params, lower_result = call.lift_params, call.lower_result
    label = f"{lower.host.interface}#{lower.host.func}" if lower.host.interface else lower.host.func

    def run(_ctx: int, args: int) -> None:
        instance = current()
        cx = instance.context(opts)
        buf = frame.from_address(args)
        flat = unpack(buf, 0)
        scope = BorrowScope() if borrows else None
        if scope is not None:
            cx = cx.with_scope(scope)
        try:
            result = impl(instance.state, *lift_params(cx, flat))
            out = lower_result(cx, result, flat)
        except CanonTrap as exc:  # the guest's bad data (or the host's bad value): name the import
            raise exc.within(label) from None
        finally:
            if scope is not None:
                scope.end()
        if has_results:
            pack(buf, 0, *out)

    return run


def _unsupported_call(func: HostFunc, why: str) -> corefn.HostCall:
    label = f"{func.interface}#{func.func}" if func.interface else func.func

    def run(_ctx: int, _args: int) -> None:
        raise UnsupportedComponent(f"{label} cannot be called through tauon's component runtime: {why}")

    return run


def _unregister(slots: list[int]) -> None:
    for slot in slots:
        corefn.unregister(slot)


def _builtin_call(builtin: Builtin) -> corefn.HostCall:
    rtype, op = builtin.resource, builtin.op
    u32 = ctypes.c_uint32

    def run(_ctx: int, args: int) -> None:
        handles = current().handles
        slot = u32.from_address(args)
        if op == "resource.new":
            slot.value = handles.resource_new(rtype, slot.value)
        elif op == "resource.rep":
            slot.value = handles.resource_rep(rtype, slot.value)
        else:
            handles.resource_drop(rtype, slot.value)  # runs the destructor of an own handle

    return run
