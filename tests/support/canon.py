"""Helpers for the canonical ABI's unit tests: a guest heap over a `BytesMemory` with a bump `realloc`
(as a component's cabi_realloc behaves: a fresh block, the old contents copied on growth), which
records its calls so tests can check the ones the specification makes."""

from __future__ import annotations

from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.handles import BorrowScope, HandleTable
from tauon.wasm.canon.memory import BytesMemory


class Heap:
    """A bump allocator over a growable BytesMemory. `calls` lists (old, old_size, align, new_size)."""

    def __init__(self, size: int = 1 << 16, start: int = 16, grow: bool = True) -> None:
        self.memory = BytesMemory(size)
        self.top = start
        self.grow = grow
        self.calls: list[tuple[int, int, int, int]] = []

    def realloc(self, old: int, old_size: int, align: int, new_size: int) -> int:
        self.calls.append((old, old_size, align, new_size))
        ptr = -(-self.top // align) * align
        self.top = ptr + new_size
        if self.grow and self.top > self.memory.size():
            self.memory.grow(self.top - self.memory.size() + 65536)
        keep = min(old_size, new_size)
        if old and keep and ptr + keep <= self.memory.size():
            self.memory.data[ptr:ptr + keep] = self.memory.data[old:old + keep]
        return ptr

    def context(self, handles: HandleTable | None = None, scope: BorrowScope | None = None) -> CallContext:
        table = handles if handles is not None else HandleTable()
        return CallContext(self.memory, self.realloc, table, scope)


def memory_context(data: bytes, handles: HandleTable | None = None,
                   scope: BorrowScope | None = None) -> CallContext:
    """A context over a memory holding exactly `data`, with no realloc."""
    return CallContext(BytesMemory(bytearray(data)), None, handles if handles is not None else HandleTable(),
                       scope)
