"""tauon.gctune: the start-up heap is frozen out of the cyclic collector's full passes."""

from __future__ import annotations

import gc

from tauon.gctune import freeze_startup_heap


def test_freeze_moves_the_heap_out_of_the_collectors_sight() -> None:
    tracked_before = len(gc.get_objects())
    try:
        frozen = freeze_startup_heap()
        # Not equal: another thread of the test process (a portal's, a pooled connection's) may free
        # a frozen object meanwhile, and a frozen object freed leaves the count; none can join it.
        assert frozen >= gc.get_freeze_count() >= tracked_before // 2
        assert len(gc.get_objects()) < tracked_before // 10  # what a full pass still walks
    finally:
        gc.unfreeze()  # the rest of the test session keeps the ordinary collector
