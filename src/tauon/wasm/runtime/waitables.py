"""Waitables and waitable sets of the component-model async ABI (Concurrency.md, CanonicalABI.md
"Waitable State"), for tauon's component runtime.

A waitable (a subtask, a stream or future end held by the guest) lives in the instance's handle
table. Instead of the specification's stored "pending event" closures, a waitable here answers
`ready()` (would an event be delivered now?) and `take_event()` (deliver it, on the guest's thread,
where it may write guest memory). Other threads (host I/O, the HTTP server draining a body) change the
state a waitable looks at and then `wake` the instance's `Waker`, which the event loop sleeps on; so
guest memory is only ever touched by the thread running the guest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from enum import IntEnum

from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.slots import SlotHold


class EventCode(IntEnum):
    NONE = 0
    SUBTASK = 1
    STREAM_READ = 2
    STREAM_WRITE = 3
    FUTURE_READ = 4
    FUTURE_WRITE = 5
    TASK_CANCELLED = 6


Event = tuple[int, int, int]
"""(event code, handle index, payload) as the callback receives them."""

BLOCKED = 0xFFFF_FFFF


class GuestTimeout(Exception):
    """The guest waited past its deadline (the executor turns it into the request's timeout)."""


class Waker:
    """Wakes one instance's event loop or blocked guest thread from any thread (a `threading.Event`
    with a clear-then-check protocol: the waiter clears it, looks for what it waits for, and only then
    sleeps). `hold`: the run slot of the request the instance serves (wasm/slots.py), lent to other
    guests while this one sleeps."""

    __slots__ = ("_event", "hold")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.hold: SlotHold | None = None

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def sleep(self, deadline: float | None) -> None:
        """Sleep until woken (releasing the GIL); GuestTimeout past `deadline` (a `time.monotonic()`
        value)."""
        hold = self.hold
        if hold is None:
            self._sleep(deadline)
            return
        with hold.blocked():
            self._sleep(deadline)

    def _sleep(self, deadline: float | None) -> None:
        if deadline is None:
            self._event.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._event.wait(remaining):
            raise GuestTimeout("the guest waited past its deadline")


class Waitable:
    """Something a guest can wait on. `index` is its handle-table index (events name it)."""

    __slots__ = ("index", "wset")

    def __init__(self) -> None:
        self.index = 0
        self.wset: WaitableSet | None = None

    def ready(self) -> bool:
        raise NotImplementedError

    def take_event(self) -> Event:
        raise NotImplementedError

    def join(self, wset: WaitableSet | None) -> None:
        if self.wset is not None:
            self.wset.elems.remove(self)
        self.wset = wset
        if wset is not None:
            wset.elems.append(self)

    def forget(self) -> None:
        """Leave any set (when the guest drops this waitable)."""
        self.join(None)

    def release(self) -> None:
        """The instance is going away: let go of what refers back to it."""


class WaitableSet:
    __slots__ = ("elems", "num_waiting")

    def __init__(self) -> None:
        self.elems: list[Waitable] = []
        self.num_waiting = 0

    def ready_one(self) -> Waitable | None:
        for w in self.elems:
            if w.ready():
                return w
        return None

    def wait(self, waker: Waker, deadline: float | None) -> Event:
        """Block the guest's thread until one member has an event; deliver it."""
        self.num_waiting += 1
        try:
            while True:
                waker.clear()
                found = self.ready_one()
                if found is not None:
                    return found.take_event()
                waker.sleep(deadline)
        finally:
            self.num_waiting -= 1

    def poll(self) -> Event:
        found = self.ready_one()
        return found.take_event() if found is not None else (EventCode.NONE, 0, 0)

    def drop(self) -> None:
        if self.elems:
            raise CanonTrap(f"waitable-set.drop of a set that still has {len(self.elems)} member(s)")
        if self.num_waiting:
            raise CanonTrap("waitable-set.drop of a set a task is waiting on")

    def __iter__(self) -> Iterator[Waitable]:
        return iter(list(self.elems))
