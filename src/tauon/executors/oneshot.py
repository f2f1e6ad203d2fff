"""Calling one component export per request on a fresh Store and instance (Spin's lifecycle, §3.7),
and `ComponentExecutor`, the base the component executors share (linker, host configuration, close).

Also the trial instantiation done when an executor is built, so a component that cannot be
instantiated (a missing import, a trap in its start-up code) fails the load, not the first request.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from wasmtime.component import Component, ComponentInstanceType, FuncType

from tauon.app.plan import Limits
from tauon.executors.base import ExecutorSetup, GuestExecutor
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.component.guest import GuestFunc, Trap, instantiate
from tauon.wasm.component.host import bound_state
from tauon.wasm.engine import WasmEngine, limited_store


def export_func(component: Component, engine: wasmtime.Engine, interface: str, name: str,
                linked: LinkedComponent) -> GuestFunc:
    """The exported function `interface#name`, with converters compiled once."""
    iface = component.type.exports(engine)[interface].ty
    if not isinstance(iface, ComponentInstanceType):
        raise TypeError(f"export {interface} is not an interface")
    fty = iface.exports(engine)[name].ty
    if not isinstance(fty, FuncType):
        raise TypeError(f"{interface}#{name} is not a function")
    return GuestFunc(component, engine, interface, name, fty, linked.resources.find)


class ComponentExecutor(GuestExecutor):
    """An executor of a compiled component: its linker and host configuration, shared by its calls."""

    def __init__(self, setup: ExecutorSetup, *, component: Component, linked: LinkedComponent,
                 config: HostConfig) -> None:
        super().__init__(setup)
        self._component = component
        self._linked = linked
        self._config = config

    def _oneshot(self, interface: str, name: str) -> OneShot:
        """Calls of the export `interface#name`, each on a fresh Store and instance."""
        func = export_func(self._component, self._engine.engine, interface, name, self._linked)
        return OneShot(component=self._component, linked=self._linked, engine=self._engine,
                       limits=self._limits, func=func)

    def close(self) -> None:
        self._config.close()  # pooled outbound connections; compiled code goes with the generation


class OneShot:
    def __init__(self, *, component: Component, linked: LinkedComponent, engine: WasmEngine,
                 limits: Limits, func: GuestFunc) -> None:
        self._component = component
        self._linked = linked
        self._engine = engine
        self._limits = limits
        self._func = func

    def call(self, state: HostState, *args: Any) -> Any:
        """Worker thread: instantiate, call, release the request's resources. Raises Trap."""
        store = new_store(self._engine, self._limits)
        try:
            instance = instantiate(self._linked.linker, store, self._component, state)
            return self._func.call(store, instance, state, *args)
        finally:
            with bound_state(state):
                state.finish()
            del store


def new_store(engine: WasmEngine, limits: Limits) -> wasmtime.Store:
    """A fresh Store for one call of a component under the app's limits."""
    return limited_store(engine.engine, memory_limit=limits.max_memory,
                         deadline_ticks=engine.deadline_ticks(limits.request_timeout))


def trial_instantiate(engine: WasmEngine, component: Component, linked: LinkedComponent, config: HostConfig,
                      limits: Limits, extensions: dict[str, Any] | None = None) -> None:
    """Instantiate once in a throw-away Store. Raises Trap (kind 'instantiate' or the start-up trap)."""
    state = HostState(config, timeout=limits.request_timeout, extensions=extensions)
    store = new_store(engine, limits)
    try:
        instantiate(linked.linker, store, component, state)
    finally:
        with bound_state(state):
            state.finish()
        del store


__all__ = ["ComponentExecutor", "OneShot", "Trap", "export_func", "new_store", "trial_instantiate"]
