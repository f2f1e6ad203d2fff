"""Instantiating a planned component in a wasmtime Store: its core modules in order, wired to each other,
to `canon lower` trampolines over host functions and to the resource builtins.

`RuntimeComponent` is built once per component (core modules compiled with their imports renamed by
the wiring, host functions resolved, the canonical ABI's converters compiled per function type, one
trampoline slot per lowered function, all defined on the component's linker, `linking.py`);
`instantiate` then only creates the core instances in one Store, through a clone of that linker. The
instance being run is bound to the thread while guest code runs (`running`), which is how a trampoline
finds its instance, handle table and request state: wasmtime hands a host function only its `env` slot
and the caller.
Values cross with `tauon.wasm.canon` (part A of issue 19): its `ImportCall` / `ExportCall`, handle
tables, memory access and bounds checks.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
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
from tauon.wasm.component.guest import context_address
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.leave import GuardedRealloc, Leave
from tauon.wasm.runtime.linking import ComponentLinker
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.plan import Builtin, CoreRef, HostFunc, Lower, Opts, Plan
from tauon.wasm.runtime.wiring import Source, Wiring, host_link_name

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

    def __init__(self, plan: Plan, wiring: Wiring, modules: list[wasmtime.Module], links: HostLinks,
                 engine: wasmtime.Engine) -> None:
        """`modules`: the compiled `wiring.modules`."""
        self.plan = plan
        self.modules = modules
        self.links = links
        self.wiring = wiring
        self.ref_ids = wiring.ref_ids
        host_resources = [t for exports in plan.imports.values() for t in exports.values()
                          if isinstance(t, ResourceType)]
        self.host_resources = frozenset(host_resources)
        # A resource imported on its own, outside any interface: no host provides one.
        self.unsatisfied = [name for name, t in plan.imports.get("", {}).items()
                            if isinstance(t, ResourceType)]
        self.defined = frozenset(b.resource for b in plan.builtins if not b.resource.host)
        """Resource types the component implements (resource.new); others are the host's."""
        self._context_ids: dict[tuple[CoreRef | None, CoreRef | None], int] = {}
        self._slots: list[int] = []
        self.lower_types: list[wasmtime.FuncType] = []
        for lower in plan.lowers:
            ftype = lower.host.type
            if lower.opts.is_async:  # component-model async: its own trampoline (subtasks.py)
                self._slots.append(self._async_lower(lower, links))
                continue
            ftype = replace(ftype, is_async=False)  # a synchronous lower of an `async func` blocks
            try:
                core = layout.flatten_functype(ftype, "lower")
            except CanonUnsupported as exc:
                label = f"{lower.host.interface}#{lower.host.func}"
                raise UnsupportedComponent(f"the import {label}: {exc}") from None
            self.lower_types.append(corefn.functype(core.params, core.results))
            impl = links.impl(lower.host)
            try:
                body = _lower_call(lower, impl, import_call(ftype, lower.opts.string_encoding),
                                   self.context_index(lower.opts))
            except CanonUnsupported as exc:  # it traps when called, as on the wasmtime path
                body = _unsupported_call(lower.host, str(exc))
            self._slots.append(corefn.register(body))
        self.builtin_types: list[wasmtime.FuncType] = []
        self._builtin_slots: list[int] = []
        for builtin in plan.builtins:
            results = () if builtin.op == "resource.drop" else ("i32",)
            self.builtin_types.append(corefn.functype(("i32",), results))
            self._builtin_slots.append(corefn.register(_builtin_call(builtin)))
        self.async_types: list[wasmtime.FuncType] = []
        self._async_slots: list[int] = []
        self._compile_async_builtins(plan)
        # The slots' functions do not refer to this object: it goes with its last user.
        weakref.finalize(self, _unregister, [*self._slots, *self._builtin_slots, *self._async_slots])
        host_funcs = [(*host_link_name(Source(kind, i)), ty, slot)
                      for kind, types, slots in (("lower", self.lower_types, self._slots),
                                                 ("builtin", self.builtin_types, self._builtin_slots),
                                                 ("async", self.async_types, self._async_slots))
                      for i, (ty, slot) in enumerate(zip(types, slots, strict=True))]
        self.linker = ComponentLinker(engine, wiring.steps, modules, host_funcs)

    def _compile_async_builtins(self, plan: Plan) -> None:
        """Component-model async's builtins (async_builtins.py), one trampoline each."""
        for abuiltin in plan.async_builtins:
            try:
                params, results, body = compile_builtin(abuiltin, current)
            except CanonUnsupported as exc:
                raise UnsupportedComponent(f"the builtin {abuiltin.op}: {exc}") from None
            self.async_types.append(corefn.functype(params, results))
            self._async_slots.append(corefn.register(body))

    def _async_lower(self, lower: Lower, links: HostLinks) -> int:
        host = lower.host
        label = f"{host.interface}#{host.func}" if host.interface else host.func
        try:
            params, body = async_lower_call(host.type, lower.opts, links.impl(host),
                                            lower.opts.string_encoding, label, current)
        except CanonUnsupported as exc:
            raise UnsupportedComponent(f"the import {label}: {exc}") from None
        self.lower_types.append(corefn.functype(params, ("i32",)))
        return corefn.register(body)

    def call_context(self, instance: RuntimeInstance, opts: Opts) -> CallContext:
        """`instance`'s call context of `opts` (for the async ABI's trampolines)."""
        return instance.context(opts, self.context_index(opts))

    def context_index(self, opts: Opts) -> int:
        """The index of the call context (memory and realloc) of these options: calls with the same
        memory and realloc share one per instance, made on first use."""
        key = (opts.memory, opts.realloc)
        found = self._context_ids.get(key)
        if found is None:
            found = self._context_ids[key] = len(self._context_ids)
        return found

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
            instance.instantiate_all()
        return instance


