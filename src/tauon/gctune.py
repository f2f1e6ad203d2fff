"""The cyclic garbage collector in a serving process: keep its full passes short.

A full (generation 2) collection walks every tracked object in the process and stops every request
while it does. A daemon's heap is mostly what its imports made (~90,000 objects: uvicorn, wasmtime's
bindings, tauon), which never become garbage; under load the collector still walked all of it about
once every 1,500 requests per process, for 40-110 ms each on a busy 2-core machine (measured with
`gc.callbacks` while bench/bench_components.py's wrk ran on the C component), which is what put
tauon's p99 far above its p50. `gc.freeze()` once the imports are done moves those objects out of the
collector's sight, so later full passes walk only what was made since.

Only the start-up heap is frozen: a frozen object is never collected, and objects made later (app
generations, which retire) must stay collectable. Requests themselves should make no reference cycles,
so that reference counting frees them (HostState, context_address say how).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what start-up left over and freeze the rest; call once the serving code is imported
    (before the event loop starts). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.enable()  # the CLI turns it off while importing
    return gc.get_freeze_count()
