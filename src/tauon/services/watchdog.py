"""One thread that runs a callback when a deadline passes, for blocking client calls that have no timeout
of their own (a database server that accepts and never answers). One thread for all of them: a timer
thread per statement would cost more than a fast query."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Watchdog:
    _shared: Watchdog | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._sleep_until = float("inf")
        """The deadline the watchdog thread sleeps until: only an earlier one needs to wake it (a
        wake-up per call would cost a thread switch per statement)."""

    @classmethod
    def shared(cls) -> Watchdog:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = Watchdog()
            return cls._shared

    @contextlib.contextmanager
    def guard(self, deadline: float, fire: Callable[[], None]) -> Iterator[None]:
        """Call `fire` (on the watchdog's thread) if the block is still running at `deadline` (monotonic)."""
        token = self.arm(deadline, fire)
        try:
            yield
        finally:
            self.disarm(token)

    def arm(self, deadline: float, fire: Callable[[], None]) -> int:
        """`guard` without the context manager, for per-statement use (a generator per call costs more
        than the statement's own client code): call `fire` at `deadline` unless `disarm`ed first."""
        token = next(self._ids)
        with self._cond:
            heapq.heappush(self._heap, (deadline, token, fire))
            self._live.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tauon-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._sleep_until:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._live.discard(token)
            # drop finished entries from the top, so the heap holds about as many as are running
            heap = self._heap
            while heap and heap[0][1] not in self._live:
                heapq.heappop(heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._sleep_until = float("inf")
                    self._cond.wait()
                    continue
                deadline, token, fire = self._heap[0]
                now = time.monotonic()
                if now < deadline:
                    self._sleep_until = deadline
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
            fire()


class LateResult(Exception):
    """`call_before` gave up at its deadline; the call goes on in the background."""


def call_before(deadline: float, fn: Callable[[], T], discard: Callable[[T], None]) -> T:
    """`fn()` on a helper thread, waited for until `deadline` (monotonic). A result that arrives later
    is handed to `discard` (e.g. closes a connection nobody waits for any more). Raises LateResult, or
    whatever `fn` raised. For connecting, which the client libraries bound only in whole seconds."""
    done = threading.Event()
    box: list[Any] = []
    lock = threading.Lock()
    abandoned = [False]

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller (or dropped if it left)
            box.append((False, exc))
        with lock:
            late = abandoned[0]
        done.set()
        if late and box[0][0]:
            discard(box[0][1])

    threading.Thread(target=run, name="tauon-connect", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        with lock:
            abandoned[0] = not done.is_set()
        if abandoned[0]:
            raise LateResult
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
