"""The call shape the executors use (`wasm/component/guest.py`), over tauon's own component runtime:
`instantiate(component, store, state)` and `RuntimeGuestFunc.call(store, instance, state, *args)`,
failing with the same `Trap` and `kind`s."""

from __future__ import annotations

from typing import Any

import wasmtime

from tauon.wasm.component.guest import Trap, classify, summarize
from tauon.wasm.pool import is_exhausted
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.abi import CanonTrap
from tauon.wasm.runtime.instance import RuntimeComponent, RuntimeInstance, running
from tauon.wasm.runtime.model import UnsupportedComponent


def instantiate(component: RuntimeComponent, store: wasmtime.Store, state: Any) -> RuntimeInstance:
    """A new instance in `store` (start-up code may call host functions with `state`)."""
    try:
        return component.instantiate(store, state)
    except corefn.CoreTrap as exc:
        kind = "busy" if is_exhausted(exc) else "instantiate"
        raise Trap(f"instantiation failed: {summarize(str(exc))}", kind=kind,
                   host_error=exc.host_error) from exc
    except (CanonTrap, UnsupportedComponent) as exc:
        raise Trap(f"instantiation failed: {exc}", kind="instantiate") from exc


class RuntimeGuestFunc:
    """One exported function of a component, callable on any instance of it (thread-safe)."""

    def __init__(self, component: RuntimeComponent, interface: str | None, name: str) -> None:
        lifted = component.plan.export_func(interface, name)
        self.label = f"{interface}#{name}" if interface else name
        self._lifted = lifted
        self._adapter = component.adapters.lift(lifted.type)
        post = lifted.opts.post_return
        self._post = (post, corefn.GuestCall(self._adapter.core_results, ())) if post is not None else None

    def call(self, store: wasmtime.Store, instance: RuntimeInstance, state: Any, *args: Any) -> Any:
        adapter = self._adapter
        instance.state = state
        cx = instance.context(self._lifted.opts)
        with running(instance):
            try:
                flat, scope = adapter.lower_args(cx, args)
                results = adapter.call.call(instance.ctx, instance.core_func(self._lifted.core), *flat)
                value = adapter.lift_result(cx, results)
                if self._post is not None:
                    ref, call = self._post
                    call.call(instance.ctx, instance.core_func(ref), *results)
                if scope is not None:
                    scope.end()
                return value
            except corefn.CoreTrap as exc:
                message = str(exc)
                raise Trap(summarize(message), kind=classify(message, exc.host_error),
                           host_error=exc.host_error) from exc.host_error
            except CanonTrap as exc:
                raise Trap(f"{self.label}: {exc}", kind="trap") from exc
