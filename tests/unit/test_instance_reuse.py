"""executors/reuse.py: which kept WASIp3 instance a request gets, when instances are dropped, and the
hand-over of a finishing instance (a fake clock; real asyncio for the waits)."""

from __future__ import annotations

import asyncio

import pytest

from tauon.app.plan import InstanceReuse
from tauon.executors import reuse
from tauon.executors.reuse import InstanceCache, Kept


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def kept(name: str, served: int = 1) -> Kept:
    return Kept(store=None, instance=name, state=None, served=served)


def make(max_requests: int = 128, idle_timeout: float = 1.0) -> tuple[InstanceCache, list[str], Clock]:
    dropped: list[str] = []
    clock = Clock()
    cache = InstanceCache(InstanceReuse(max_requests=max_requests, idle_timeout=idle_timeout),
                          lambda ks: dropped.extend(k.instance for k in ks), clock=clock)
    return cache, dropped, clock


def test_the_most_recently_used_instance_is_taken_first() -> None:
    cache, dropped, _ = make()
    cache.give(kept("a"))
    cache.give(kept("b"))
    assert [cache.take().instance, cache.take().instance] == ["b", "a"]  # type: ignore[union-attr]
    assert cache.take() is None
    assert dropped == []


def test_an_instance_that_served_its_share_is_dropped_not_kept() -> None:
    cache, dropped, _ = make(max_requests=3)
    cache.give(kept("a", served=2))
    cache.give(kept("b", served=3))
    assert dropped == ["b"]
    assert cache.take().instance == "a"  # type: ignore[union-attr]


def test_reuse_count_1_disables_reuse() -> None:
    assert not make(max_requests=1)[0].enabled
    assert make(max_requests=2)[0].enabled


def test_instances_idle_past_the_timeout_are_dropped_and_the_next_expiry_reported() -> None:
    cache, dropped, clock = make(idle_timeout=1.0)
    cache.give(kept("old"))
    clock.now += 0.6
    cache.give(kept("new"))
    assert cache.expire() == pytest.approx(101.0)
    clock.now += 0.5  # old: idle 1.1 s; new: 0.5 s
    assert cache.expire() == pytest.approx(101.6)
    assert dropped == ["old"]
    clock.now += 1.0
    assert cache.take() is None
    assert dropped == ["old", "new"]
    assert cache.expire() is None


def test_close_drops_the_idle_and_everything_given_back_later() -> None:
    cache, dropped, _ = make()
    cache.give(kept("a"))
    cache.close()
    assert dropped == ["a"]
    cache.give(kept("late"))
    assert dropped == ["a", "late"]
    assert cache.take() is None


@pytest.fixture
def long_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-over wait far longer than any test: a waiter that returns was woken, not timed out."""
    monkeypatch.setattr(reuse, "HANDOFF_WAIT", 60.0)


def test_a_finishing_instance_is_handed_over_to_a_waiting_request(long_wait: None) -> None:
    async def run() -> Kept | None:
        cache, _, _ = make()
        cache.finishing = 1
        asyncio.get_running_loop().call_later(0.01, cache.give, kept("f"))
        got = await cache.take_or_wait()
        assert len(cache) == 0  # handed over, never idle
        return got

    got = asyncio.run(run())
    assert got is not None and got.instance == "f"


def test_without_a_finishing_instance_nobody_waits(long_wait: None) -> None:
    async def run() -> tuple[Kept | None, float]:
        cache, _, _ = make()
        loop = asyncio.get_running_loop()
        started = loop.time()
        got = await cache.take_or_wait()
        return got, loop.time() - started

    got, waited = asyncio.run(run())
    assert got is None and waited < 30


def test_a_finishing_instance_that_is_not_kept_releases_the_waiter_at_once(long_wait: None) -> None:
    async def run() -> tuple[Kept | None, float]:
        cache, _, _ = make()
        cache.finishing = 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        loop.call_soon(cache.wake_one)
        got = await cache.take_or_wait()
        return got, loop.time() - started

    got, waited = asyncio.run(run())
    assert got is None and waited < 30


def test_a_waiter_gives_up_after_the_handoff_wait_and_a_late_instance_is_kept() -> None:
    async def run() -> tuple[Kept | None, InstanceCache]:
        cache, _, _ = make()
        cache.finishing = 1
        got = await cache.take_or_wait()
        cache.give(kept("late"))
        return got, cache

    got, cache = asyncio.run(run())
    assert got is None
    assert cache.take().instance == "late"  # type: ignore[union-attr]


def test_a_waiter_cancelled_as_an_instance_is_handed_over_never_loses_it(long_wait: None) -> None:
    """Cancelled just as it is handed an instance, the waiter either returns it (wait_for may finish
    the hand-over) or puts it back: either way it is not lost."""
    async def run() -> tuple[Kept | None, InstanceCache]:
        cache, _, _ = make()
        cache.finishing = 1
        waiting = asyncio.ensure_future(cache.take_or_wait())
        await asyncio.sleep(0)
        cache.give(kept("f"))
        waiting.cancel()
        try:
            return await waiting, cache
        except asyncio.CancelledError:
            return None, cache

    got, cache = asyncio.run(run())
    found = got if got is not None else cache.take()
    assert found is not None and found.instance == "f"
