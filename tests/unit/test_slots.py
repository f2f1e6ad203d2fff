"""Run slots: how many guests execute at once, lent out while a guest blocks (wasm/slots.py)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.slots import SHORT_RUN, Pace, RunSlots, SlotHold

WAIT = 10.0  # generous bound on every hand-off; none of these tests measures speed


def test_a_slot_is_held_while_running_and_returned_after() -> None:
    slots = RunSlots(2)
    hold = SlotHold()
    assert slots.busy == 0 and not hold.holding
    with slots.running(hold):
        assert slots.busy == 1 and hold.holding
    assert slots.busy == 0 and not hold.holding
    assert slots.call(hold, lambda a, b: a + b, 2, 3) == 5
    assert slots.busy == 0


def test_a_guest_that_cannot_get_a_slot_runs_anyway_after_its_patience() -> None:
    slots = RunSlots(1, patience=0.05)
    inside = threading.Event()
    leave = threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with slots.running(SlotHold()):
            inside.set()
            leave.wait(WAIT)

    def second() -> None:
        hold = SlotHold()
        with slots.running(hold):
            seen["holding"] = hold.holding
            seen["busy"] = slots.busy

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(WAIT)
    b = threading.Thread(target=second)
    b.start()
    b.join(WAIT)
    assert not b.is_alive()  # it ran although the only slot stayed taken
    assert seen == {"holding": False, "busy": 1}
    leave.set()
    a.join(WAIT)
    assert slots.busy == 0


def test_a_blocked_guest_lends_its_slot_and_takes_it_back() -> None:
    slots = RunSlots(1, patience=WAIT)
    lent = threading.Event()
    other_done = threading.Event()
    seen: dict[str, object] = {}

    def blocker() -> None:
        hold = SlotHold()
        with slots.running(hold):
            with hold.blocked():
                seen["holding while blocked"] = hold.holding
                lent.set()
                other_done.wait(WAIT)
            seen["holding after"] = hold.holding
            seen["busy after"] = slots.busy

    def other() -> None:
        hold = SlotHold()
        with slots.running(hold):
            seen["other holding"] = hold.holding
        other_done.set()

    a = threading.Thread(target=blocker)
    a.start()
    assert lent.wait(WAIT)
    b = threading.Thread(target=other)
    b.start()
    b.join(WAIT)
    a.join(WAIT)
    # With patience WAIT, `other` could only hold the slot because the blocked guest lent it.
    assert seen == {"holding while blocked": False, "other holding": True, "holding after": True,
                    "busy after": 1}
    assert slots.busy == 0


def test_a_guest_that_cannot_take_its_slot_back_goes_on_without_one() -> None:
    slots = RunSlots(1, patience=0.05)
    lent = threading.Event()
    taken = threading.Event()
    release = threading.Event()
    seen: dict[str, object] = {}

    def blocker() -> None:
        hold = SlotHold()
        with slots.running(hold):
            with hold.blocked():
                lent.set()
                assert taken.wait(WAIT)
            seen["holding after"] = hold.holding
        seen["busy at end"] = slots.busy  # the other guest's slot, never released by this one

    def taker() -> None:
        with slots.running(SlotHold()):
            taken.set()
            release.wait(WAIT)

    a = threading.Thread(target=blocker)
    a.start()
    assert lent.wait(WAIT)
    b = threading.Thread(target=taker)
    b.start()
    a.join(WAIT)
    release.set()
    b.join(WAIT)
    assert seen == {"holding after": False, "busy at end": 1}
    assert slots.busy == 0


def test_blocked_outside_a_guest_is_a_no_op() -> None:
    hold = SlotHold()
    with hold.blocked():
        assert not hold.holding


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RunSlots(0)
    assert RunSlots().size >= 1


def test_pace_is_a_moving_average_of_cpu_time() -> None:
    pace = Pace()
    assert pace.average is None and not pace.short  # unknown: guests take slots
    pace.record(0.0002)
    assert pace.short
    for _ in range(60):
        pace.record(0.004)  # the component turned CPU-heavy: it goes back to taking slots
    assert pace.average is not None and pace.average > SHORT_RUN and not pace.short


def test_short_guests_skip_the_slots_and_long_ones_take_them() -> None:
    slots = RunSlots(1)
    run = slots.runner()
    seen: list[bool] = []

    def spin(hold: SlotHold, seconds: float) -> None:
        seen.append(hold.holding)
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    for _ in range(2):  # first run: nothing known yet, so it holds a slot; CPU-heavy: still a slot
        hold = SlotHold()
        run(hold, spin, hold, 0.003)
    assert seen == [True, True]
    quick = slots.runner()  # another executor, its own pace
    for _ in range(2):  # the second is known to be short: no slot
        hold = SlotHold()
        quick(hold, spin, hold, 0.0)
    assert seen[2:] == [True, False]
    assert slots.busy == 0


def test_a_request_blocked_in_a_host_call_lends_the_slot_of_its_host_state() -> None:
    """HostState.wait_until lends the slot its executor's runner recorded in `state.slot` (no lookup
    by thread): another request's guest gets the only slot meanwhile, and the first takes it back."""
    slots = RunSlots(1, patience=WAIT)
    state = HostState(HostConfig("app/c", logging.getLogger("test")), timeout=WAIT)
    ready = threading.Event()
    seen: dict[str, object] = {}

    def waiting_guest() -> None:
        seen["holding before"] = state.slot.holding
        seen["ready"] = state.wait_until(ready.is_set, "a test wait")
        seen["holding after"] = state.slot.holding

    def other_guest() -> None:
        seen["other holding"] = other.holding
        with state.cond:  # as the event loop wakes a guest blocked in a host call
            ready.set()
            state.cond.notify_all()

    other = SlotHold()
    a = threading.Thread(target=slots.call, args=(state.slot, waiting_guest))
    a.start()
    deadline = time.monotonic() + WAIT
    while slots.busy == 1 and time.monotonic() < deadline:  # until the waiting guest lends it
        time.sleep(0.001)
    b = threading.Thread(target=slots.call, args=(other, other_guest))
    b.start()
    b.join(WAIT)
    a.join(WAIT)
    assert seen == {"holding before": True, "ready": True, "other holding": True, "holding after": True}
    assert slots.busy == 0


