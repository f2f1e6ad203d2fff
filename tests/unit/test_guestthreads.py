"""The guest thread pool (executors/guestthreads.py): results, errors, reuse, growth, idle exit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tauon.executors.guestthreads import GuestThreads


def test_results_and_errors_reach_the_awaiting_task() -> None:
    pool = GuestThreads("t")

    async def main() -> None:
        assert await pool.run(lambda a, b: a * b, 6, 7) == 42
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)
        names = {await pool.run(lambda: threading.current_thread().name) for _ in range(20)}
        assert names == {"t_1"}  # one job at a time: the same thread is reused

    asyncio.run(main())
    assert pool.threads == 1


def test_the_pool_grows_instead_of_queueing() -> None:
    pool = GuestThreads("g")
    release = threading.Event()
    arrived = threading.Semaphore(0)

    def job() -> str:
        arrived.release()
        assert release.wait(10)
        return threading.current_thread().name

    async def main() -> set[str]:
        futures = [pool.run(job) for _ in range(5)]
        for _ in range(5):  # all five run at once: none waits behind another
            assert await asyncio.to_thread(arrived.acquire, True, 10)
        release.set()
        return set(await asyncio.gather(*futures))

    assert len(asyncio.run(main())) == 5
    assert pool.threads == 5


def test_idle_threads_exit() -> None:
    pool = GuestThreads("i", idle_exit=0.05)

    async def main() -> None:
        await asyncio.gather(*(pool.run(time.sleep, 0.05) for _ in range(3)))

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.threads == 0


def test_a_cancelled_wait_does_not_break_the_thread() -> None:
    pool = GuestThreads("c")
    started = threading.Event()
    release = threading.Event()

    def slow() -> int:
        started.set()
        release.wait(10)
        return 1

    async def main() -> None:
        future = pool.run(slow)
        await asyncio.to_thread(started.wait, 10)
        future.cancel()
        release.set()
        assert await pool.run(lambda: 2) == 2  # the thread that ran `slow` is still usable

    asyncio.run(main())
