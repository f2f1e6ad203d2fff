"""The per-call state lifting and lowering work against: the component instance's memory, its
`realloc`, its handle table, and the call's borrow scope."""

from __future__ import annotations

from collections.abc import Callable

from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope, HandleTable
from tauon.wasm.canon.memory import GuestMemory

Realloc = Callable[[int, int, int, int], int]
"""The component's `cabi_realloc(old_ptr, old_size, align, new_size) -> ptr`, as a Python callable
(e.g. a wasmtime core function bound to its store). Its result may be a signed i32; it is masked."""


class CallContext:
    """What one lift or lower needs besides the value. Cheap to create; the call adapters (calls.py)
    make their own with a fresh `BorrowScope` when a function's type has borrows."""

    __slots__ = ("handles", "memory", "realloc", "scope")

    def __init__(self, memory: GuestMemory | None = None, realloc: Realloc | None = None,
                 handles: HandleTable | None = None, scope: BorrowScope | None = None) -> None:
        self.memory = memory
        self.realloc = realloc
        self.handles = handles
        self.scope = scope

    def with_scope(self, scope: BorrowScope) -> CallContext:
        return CallContext(self.memory, self.realloc, self.handles, scope)

    def mem(self) -> GuestMemory:
        memory = self.memory
        if memory is None:
            raise CanonTrap("this value needs linear memory, but the function's canonical options name "
                            "no memory")
        return memory

    def table(self) -> HandleTable:
        if self.handles is None:
            raise CanonTrap("this value holds a resource handle, but no handle table was given")
        return self.handles

    def borrow_scope(self) -> BorrowScope:
        if self.scope is None:
            raise CanonTrap("a borrowed handle crossed outside of a call (no borrow scope)")
        return self.scope

    def reallocate(self, old_ptr: int, old_size: int, align: int, new_size: int, what: str) -> int:
        """Call the component's realloc and check what it returned: aligned, and the whole new range
        inside memory (re-read after the call, which may have grown it)."""
        realloc = self.realloc
        if realloc is None:
            raise CanonTrap(f"lowering {what} needs the component's realloc, but the function's canonical "
                            "options name none")
        ptr = realloc(old_ptr, old_size, align, new_size) & 0xFFFFFFFF
        memory = self.mem()
        memory.refresh()
        if ptr % align:
            raise CanonTrap(f"realloc returned 0x{ptr:x} for {what}, not aligned to {align}")
        memory.check(ptr, new_size, f"realloc result for {what}")
        return ptr

    def allocate(self, align: int, size: int, what: str) -> int:
        return self.reallocate(0, 0, align, size, what)
