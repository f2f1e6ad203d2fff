"""The shared state of one stream or future: a bounded buffer between its writable and readable ends.

Either end may be held by the host (`async_host`'s readers and writers, used from any thread) or by a
guest (`streams.GuestEnd`, in a handle table). Where the specification hands elements over in one
rendezvous between the two ends' buffers, tauon keeps up to `capacity` elements in between: a writer
that outruns its reader waits (the host blocks, a guest's copy stays pending), and a reader that
outruns its writer waits the same way. The buffer holds bytes for `stream<u8>` (moved as slices,
never per byte) and lifted values for other element types.

Every change notifies the condition (host ends wait on it) and wakes the event loops of the guest
instances holding an end (`wakers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tauon.wasm.canon.types import Prim, ValType
from tauon.wasm.runtime.waitables import Waker

DEFAULT_CAPACITY = 64 * 1024
"""Elements (bytes, for `stream<u8>`) buffered between a stream's ends before its writer waits."""


class Untyped:
    """The element type of a host-made stream or future whose exact type the host leaves to the
    guest: it takes the type of the guest's end it is handed over as (`Pipe.adopt`)."""

    def __repr__(self) -> str:
        return "T"


UNTYPED: Any = Untyped()


class Pipe:
    """One stream (`kind` 'stream') or future ('future') of element type `elem` (None: no payload)."""

    __slots__ = ("adapt", "capacity", "cond", "data", "elem", "has_value", "is_bytes", "kind",
                 "reader_gone", "wakers", "writer_gone")

    def __init__(self, kind: str, elem: ValType | None, capacity: int = DEFAULT_CAPACITY) -> None:
        self.kind = kind
        self.elem = elem
        self.is_bytes = kind == "stream" and elem == Prim("u8")
        self.data: bytearray | list[Any] = bytearray() if self.is_bytes else []
        self.capacity = 1 if kind == "future" else max(1, capacity)
        self.cond = threading.Condition(threading.Lock())
        self.writer_gone = False
        self.reader_gone = False
        self.has_value = False  # a future's value was written (it may already have been read)
        self.wakers: list[Waker] = []
        self.adapt: Callable[[Any], Any] | None = None
        """For a future between host and guest: converts its value as it crosses, on the guest's
        thread (e.g. a resource the value carries, pushed into or taken from the guest's host state,
        which only that thread may touch)."""

    def adopt(self, elem: ValType | None) -> None:
        """Give an UNTYPED pipe the element type of the guest end it is handed over as."""
        with self.cond:
            if self.elem is UNTYPED:
                self.elem = elem
                self.is_bytes = self.kind == "stream" and elem == Prim("u8")
                if self.is_bytes:
                    self.data = bytearray(self.data)

    def notify(self) -> None:
        """Call with `cond` held, after any change."""
        self.cond.notify_all()
        for waker in self.wakers:
            waker.wake()

    def room(self) -> int:
        return self.capacity - len(self.data)

    # -- host-side blocking helpers (with `cond` held)

    def wait_for(self, predicate: Any, timeout: float | None, what: str) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{what} timed out after {timeout} s")
            self.cond.wait(remaining)

    def close_writer(self) -> None:
        with self.cond:
            if not self.writer_gone:
                self.writer_gone = True
                self.notify()

    def close_reader(self) -> None:
        with self.cond:
            if not self.reader_gone:
                self.reader_gone = True
                self.data.clear()  # nobody will read it: let a blocked writer see the drop at once
                self.notify()

    def type_name(self) -> str:
        return f"{self.kind}<{self.elem}>" if self.elem is not None else self.kind