class RuntimeInstance:
    """One instance of a component in one Store: its core instances, handle table and request state."""

    def __init__(self, component: RuntimeComponent, store: wasmtime.Store, state: Any) -> None:
        self.component = component
        self.store = store
        self.ctx = context_address(store)  # not ctypes.cast: a cycle per Store
        self.state = state
        self.handles = HandleTable(component.defined)
        self.leave = Leave()
        # The destructors reach this instance through a weak reference: the handle table is this
        # instance's, so a strong one would be a cycle, and the Store (with its pool slot) would
        # live on until the cyclic collector ran, not end with the request.
        me = weakref.ref(self)
        drop_host = _drop_host(me)
        for rtype in component.host_resources:
            self.handles.set_destructor(rtype, drop_host)
        for rtype in component.plan.dtors:
            self.handles.set_destructor(rtype, _dtor(me, component.plan.dtors[rtype]))
        self._instances: list[Any] = []  # wasmtime_instance_t of each module instantiated, in order
        self._externs: dict[int, Any] = {}  # wasmtime_extern_t by source id, of the few items named
        self._wrapped: dict[CoreRef, Any] = {}
        self._memories: dict[CoreRef, WasmtimeMemory] = {}
        self._contexts: dict[int, CallContext] = {}  # by the component's context_index

    # -- instantiation

    def instantiate_all(self) -> None:
        """Every core module, in order, linked to the trampolines and to earlier instances."""
        self._instances = self.component.linker.instantiate_steps(self.ctx)

    def extern(self, source_id: int) -> Any:
        """The `wasmtime_extern_t` of a source in this Store (trampolines are made on first use)."""
        found = self._externs.get(source_id)
        return found if found is not None else self._make_extern(source_id)

    def _make_extern(self, source_id: int) -> Any:
        component = self.component
        source = component.wiring.sources[source_id]
        found = ffi.wasmtime_extern_t()
        if source.kind == "export":
            name = component.wiring.link_name(source)[1].encode()
            if not _export_get(self.ctx, ctypes.addressof(self._instances[source.index]), name, len(name),
                               ctypes.addressof(found)):
                raise UnsupportedComponent(f"a core module has no export {source.name.decode()!r}")
        else:
            found = component.linker.host_extern(self.ctx, *host_link_name(source))
        self._externs[source_id] = found
        return found

    def resolve(self, ref: CoreRef) -> Any:
        """The item `ref` names as a wasmtime object (memories, realloc, lifted core functions)."""
        item = self._wrapped.get(ref)
        if item is None:
            item = self._wrapped[ref] = wrap_extern(self.extern(self.component.ref_ids[ref]))
        return item

    # -- calls

    def context(self, opts: Opts, index: int) -> CallContext:
        """The call context of these canonical options (memory, realloc) in this instance; `index`
        is the component's `context_index(opts)`."""
        cx = self._contexts.get(index)
        if cx is None:
            memory = self._memory(opts.memory) if opts.memory is not None else None
            realloc = self._realloc(opts.realloc) if opts.realloc is not None else None
            cx = CallContext(memory, realloc, self.handles)
            self._contexts[index] = cx
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
        return GuardedRealloc(self.ctx, self.core_func(ref), self.leave)

    def core_func(self, ref: CoreRef) -> wasmtime.Func:
        func = self.resolve(ref)
        if not isinstance(func, wasmtime.Func):
            raise UnsupportedComponent("a lifted function that is not a core function")
        return func


