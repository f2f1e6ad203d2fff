"""The watchdog that bounds blocking database calls, and `call_before` (connecting)."""

from __future__ import annotations

import threading
import time

import pytest

from tauon.services.watchdog import LateResult, Watchdog, call_before


def test_guard_fires_only_for_a_block_still_running_at_its_deadline() -> None:
    dog = Watchdog()
    fired = threading.Event()
    with dog.guard(time.monotonic() + 0.05, fired.set):
        assert fired.wait(10), "a block past its deadline must be cut"
    quiet = threading.Event()
    with dog.guard(time.monotonic() + 0.2, quiet.set):
        pass  # finished in time
    with dog.guard(time.monotonic() + 0.3, lambda: None):
        time.sleep(0.4)  # a later deadline that did pass: the earlier, finished guard stayed quiet
    assert not quiet.is_set()


def test_finished_guards_leave_nothing_behind() -> None:
    dog = Watchdog()
    for _ in range(1000):
        with dog.guard(time.monotonic() + 30, lambda: None):
            pass
    assert (len(dog._heap), len(dog._live)) == (0, 0)


def test_call_before_returns_raises_or_hands_a_late_result_over() -> None:
    assert call_before(time.monotonic() + 5, lambda: 7, lambda v: None) == 7
    with pytest.raises(ZeroDivisionError):
        call_before(time.monotonic() + 5, lambda: 1 // 0, lambda v: None)
    release, discarded = threading.Event(), threading.Event()
    got: list[int] = []

    def slow() -> int:
        release.wait(10)
        return 5

    with pytest.raises(LateResult):
        call_before(time.monotonic() + 0.05, slow, lambda v: (got.append(v), discarded.set()))
    release.set()
    assert discarded.wait(10) and got == [5]
