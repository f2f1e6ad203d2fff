"""The per-request table of host resources: guest handles map to `rep`s, `rep`s to Python objects."""

from __future__ import annotations

from typing import Any, TypeVar

from tauon.hostif.registry import HostTrap

T = TypeVar("T")


MAX_LIVE = 65_536
"""Host resources one request may hold at once (fields, streams, pollables, descriptors, ...)."""
MAX_FDS = 256
"""Open file descriptors (files, directories, sockets) one request may hold: the process's descriptors
are shared by every app, so one guest opening them in a loop must not starve the others."""


class ResourceTable:
    """Not thread-safe: only the thread running the guest touches it.

    Bounded: a push beyond MAX_LIVE resources, or beyond MAX_FDS descriptors (an item holding some
    says so with an `fds` attribute), releases the item and traps the request.
    """

    def __init__(self, max_live: int = MAX_LIVE, max_fds: int = MAX_FDS) -> None:
        self._items: dict[int, Any] = {}
        self._next = 1
        self._max_live = max_live
        self._max_fds = max_fds
        self.fds = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Any) -> int:
        fds = getattr(item, "fds", 0)
        if len(self._items) >= self._max_live or self.fds + fds > self._max_fds:
            _release(item)
            what = (f"{self._max_fds} open files, directories or sockets" if fds and
                    self.fds + fds > self._max_fds else f"{self._max_live} live host resources")
            raise HostTrap(f"the guest holds more than {what} in one request")
        self.fds += fds
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
        self.fds -= getattr(item, "fds", 0)
        return item

    def drop(self, rep: int) -> None:
        item = self._items.pop(rep, None)
        if item is not None:
            self.fds -= getattr(item, "fds", 0)
            _release(item)

    def close_all(self) -> None:
        """End of request: let every live resource release what it holds (pipes, connections)."""
        items, self._items = self._items, {}
        self.fds = 0
        for item in items.values():
            _release(item)


def _release(item: Any) -> None:
    close = getattr(item, "on_drop", None)
    if close is not None:
        close()
