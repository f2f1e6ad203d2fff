"""The call shape the executors use (`wasm/component/guest.py`), over tauon's own component runtime:
`instantiate(component, store, state)` and `RuntimeGuestFunc.call(store, instance, state, *args)`,
failing with the same `Trap` and `kind`s."""

from __future__ import annotations

from typing import Any

import wasmtime

from tauon.wasm.canon.calls import ExportCall
from tauon.wasm.canon.errors import CanonTrap, CanonUnsupported
from tauon.wasm.canon.handles import BorrowScope
from tauon.wasm.component.guest import Trap, classify, summarize
from tauon.wasm.pool import is_exhausted
from tauon.wasm.runtime import corefn
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
        """Raises LookupError (no such export) or UnsupportedComponent (a type it cannot convert)."""
        lifted = component.plan.export_func(interface, name)
        self.label = f"{interface}#{name}" if interface else name
        self._lifted = lifted
        self._context = component.context_index(lifted.opts)
        try:
            self._convert = ExportCall(lifted.type, lifted.opts.string_encoding)  # type: ignore[arg-type]
        except CanonUnsupported as exc:
            raise UnsupportedComponent(f"the export {self.label}: {exc}") from None
        core = self._convert.core
        self._call = corefn.GuestCall(core.params, core.results)
        post = lifted.opts.post_return
        self._post = (post, corefn.GuestCall(core.results, ())) if post is not None else None

    def call(self, store: wasmtime.Store, instance: RuntimeInstance, state: Any, *args: Any) -> Any:
        convert = self._convert
        instance.state = state
        scope = BorrowScope()
        cx = instance.context(self._lifted.opts, self._context).with_scope(scope)
        with running(instance):
            try:
                flat = convert.lower_params(cx, args)
                results = self._call.call(instance.ctx, instance.core_func(self._lifted.core), *flat)
                value = convert.lift_result(cx, results)
                if self._post is not None:
                    ref, post = self._post
                    with instance.leave.closed():
                        post.call(instance.ctx, instance.core_func(ref), *results)
                scope.end()
                return value
            except corefn.CoreTrap as outer:
                exc = corefn.innermost(outer)
                message, host_error = str(exc), exc.host_error
                # A canonical ABI rule the guest broke in a host call traps the guest, as the spec says.
                kind = "trap" if isinstance(host_error, CanonTrap) else classify(message, host_error)
                raise Trap(summarize(message), kind=kind, host_error=host_error) from host_error
            except CanonTrap as exc:
                raise Trap(f"{self.label}: {exc}", kind="trap") from exc
