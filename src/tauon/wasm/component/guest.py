"""Calling a component's exported functions with precompiled converters, and classifying traps."""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Component, FuncType, Instance, Linker

from tauon.wasm.component import _capi as c
from tauon.wasm.component.codec import ResourceIds
from tauon.wasm.component.host import bound_state, compile_signature, take_host_error
from tauon.wasm.pool import is_exhausted


class Trap(Exception):
    """A guest call failed. `kind`: 'timeout', 'fuel', 'memory', 'host' (a host function raised),
    'instantiate', 'busy' (the instance pool is full) or 'trap'. `host_error` is the exception a
    host function raised, if one did."""

    def __init__(self, message: str, *, kind: str, host_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.host_error = host_error


def classify(message: str, host_error: BaseException | None) -> str:
    if host_error is not None:
        return "host"
    if "wasm trap: interrupt" in message:
        return "timeout"
    if "all fuel consumed" in message:
        return "fuel"
    if "out of memory" in message or "memory allocation" in message or "memory limit" in message:
        return "memory"
    return "trap"


def summarize(message: str) -> str:
    """wasmtime's multi-line error (context, backtrace, cause) as one line: cause first, then frames."""
    head, _, cause = message.partition("Caused by:")
    frames = [line.strip() for line in head.splitlines()[1:] if line.strip()]
    text = " ".join(line.strip() for line in cause.splitlines() if line.strip()) or head.splitlines()[0]
    if frames:
        text += f" (wasm backtrace: {'; '.join(frames[:4])}{'; ...' if len(frames) > 4 else ''})"
    return text


def context_address(store: wasmtime.Store) -> int:
    # Not ctypes.cast: it stores the pointer object in its own `_objects`, a reference cycle per
    # Store that only the cyclic garbage collector frees (a full pass stalls the whole process).
    return ctypes.c_void_p.from_buffer(store._context()).value or 0


def address(obj: Any) -> int:
    """The C pointer a wasmtime object (Linker, Component, ...) wraps, as an int."""
    return ctypes.c_void_p.from_buffer(obj.ptr()).value or 0


class Instantiator:
    """Instantiates one component with one linker, straight through the C API: the package's
    `Linker.instantiate` re-reads both pointers and wraps them on every call."""

    def __init__(self, linker: Linker, component: Component) -> None:
        self._keep = (linker, component)  # they own what the addresses point at
        self._linker = address(linker)
        self._component = address(component)

    def __call__(self, store: wasmtime.Store, state: Any) -> Instance:
        """Instantiate with `state` bound (start-up code may call host functions)."""
        raw = ffi.wasmtime_component_instance_t()
        with bound_state(state):
            error = c.linker_instantiate(self._linker, context_address(store), self._component,
                                         ctypes.addressof(raw))
            if error:
                host_error = take_host_error()
                message = c.take_error(error)
                kind = "busy" if is_exhausted(message) else "instantiate"
                raise Trap(f"instantiation failed: {message}", kind=kind, host_error=host_error)
        return Instance._from_raw(raw)


class GuestFunc:
    """One exported function of a component, callable on any instance of it (thread-safe)."""

    def __init__(self, component: Component, engine: wasmtime.Engine, interface: str | None, name: str,
                 fty: FuncType, resources: ResourceIds) -> None:
        outer = component.get_export_index(interface) if interface else None
        if interface and outer is None:
            raise LookupError(f"component does not export {interface}")
        index = component.get_export_index(name, outer)
        if index is None:
            raise LookupError(f"component does not export {name} in {interface}")
        self.label = f"{interface}#{name}" if interface else name
        self._index = index  # owns what _index_at points at
        self._index_at = address(index)
        _, _, self._lowers, self._lift = compile_signature(fty, resources)

    def call(self, store: wasmtime.Store, instance: Instance, state: Any, *args: Any) -> Any:
        ctx = context_address(store)
        func = ffi.wasmtime_component_func_t()
        if not c.instance_get_func(ctypes.addressof(instance._instance), ctx, self._index_at,
                                   ctypes.addressof(func)):
            raise LookupError(f"{self.label} is not a function")
        n = len(args)
        if n != len(self._lowers):
            raise TypeError(f"{self.label} takes {len(self._lowers)} arguments, got {n}")
        params = (c.Val * n)()
        for i, (lower, arg) in enumerate(zip(self._lowers, args, strict=True)):
            lower(ctx, arg, params[i])
        result = c.Val()
        want = 1 if self._lift is not None else 0
        try:
            with bound_state(state):
                error = c.func_call(ctypes.addressof(func), ctx, params, n,
                                    ctypes.byref(result) if want else None, want)
                host_error = take_host_error() if error else None
        finally:
            for i in range(n):
                c.val_delete(ctypes.byref(params[i]))
        if error:
            message = c.take_error(error)
            raise Trap(summarize(message), kind=classify(message, host_error),
                       host_error=host_error) from host_error
        if self._lift is None:
            return None
        try:
            return self._lift(ctx, result)
        finally:
            c.val_delete(ctypes.byref(result))