def _queued(slots: RunSlots, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while len(slots._waiters) < count:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.001)


def test_slots_go_to_waiters_in_arrival_order_and_newcomers_queue_behind_them() -> None:
    """A freed slot passes to the longest waiter; a guest arriving while others wait may not take it
    first (under load such barging left old waiters losing until their patience ran out)."""
    slots = RunSlots(1, patience=WAIT)
    order: list[str] = []
    release = {name: threading.Event() for name in "abc"}
    assert slots._take(0.0)  # the first guest's slot

    def guest(name: str) -> None:
        with slots.running(SlotHold()):
            order.append(name)
            release[name].wait(WAIT)

    threads = []
    for count, name in enumerate("abc", start=1):
        threads.append(threading.Thread(target=guest, args=(name,)))
        threads[-1].start()
        _queued(slots, count)
    assert not slots._take(0.0)  # a newcomer finds waiters: it queues, it does not take the slot
    slots._give()  # the first guest's slot, straight to "a"
    for name in "abc":
        release[name].set()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["a", "b", "c"]
    assert slots.busy == 0 and not slots._waiters


def test_a_waiter_that_gives_up_leaves_the_queue_and_the_count_right() -> None:
    slots = RunSlots(1, patience=0.05)
    assert slots._take(0.0)
    assert not slots._take(0.05)  # timed out: no slot, and no stale waiter left behind
    assert not slots._waiters and slots.busy == 1
    slots._give()
    assert slots.busy == 0 and slots._take(0.0)
    slots._give()


def test_a_waiter_keeps_its_place_past_its_patience_while_slots_turn_over() -> None:
    """Patience counts from the last freed slot, not from the waiter's arrival: guests in a queue that
    moves all get their turn in the limit, however long the queue."""
    patience, turn = 0.5, 0.15
    slots = RunSlots(1, patience=patience)
    assert slots._take(0.0)
    held: list[bool] = []
    waited: list[float] = []

    def guest() -> None:
        hold = SlotHold()
        start = time.monotonic()
        with slots.running(hold):
            waited.append(time.monotonic() - start)
            held.append(hold.holding)
            time.sleep(turn)

    threads = [threading.Thread(target=guest) for _ in range(6)]
    for count, thread in enumerate(threads, start=1):
        thread.start()
        _queued(slots, count)
    time.sleep(turn)
    slots._give()
    for thread in threads:
        thread.join(WAIT)
    assert held == [True] * 6
    assert max(waited) > patience  # the last ones waited longer than the patience, in the limit
    assert slots.busy == 0
