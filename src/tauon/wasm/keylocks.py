"""One lock per cache key, kept only while a thread holds or waits for it.

Compiles of the same artifact must not run twice at once, but a table of one lock per key ever seen
grows with every digest a long-running daemon compiles (each app update brings new ones). An entry
here counts its users and is dropped by the last one out, so the table holds only keys in use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class KeyedLocks:
    """Thread-safe: `with locks.hold(key):` serializes the holders of one key, not of others."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Keys held or waited for right now."""
        with self._guard:
            return len(self._entries)

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]
