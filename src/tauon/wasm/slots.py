"""How many guests execute wasm at once, across all apps: a soft limit sized to the CPUs.

Each request's guest runs in its own worker thread. When more guest threads are runnable than there
are CPUs, they do not finish sooner: they take turns, and every host call then fights the event loop
and the other guests for the GIL, so the machine spends its time switching threads (measured: a third
of all CPU time with 16 concurrent requests on 2 cores). A guest therefore takes a run slot before it
starts and gives it back while it is blocked in a host call (waiting for the request body, a slow
client, an outbound response), so waiting guests never hold CPUs they are not using.

The limit is soft: a guest that waits longer than `patience` for a slot runs anyway. A few guests
spinning until their request timeout can then slow the others down, but never stop them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

PATIENCE = 0.05
"""Seconds a guest waits for a run slot before it runs without one."""


class _Held(threading.local):
    slots: RunSlots | None = None


_held = _Held()


def default_slots() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class RunSlots:
    def __init__(self, slots: int | None = None, *, patience: float = PATIENCE) -> None:
        self.size = default_slots() if slots is None else slots
        if self.size < 1:
            raise ValueError("run slots must be at least 1")
        self.patience = patience
        self._sem = threading.Semaphore(self.size)
        self._count_lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        """Slots held right now."""
        return self._busy

    def _take(self, timeout: float) -> bool:
        if not self._sem.acquire(timeout=timeout):
            return False
        with self._count_lock:
            self._busy += 1
        return True

    def _give(self) -> None:
        with self._count_lock:
            self._busy -= 1
        self._sem.release()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Hold a slot (if one frees up within `patience`) while this thread runs a guest."""
        got = self._take(self.patience)
        previous, _held.slots = _held.slots, (self if got else None)
        try:
            yield
        finally:
            holding = _held.slots is self  # not after a `blocked()` that could not get it back
            _held.slots = previous
            if holding:
                self._give()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` holding a slot: what executors hand to their worker threads."""
        with self.running():
            return fn(*args)


def holding() -> bool:
    """Whether this thread holds a run slot now."""
    return _held.slots is not None


@contextmanager
def blocked() -> Iterator[None]:
    """Around a blocking wait inside a host call: lend this thread's slot, if any, to another guest."""
    slots = _held.slots
    if slots is None:
        yield
        return
    _held.slots = None
    slots._give()
    try:
        yield
    finally:
        if slots._take(slots.patience):
            _held.slots = slots
