"""Link a component run by tauon's own component runtime (`tauon.wasm.runtime`) against tauon's host
interfaces: the same `ALL_INTERFACES`, version rules and trapping of what tauon lacks as the wasmtime
path (`linker.py`), resolved per imported function instead of defined on a wasmtime linker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tauon.hostif.linker import ALL_INTERFACES, UnimplementedImport, interface_for, merge
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.runtime.instance import HostImpl
from tauon.wasm.runtime.plan import HostFunc


def _trap(label: str, why: str) -> HostImpl:
    def trap(state: HostState, *args: Any) -> None:
        raise UnimplementedImport(f"{label} {why}")

    return trap


class RuntimeLinks:
    """`HostLinks` over tauon's host interfaces. `implemented` / `trapping` list '<import>#<function>'
    names as they are resolved (the executor builder logs the trapping ones)."""

    def __init__(self, interfaces: Iterable[HostInterface] = ALL_INTERFACES) -> None:
        self._by_name = merge(interfaces)
        self.implemented: list[str] = []
        self.trapping: list[str] = []

    def impl(self, func: HostFunc) -> HostImpl:
        if func.interface is None:
            self.trapping.append(func.func)
            return _trap(func.func, "is not provided by tauon")
        label = f"{func.interface}#{func.func}"
        iface = interface_for(self._by_name, func.interface)
        impl = iface.funcs.get(func.func) if iface is not None else None
        if impl is None:
            self.trapping.append(label)
            return _trap(label, "is not implemented by tauon" if iface is not None
                         else "is not provided by tauon")
        self.implemented.append(label)
        return impl

    def drop(self, state: Any, rep: int) -> None:
        """The guest dropped its last handle to a host resource."""
        state.table.drop(rep)
