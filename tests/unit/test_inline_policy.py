"""When a wasi:http guest may run on the event loop (tauon.executors.inline): pure logic."""

from __future__ import annotations

import pytest

from tauon.executors import inline
from tauon.executors.inline import (
    BACKOFF,
    FAST_RUN,
    SAMPLE_EVERY,
    SLOW_HINT,
    WARMUP,
    InlinePolicy,
)


def warmed(cpu: float) -> InlinePolicy:
    policy = InlinePolicy(eligible=True)
    for _ in range(WARMUP):
        assert not policy.wanted()  # measured on threads first
        assert policy.measures(inline=False)
        policy.record(cpu, inline=False)
    return policy


def on_loop(cpu: float, thread_cpu: float | None = None) -> InlinePolicy:
    """Warmed up on threads, then through the loop's own warm-up at `cpu` a run."""
    policy = warmed(cpu if thread_cpu is None else thread_cpu)
    for _ in range(WARMUP):
        assert policy.wanted() and policy.measures(inline=True)  # every warm-up run is measured
        policy.record(cpu, inline=True)
    return policy


def test_fast_pure_guests_run_inline_after_warmup() -> None:
    assert warmed(FAST_RUN / 4).wanted()
    assert on_loop(FAST_RUN / 4).wanted()
    assert not on_loop(FAST_RUN * 2).wanted()
    assert not warmed(SLOW_HINT * 2).wanted()  # too slow on threads to try on the loop at all


def test_the_loop_measures_for_itself_what_threads_overstate() -> None:
    """Runs on threads read dearer (the GIL at every host call): a guest over the limit there still
    warms up on the loop, and the loop's first run replaces the threads' estimate."""
    policy = warmed(FAST_RUN * 3)
    assert policy.wanted()
    policy.record(FAST_RUN / 4, inline=True)
    assert policy.average == pytest.approx(FAST_RUN / 4)
    assert on_loop(FAST_RUN / 4, thread_cpu=FAST_RUN * 3).wanted()


def test_ineligible_guests_never_run_inline() -> None:
    policy = InlinePolicy(eligible=False)
    for _ in range(WARMUP * 4):
        policy.record(FAST_RUN / 100, inline=False)
    assert not policy.wanted()


def test_a_slower_phase_moves_the_guest_back_to_threads() -> None:
    policy = on_loop(FAST_RUN / 4)
    for _ in range(40):
        policy.record(FAST_RUN * 3, inline=True)
    assert not policy.wanted()
    for _ in range(80):
        policy.record(FAST_RUN / 10, inline=True)
    assert policy.wanted()


def test_an_abandoned_run_backs_off_for_a_while() -> None:
    policy = on_loop(FAST_RUN / 4)
    policy.abandoned()
    assert [policy.wanted() for _ in range(BACKOFF)] == [False] * BACKOFF
    assert policy.wanted()


def test_runs_on_the_loop_are_sampled_and_runs_on_threads_measured_only_while_warming_up() -> None:
    policy = on_loop(FAST_RUN / 4)
    assert [policy.measures(inline=True) for _ in range(3 * SAMPLE_EVERY)].count(True) == 3
    assert not policy.measures(inline=False)  # a thread run reads dearer: it must not steer
    assert not InlinePolicy(eligible=False).measures(inline=False)


def test_a_guest_over_the_limit_is_probed_on_the_loop_and_comes_back_when_fast() -> None:
    policy = on_loop(FAST_RUN * 2)
    wanted = [policy.wanted() for _ in range(3 * inline.PROBE_EVERY)]
    assert wanted.count(True) == 3 and wanted[inline.PROBE_EVERY - 1]  # one probe in inline.PROBE_EVERY
    assert policy.measures(inline=True)  # every probe is measured
    for _ in range(40):  # probes that found it fast
        policy.record(FAST_RUN / 10, inline=True)
    assert policy.wanted()
