"""A client made on its first use.

PostgreSQL's pools import psycopg and its C extension (45 ms): every daemon start paid for it, and every
app generation that opened its services, though few apps reach PostgreSQL. Made here, only the apps that
do pay, when they first do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FirstUse(Generic[T]):
    """`get()` makes the value once (thread-safe: guests call from their own threads)."""

    __slots__ = ("_lock", "_made", "_make")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    self._made = self._make()
                made = self._made
        return made

    @property
    def made(self) -> T | None:
        """The value if it has been made (to close it), else None."""
        return self._made
