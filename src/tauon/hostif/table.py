"""The per-request table of host resources: guest handles map to `rep`s, `rep`s to Python objects."""

from __future__ import annotations

from typing import Any, TypeVar

from tauon.hostif.registry import HostTrap

T = TypeVar("T")


class ResourceTable:
    """Not thread-safe: only the thread running the guest touches it."""

    def __init__(self) -> None:
        self._items: dict[int, Any] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Any) -> int:
        rep = self._next
        self._next += 1
        self._items[rep] = item
        return rep

    def get(self, rep: int, kind: type[T]) -> T:
        item = self._items.get(rep)
        if not isinstance(item, kind):
            raise HostTrap(f"handle {rep} is not a live {kind.__name__}")
        return item

    def take(self, rep: int, kind: type[T]) -> T:
        item = self.get(rep, kind)
        del self._items[rep]
        return item

    def drop(self, rep: int) -> None:
        item = self._items.pop(rep, None)
        close = getattr(item, "on_drop", None)
        if close is not None:
            close()

    def close_all(self) -> None:
        """End of request: let every live resource release what it holds (pipes, connections)."""
        items, self._items = self._items, {}
        for item in items.values():
            close = getattr(item, "on_drop", None)
            if close is not None:
                close()
