"""What the WASI 0.3 and Spin 4 host interfaces share for component-model async values, over the
component runtime's host API (`tauon.wasm.runtime.async_host`).

- Streams and futures the host hands a guest with everything already known (key-value keys, SQLite
  rows, directory entries, a future's result): a pipe sized to its contents, written and closed
  before the host function returns, so no thread is needed and nothing waits.
- Streams the host produces or consumes over time (a file's bytes, the guest's stdout): a worker
  thread from a shared pool, bounded by the request's deadline (and, per request, by
  WORKERS_PER_REQUEST), since the guest cannot read or write them until the host function has
  returned.
- `Timers`: one thread completing `Deferred`s at their time (wasi:clocks `wait-for` / `wait-until`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tauon.hostif.http_senders import Senders
from tauon.hostif.state import HostState
from tauon.wasm.canon.types import ListType, Prim, ResultType, ValType
from tauon.wasm.runtime.async_host import Deferred, FutureReader, StreamReader, future, stream

U8 = Prim("u8")
STRING = Prim("string")
BYTES = ListType(U8)


def unit_result(err: ValType | None) -> ResultType:
    """`result<_, err>`, the element type of the futures that end a 0.3 stream."""
    return ResultType(None, err)


def stream_of(elem: ValType | None, items: Sequence[Any] | bytes) -> StreamReader:
    """A readable end carrying `items` and then its end."""
    reader, writer = stream(elem, capacity=max(1, len(items)))
    if items:
        writer.write(items)
    writer.close()
    return reader


def future_of(elem: ValType | None, value: Any) -> FutureReader:
    """A readable end of a future already holding `value`."""
    reader, writer = future(elem)
    writer.write(value)
    return reader


_workers = Senders(name="tauon-p3-host")
WORKERS_PER_REQUEST = 32
"""Streams one request may have a worker thread moving at once (files read, stdout/stderr streams):
each holds a thread (and a file a descriptor) until its reader or writer is done or the deadline."""
_SLOTS = "p3-stream-workers"


def run_worker(fn: Callable[..., None], *args: Any) -> None:
    """Run `fn(*args)` on a pooled thread (it must catch what it can and finish by the deadline)."""
    _workers.run(fn, *args)


def run_stream_worker(state: HostState, fn: Callable[..., None], *args: Any) -> bool:
    """`run_worker` within the request's WORKERS_PER_REQUEST; False (nothing started) past it."""
    slots: threading.BoundedSemaphore = state.extensions.setdefault(
        _SLOTS, threading.BoundedSemaphore(WORKERS_PER_REQUEST))
    if not slots.acquire(blocking=False):
        return False

    def bounded() -> None:
        try:
            fn(*args)
        finally:
            slots.release()

    _workers.run(bounded)
    return True


def remaining(deadline: float) -> float:
    """Seconds until `deadline` (monotonic), at least a millisecond: a read past it times out."""
    return max(0.001, deadline - time.monotonic())


class Timers:
    """Completes Deferreds at monotonic times, on one thread for the whole process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deferred, Callable[[], None] | None]] = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, fired: Callable[[], None] | None = None) -> Deferred:
        """A Deferred resolved (with None) once `time.monotonic()` reaches `when`; `fired()` is called
        just before (it must not block)."""
        deferred = Deferred()
        if when <= time.monotonic():
            if fired is not None:
                fired()
            deferred.resolve(None)
            return deferred
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._count), deferred, fired))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tauon-p3-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return deferred

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when = self._heap[0][0]
                now = time.monotonic()
                if when > now:
                    self._cond.wait(when - now)
                    continue
                _, _, deferred, fired = heapq.heappop(self._heap)
            if fired is not None:
                fired()
            deferred.resolve(None)


TIMERS = Timers()
