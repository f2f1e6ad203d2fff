"""wasi:clocks 0.2: monotonic-clock (nanoseconds, timer pollables) and wall-clock."""

from __future__ import annotations

import time

from tauon.hostif.io import now_pollable
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState


def monotonic_now(state: HostState) -> int:
    return time.monotonic_ns()


def monotonic_resolution(state: HostState) -> int:
    return 1


def subscribe_instant(state: HostState, when_ns: int) -> int:
    return now_pollable(state, when_ns / 1e9)


def subscribe_duration(state: HostState, duration_ns: int) -> int:
    return now_pollable(state, time.monotonic() + duration_ns / 1e9)


def wall_now(state: HostState) -> tuple[int, int]:
    ns = time.time_ns()
    return (ns // 1_000_000_000, ns % 1_000_000_000)


def wall_resolution(state: HostState) -> tuple[int, int]:
    return (0, 1000)


INTERFACES = [
    HostInterface("wasi:clocks/monotonic-clock", {
        "now": monotonic_now,
        "resolution": monotonic_resolution,
        "subscribe-instant": subscribe_instant,
        "subscribe-duration": subscribe_duration,
    }),
    HostInterface("wasi:clocks/wall-clock", {"now": wall_now, "resolution": wall_resolution}),
]
