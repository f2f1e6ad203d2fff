"""How many guests execute wasm at once, across all apps: a soft limit sized to the CPUs.

Each request's guest runs in its own worker thread. When more guest threads are runnable than there
are CPUs, they do not finish sooner: they take turns, and every host call then fights the event loop
and the other guests for the GIL, so the machine spends its time switching threads (perf: a quarter
of all CPU time in the scheduler with 16 concurrent JS requests on 2 cores). A guest therefore takes
a run slot before it starts and gives it back while it is blocked in a host call (waiting for the
request body, a slow client, an outbound response), so waiting guests never hold CPUs they are not
using.

Which slot a request's guest holds is recorded in its `SlotHold`, which lives on the request's host
state: the executor's runner fills it and a host call that blocks lends it (`hold.blocked()`).

Slots go to waiting guests in arrival order: a freed slot is handed to the longest waiter, and a guest
arriving while others wait queues behind them. Without that, under load a newly arriving guest took the
slot a woken waiter had not yet run to claim, so old waiters kept losing: p99 was 4x p50 with 64
connections.

The limit is soft: when no slot has been freed for `patience` (every holder is a long run, or a guest
spinning until its request timeout), waiting guests run anyway, so such guests slow the others down
but never stop them. While slots keep turning over, a guest keeps its place in the queue however long
it waits: running it beside the holders would only share the same CPUs among more threads (measured
with a 50 ms bound per waiter instead: under 64 connections most guests ran outside the limit, and the
CPU per request rose by a fifth).

Guests that only ever need a fraction of a millisecond of CPU (a small C component) skip the slots:
for them the hand-off costs more than the contention it saves (measured: +25 % requests/s). Each
executor keeps a `Pace`, the moving average of its runs' CPU time, to tell.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tauon.cpus import usable_cpus

T = TypeVar("T")

PATIENCE = 0.05
"""Seconds without any slot freed after which waiting guests run without one."""

SHORT_RUN = 0.001
"""CPU seconds per run under which a component's guests skip the run slots."""


class Pace:
    """Moving average of the CPU time one component's guest runs take (no lock: a lost update
    between threads only makes the average a little staler)."""

    WEIGHT = 0.1

    def __init__(self) -> None:
        self.average: float | None = None

    def record(self, seconds: float) -> None:
        avg = self.average
        self.average = seconds if avg is None else avg + (seconds - avg) * self.WEIGHT

    @property
    def short(self) -> bool:
        return self.average is not None and self.average < SHORT_RUN


class SlotHold:
    """The run slot one request's guest holds, if any. One per request, kept on its host state
    (HostState.slot, RequestContext.slot) and handed to `RunSlots.call`, so a host call that blocks
    can lend it (`blocked`) without looking anything up by thread."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: RunSlots | None = None

    @property
    def holding(self) -> bool:
        """Whether this request's guest holds a run slot now."""
        return self.slots is not None

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Around a blocking wait inside a host call: lend the slot, if any, to another guest."""
        lent = self.lend()
        try:
            yield
        finally:
            self.reclaim(lent)

    def lend(self) -> RunSlots | None:
        """`blocked` without the context manager, for per-statement calls (its generator costs more
        than the lending): give the slot, if any, to another guest; hand the result to `reclaim`."""
        slots = self.slots
        if slots is not None:
            self.slots = None
            slots._give()
        return slots

    def reclaim(self, lent: RunSlots | None) -> None:
        """After `lend`: take a slot again (unless the slots stall, see `RunSlots._take`)."""
        if lent is not None and lent._take(lent.patience):
            self.slots = lent


def default_slots(processes: int = 1) -> int:
    """The CPUs tauon may use, shared out among its serving processes (rounded up): each process
    gets about as many connections as the others (server/acceptor.py), so each gets its share of
    the CPUs too. One slot per CPU in every process let two busy guests per process compete for
    two cores on a 2-core box and lengthened the tail (README, issue 17 part 3)."""
    return max(1, -(-usable_cpus() // max(1, processes)))


class RunSlots:
    def __init__(self, slots: int | None = None, *, patience: float = PATIENCE) -> None:
        self.size = default_slots() if slots is None else slots
        if self.size < 1:
            raise ValueError("run slots must be at least 1")
        self.patience = patience
        # A count and a queue of waiters under one plain lock: a host call that blocks gives its slot
        # back and takes it again per wait (per statement of a database client), and
        # threading.Semaphore's Python-level condition costs several us a pair.
        self._lock = threading.Lock()
        self._free = self.size
        self._waiters: deque[threading.Lock] = deque()
        """Each waiting guest's own lock, held until a slot is handed to it; oldest first."""
        self._turned = time.monotonic()
        """When a slot was last freed (or handed over)."""

    @property
    def busy(self) -> int:
        """Slots held right now."""
        return self.size - self._free

    def runner(self) -> Callable[..., Any]:
        """For one executor: `runner(hold, fn, *args)` runs `fn(*args)` under this limit, recording
        the slot in the request's `hold`, with the executor's own `Pace` deciding whether its guests
        are short enough to skip the slots."""
        return functools.partial(self.call, pace=Pace())

    def _take(self, patience: float) -> bool:
        """Take a slot, waiting in line while slots keep being freed; False once none has been freed
        for `patience` seconds (the caller then runs without one)."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        wait = patience
        while not baton.acquire(timeout=wait):
            with self._lock:
                idle = time.monotonic() - self._turned
                if idle >= patience:
                    try:
                        self._waiters.remove(baton)
                    except ValueError:
                        return True  # handed over just as the wait timed out: the slot is ours
                    return False
            wait = patience - idle
        return True  # handed over by `_give`

    def _give(self) -> None:
        with self._lock:
            self._turned = time.monotonic()
            if self._waiters:
                self._waiters.popleft().release()  # the slot passes straight to the oldest waiter
            else:
                self._free += 1

    @contextmanager
    def running(self, hold: SlotHold) -> Iterator[None]:
        """Hold a slot (unless the slots stall, see `_take`) in `hold` while its request's guest runs."""
        got = self._take(self.patience)
        previous, hold.slots = hold.slots, (self if got else None)
        try:
            yield
        finally:
            holding = hold.slots is self  # not after a `blocked()` that could not get it back
            hold.slots = previous
            if holding:
                self._give()

    def call(self, hold: SlotHold, fn: Callable[..., T], *args: Any, pace: Pace | None = None) -> T:
        """`fn(*args)` holding a slot in `hold` (unless `pace` says its runs are short): what
        executors hand to their worker threads."""
        if pace is None:
            with self.running(hold):
                return fn(*args)
        started = time.thread_time()
        try:
            if pace.short:
                return fn(*args)
            with self.running(hold):
                return fn(*args)
        finally:
            pace.record(time.thread_time() - started)
