"""Instantiating a planned component in a wasmtime Store: its core modules in order, wired to each other,
to `canon lower` trampolines over host functions and to the resource builtins.

`RuntimeComponent` is built once per component (core modules compiled, host functions resolved, the
call adapters compiled, one trampoline slot per lowered function); `instantiate` then only creates
core instances and trampolines in one Store. The instance being run is bound to the thread while
guest code runs (`running`), which is how a trampoline finds its instance, handle table and request
state: wasmtime hands a host function only its `env` slot and the caller.
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

from tauon.wasm.canon.types import ResourceType
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.abi import CallContext, HandleTable, StoreMemory
from tauon.wasm.runtime.adapters import Adapters
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

    def __init__(self, plan: Plan, modules: list[wasmtime.Module], links: HostLinks,
                 adapters: Adapters) -> None:
        self.plan = plan
        self.modules = modules
        self.links = links
        self.adapters = adapters
        self.import_names = [[(imp.module, imp.name or "") for imp in module.imports] for module in modules]
        host_resources = [t for exports in plan.imports.values() for t in exports.values()
                          if isinstance(t, ResourceType)]
        self.host_resources = frozenset(host_resources)
        # A resource imported on its own, outside any interface: no host provides one.
        self.unsatisfied = [name for name, t in plan.imports.get("", {}).items()
                            if isinstance(t, ResourceType)]
        self._slots: list[int] = []
        self.lower_types: list[wasmtime.FuncType] = []
        for lower in plan.lowers:
            adapter = adapters.lower(lower.host.type)
            self.lower_types.append(corefn.functype(adapter.core_params, adapter.core_results))
            self._slots.append(corefn.register(_lower_call(lower, links.impl(lower.host), adapter)))
        self.builtin_types: list[wasmtime.FuncType] = []
        self._builtin_slots: list[int] = []
        for builtin in plan.builtins:
            results = () if builtin.op == "resource.drop" else ("i32",)
            self.builtin_types.append(corefn.functype(("i32",), results))
            host = builtin.resource.host or builtin.resource in self.host_resources
            self._builtin_slots.append(corefn.register(_builtin_call(builtin, host, links)))
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
        self.handles = HandleTable()
        self._core: list[wasmtime.Instance | dict[str, Any]] = []
        self._externs: dict[tuple[int, str], Any] = {}
        self._trampolines: dict[CoreRef, wasmtime.Func] = {}
        self._memories: dict[CoreRef, StoreMemory] = {}
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

    def _memory(self, ref: CoreRef) -> StoreMemory:
        memory = self._memories.get(ref)
        if memory is None:
            extern = self.resolve(ref)
            if not isinstance(extern, wasmtime.Memory):
                raise UnsupportedComponent("the memory option names something that is not a memory")
            memory = StoreMemory(self.ctx, extern)
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

    def drop_guest_resource(self, rtype: ResourceType, rep: int) -> None:
        """`resource.drop` of the last own handle of a resource this component defines: its dtor."""
        ref = self.component.plan.dtors.get(rtype)
        if ref is not None:
            _DTOR.call(self.ctx, self.core_func(ref), rep)

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


def _lower_call(lower: Lower, impl: HostImpl, adapter: Any) -> corefn.HostCall:
    """The trampoline body of one lowered host function."""
    opts = lower.opts
    frame = ctypes.c_char * (corefn.RAW_SIZE * adapter.slots)
    unpack = adapter.raw_params.unpack_from
    pack = adapter.raw_results.pack_into
    has_results = bool(adapter.core_results)
    lift_args, lower_result = adapter.lift_args, adapter.lower_result

    def call(_ctx: int, args: int) -> None:
        instance = current()
        cx = instance.context(opts)
        buf = frame.from_address(args)
        flat = unpack(buf, 0)
        values, scope = lift_args(cx, flat)
        try:
            result = impl(instance.state, *values)
        finally:
            if scope is not None:
                scope.end()
        out = lower_result(cx, result, flat)
        if has_results:
            pack(buf, 0, *out)

    return call


def _unregister(slots: list[int]) -> None:
    for slot in slots:
        corefn.unregister(slot)


def _builtin_call(builtin: Builtin, host: bool, links: HostLinks) -> corefn.HostCall:
    rtype, op = builtin.resource, builtin.op
    u32 = ctypes.c_uint32

    def call(_ctx: int, args: int) -> None:
        instance = current()
        handles = instance.handles
        index = u32.from_address(args).value
        if op == "resource.new":
            u32.from_address(args).value = handles.lower_own(rtype, index)
        elif op == "resource.rep":
            u32.from_address(args).value = handles.handle(rtype, index).rep
        else:
            handle = handles.drop(rtype, index)
            if handle is not None and handle.own:
                if host:
                    links.drop(instance.state, handle.rep)
                else:
                    instance.drop_guest_resource(rtype, handle.rep)

    return call