def _drop_host(me: weakref.ref[RuntimeInstance]) -> Callable[[int], None]:
    """The guest dropped its own handle to a host resource."""

    def drop(rep: int) -> None:
        instance = me()
        if instance is not None:  # else the instance is gone, and its request's state with it
            instance.component.links.drop(instance.state, rep)

    return drop


def _dtor(me: weakref.ref[RuntimeInstance], ref: CoreRef) -> Callable[[int], None]:
    """`resource.drop` of an own handle of a resource this component implements: its dtor."""

    def dtor(rep: int) -> None:
        instance = me()
        if instance is not None:  # else its core instances (and the dtor) are gone too
            _DTOR.call(instance.ctx, instance.core_func(ref), rep)

    return dtor


_DTOR = corefn.GuestCall(("i32",), ())


_export_get = ctypes.PYFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p,
                               ctypes.c_size_t, ctypes.c_void_p)(("wasmtime_instance_export_get", ffi.dll))


_calls: dict[tuple[FuncType, str], ImportCall] = {}


def import_call(ftype: FuncType, encoding: str) -> ImportCall:
    """The canonical ABI's converters for a lowered function type (compiled once per type)."""
    key = (ftype, encoding)
    call = _calls.get(key)
    if call is None:
        call = _calls[key] = ImportCall(ftype, encoding)  # type: ignore[arg-type]
    return call


def _lower_call(lower: Lower, impl: HostImpl, call: ImportCall, context: int) -> corefn.HostCall:
    """The trampoline body of one lowered host function (`context`: its options' context index)."""
    opts = lower.opts
    core = call.core
    frame = ctypes.c_char * (corefn.RAW_SIZE * max(len(core.params), len(core.results), 1))
    unpack = corefn.raw_format(core.params).unpack_from
    pack = corefn.raw_format(core.results).pack_into
    has_results = bool(core.results)
    borrows = call.has_borrows
    lift_params, lower_result = call.lift_params, call.lower_result
    label = f"{lower.host.interface}#{lower.host.func}" if lower.host.interface else lower.host.func
    blocking = lower.host.type.is_async  # lowered synchronously, it blocks the guest's thread

    def run(_ctx: int, args: int) -> None:
        instance = _current.instance
        if instance is None:
            raise RuntimeError("a component trampoline ran outside a guest call")
        if not instance.leave.ok:
            instance.leave.check(label)
        if blocking:
            check_may_block(instance.handles, label)
        cx = instance._contexts.get(context) or instance.context(opts, context)
        buf = frame.from_address(args)
        flat = unpack(buf, 0)
        scope = BorrowScope() if borrows else None
        if scope is not None:
            cx = cx.with_scope(scope)
        try:
            result = impl(instance.state, *lift_params(cx, flat))
            if isinstance(result, Deferred):  # a blocking host function, lowered synchronously
                result = wait_deferred(result, instance.handles)
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
        instance = current()
        handles = instance.handles
        if op != "resource.rep":  # the one that may run while the instance may not leave
            instance.leave.check(op)
        slot = u32.from_address(args)
        if op == "resource.new":
            slot.value = handles.resource_new(rtype, slot.value)
        elif op == "resource.rep":
            slot.value = handles.resource_rep(rtype, slot.value)
        else:
            handles.resource_drop(rtype, slot.value)  # runs the destructor of an own handle

    return run


from tauon.wasm.runtime.async_builtins import compile_builtin  # noqa: E402  (they import `current`)
from tauon.wasm.runtime.async_host import Deferred  # noqa: E402
from tauon.wasm.runtime.subtasks import async_lower_call  # noqa: E402
from tauon.wasm.runtime.tasks import check_may_block, wait_deferred  # noqa: E402
