"""One thread that runs a callback when a deadline passes, for blocking client calls that have no timeout
of their own (a database server that accepts and never answers). One thread for all of them: a timer
thread per statement would cost more than a fast query."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
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
        self._firing: int | None = None
        """The entry whose callback runs now: `disarm` of it waits until the callback returns."""

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
        """After this returns, the entry's callback has finished or will never run: a caller may close
        what the callback would act on (a connection cut at a statement's end would otherwise hit the
        next statement, or a socket that has since reused the descriptor)."""
        with self._cond:
            self._live.discard(token)
            while self._firing == token and threading.current_thread() is not self._thread:
                self._cond.wait()
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
                self._firing = token
            try:
                fire()
            finally:
                with self._cond:
                    self._firing = None
                    self._cond.notify_all()


class SocketCut:
    """A client connection's socket, held by tauon so the watchdog's thread can cut a blocked call. The
    client library may close its own descriptor at any moment (libpq does on a lost connection, PyMySQL
    on an error), and that number may then be reused by another thread's new connection; this holds its
    own descriptor for the same socket, so a cut can only ever reach the connection it was made for.
    `close` must go with the connection's own close (the socket stays open while either is held)."""

    def __init__(self, fd: int) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = socket.socket(fileno=os.dup(fd))
        self._running = False
        self.cut_down = False
        """Cut by `cut` or `cut_running`: what the client library reports next is the cut."""

    def begin(self) -> None:
        """A call starts that `cut_running` may cut."""
        with self._lock:
            self._running = True

    def end(self) -> None:
        with self._lock:
            self._running = False

    def cut_running(self) -> None:
        """Cut the connection if a call is between `begin` and `end` (the watchdog, at a deadline armed
        for a handle rather than for each call)."""
        with self._lock:
            if self._running:
                self._cut()

    def cut(self) -> None:
        with self._lock:
            self._cut()

    def _cut(self) -> None:
        if self._sock is not None:
            self.cut_down = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


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


GUEST_MARGIN = 0.25
"""Seconds before the request's deadline at which a blocked call is cut (see `cutoff`)."""


def cutoff(deadline: float) -> float:
    """When a blocked call is cut: a little before the request's deadline, so the guest still gets the
    error and can answer before its time is up."""
    return deadline - GUEST_MARGIN
