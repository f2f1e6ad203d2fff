"""Calling one component export per request on a fresh Store and instance (Spin's lifecycle, §3.7),
and `ComponentExecutor`, the base the component executors share (linker, host configuration, close).

Also the trial instantiation done when an executor is built, so a component that cannot be
instantiated (a missing import, a trap in its start-up code) fails the load, not the first request.
"""

from __future__ import annotations

from typing import Any, Protocol

import wasmtime
from wasmtime.component import Component, ComponentInstanceType, FuncType

from tauon.app.plan import Limits
from tauon.executors.base import ExecutorSetup, GuestExecutor
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.component.guest import GuestFunc, Instantiator, Trap
from tauon.wasm.component.host import bound_state
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.guest import RuntimeGuestFunc
from tauon.wasm.runtime.guest import instantiate as runtime_instantiate
from tauon.wasm.runtime.instance import RuntimeComponent


class GuestCallable(Protocol):
    label: str

    def call(self, store: wasmtime.Store, instance: Any, state: Any, *args: Any) -> Any: ...


class GuestRunner(Protocol):
    """How an executor instantiates its component and calls its exports: through wasmtime's component
    API (`WasmtimeRunner`) or tauon's own component runtime (`TauonRunner`, `--component-runtime
    tauon`). Both raise `Trap` with the same kinds."""

    name: str

    def instantiate(self, store: wasmtime.Store, state: Any) -> Any: ...

    def func(self, interface: str, name: str) -> GuestCallable: ...


class WasmtimeRunner:
    name = "wasmtime"

    def __init__(self, component: Component, engine: wasmtime.Engine, linked: LinkedComponent) -> None:
        self._component = component
        self._engine = engine
        self._linked = linked
        self.instantiate = Instantiator(linked.linker, component)

    def func(self, interface: str, name: str) -> GuestCallable:
        return export_func(self._component, self._engine, interface, name, self._linked)


class TauonRunner:
    name = "tauon"

    def __init__(self, component: RuntimeComponent) -> None:
        self.component = component

    def instantiate(self, store: wasmtime.Store, state: Any) -> Any:
        return runtime_instantiate(self.component, store, state)

    def func(self, interface: str, name: str) -> GuestCallable:
        return RuntimeGuestFunc(self.component, interface, name)


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
                 config: HostConfig, runner: GuestRunner | None = None) -> None:
        super().__init__(setup)
        self._component = component
        self._linked = linked
        self._config = config
        self._runner = runner or WasmtimeRunner(component, setup.engine.engine, linked)

    def _oneshot(self, interface: str, name: str) -> OneShot:
        """Calls of the export `interface#name`, each on a fresh Store and instance."""
        return OneShot(runner=self._runner, engine=self._engine, limits=self._limits,
                       func=self._runner.func(interface, name))

    def close(self) -> None:
        self._config.close()  # pooled outbound connections; compiled code goes with the generation


class OneShot:
    def __init__(self, *, runner: GuestRunner, engine: WasmEngine, limits: Limits,
                 func: GuestCallable) -> None:
        self._runner = runner
        self._engine = engine
        self._limits = limits
        self._func = func

    def call(self, state: HostState, *args: Any) -> Any:
        """Worker thread: instantiate, call, release the request's resources. Raises Trap."""
        store = new_store(self._engine, self._limits)
        try:
            instance = self._runner.instantiate(store, state)
            return self._func.call(store, instance, state, *args)
        finally:
            with bound_state(state):
                state.finish()
            del store


def new_store(engine: WasmEngine, limits: Limits) -> wasmtime.Store:
    """A fresh Store for one call of a component under the app's limits."""
    return limited_store(engine.engine, memory_limit=limits.max_memory,
                         deadline_ticks=engine.deadline_ticks(limits.request_timeout))


def trial_instantiate(engine: WasmEngine, runner: GuestRunner, config: HostConfig, limits: Limits,
                      extensions: dict[str, Any] | None = None) -> None:
    """Instantiate once in a throw-away Store. Raises Trap (kind 'instantiate' or the start-up trap)."""
    state = HostState(config, timeout=limits.request_timeout, extensions=extensions)
    store = new_store(engine, limits)
    try:
        runner.instantiate(store, state)
    finally:
        with bound_state(state):
            state.finish()
        del store


__all__ = ["ComponentExecutor", "GuestRunner", "OneShot", "TauonRunner", "Trap", "WasmtimeRunner",
           "export_func", "new_store", "trial_instantiate"]
