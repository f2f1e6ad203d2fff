"""wasi:clocks 0.3 (and its 2026-03-15 release candidate), as Spin 4 links it from wasmtime-wasi.

0.3 changed the shapes: `monotonic-clock` has `get-resolution` (a duration in nanoseconds) and the
async `wait-until` / `wait-for` instead of pollables; `wall-clock` became `system-clock`, whose `now`
is an `instant` (seconds as s64, nanoseconds) and whose resolution is a duration in nanoseconds.
"""

from __future__ import annotations

import time

from tauon.hostif.clocks import monotonic_now, monotonic_resolution
from tauon.hostif.registry import HostInterface, p3_name
from tauon.hostif.state import HostState

SYSTEM_RESOLUTION_NS = 1000
"""What tauon's wasi 0.2 wall clock reports too (1 µs)."""


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
    }),
    HostInterface(p3_name("wasi:clocks/system-clock"), {
        "now": system_now,
        "get-resolution": system_resolution,
    }),
]
