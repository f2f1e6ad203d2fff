"""wasi:clocks 0.3 (and its 2026-03-15 release candidate), as Spin 4 links it from wasmtime-wasi.

0.3 changed the shapes: `monotonic-clock` has `get-resolution` (a duration in nanoseconds) and the
async `wait-until` / `wait-for` instead of pollables (completed by one timer thread,
`p3_streams.TIMERS`); `wall-clock` became `system-clock`, whose `now` is an `instant` (seconds as
s64, nanoseconds) and whose resolution is a duration in nanoseconds.
"""

from __future__ import annotations

import threading
import time

from tauon.hostif.clocks import monotonic_now, monotonic_resolution
from tauon.hostif.p3_streams import TIMERS
from tauon.hostif.registry import HostInterface, HostTrap, p3_name
from tauon.hostif.state import HostState
from tauon.wasm.runtime.async_host import Deferred

SYSTEM_RESOLUTION_NS = 1000
"""What tauon's wasi 0.2 wall clock reports too (1 µs)."""
PAST_DEADLINE = 1.0
"""A wait reaching past the request's deadline completes this long after it: the guest has been
stopped by then, and the timer does not hold the request's memory for the rest of the wait."""


MAX_PENDING_WAITS = 1024
"""Waits one request may have pending at once (each holds a timer entry until it fires)."""
_WAITS = "p3-pending-waits"


class _Pending:
    """A request's count of pending waits (the timer thread decrements it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def fired(self) -> None:
        with self.lock:
            self.count -= 1


def wait_until(state: HostState, when_ns: int) -> Deferred:
    """`wait-until: async func(when: mark)`: completes once the monotonic clock reaches `when`
    (at once if it has). The guest keeps running meanwhile if it lowered the call async."""
    when = min(when_ns / 1e9, state.deadline + PAST_DEADLINE)
    if when <= time.monotonic():
        return TIMERS.at(when)  # complete already: no timer
    pending: _Pending = state.extensions.setdefault(_WAITS, _Pending())
    with pending.lock:
        if pending.count >= MAX_PENDING_WAITS:
            raise HostTrap(f"the guest has more than {MAX_PENDING_WAITS} waits pending in one request")
        pending.count += 1
    return TIMERS.at(when, pending.fired)


def wait_for(state: HostState, duration_ns: int) -> Deferred:
    """`wait-for: async func(how-long: duration)`."""
    return wait_until(state, time.monotonic_ns() + duration_ns)


def system_now(state: HostState) -> tuple[int, int]:
    """`instant`: seconds since the epoch (s64, negative before 1970) and nanoseconds (< 1e9)."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return (seconds, nanoseconds)


def system_resolution(state: HostState) -> int:
    return SYSTEM_RESOLUTION_NS


INTERFACES = [
    HostInterface(p3_name("wasi:clocks/monotonic-clock"), {
        "now": monotonic_now,
        "get-resolution": monotonic_resolution,
        "wait-until": wait_until,
        "wait-for": wait_for,
    }),
    HostInterface(p3_name("wasi:clocks/system-clock"), {
        "now": system_now,
        "get-resolution": system_resolution,
    }),
]
