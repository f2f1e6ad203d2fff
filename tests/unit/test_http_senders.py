"""The outbound HTTP sender threads (hostif/http_senders.py): a finished thread takes the next job,
one left idle exits after its wait, and a job handed over just as a wait ends still runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tauon.hostif.http_senders import Senders


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def wait_idle(senders: Senders, count: int) -> None:
    wait_for(lambda: senders.idle == count)


def test_a_finished_thread_runs_the_next_job() -> None:
    senders = Senders(name="test-sender", idle_seconds=10)
    seen: list[str] = []
    done = threading.Event()

    def job(i: int) -> None:
        seen.append(threading.current_thread().name + str(threading.get_ident()))
        if i == 4:
            done.set()

    for i in range(5):
        senders.run(job, i)
        wait_for(lambda: senders.idle == 1)  # each job finishes before the next is handed over
    assert done.wait(5)
    assert len(set(seen)) == 1  # one thread ran all five


def test_concurrent_jobs_get_their_own_threads_and_idle_ones_exit() -> None:
    senders = Senders(name="test-sender-exit", idle_seconds=0.2)
    gate = threading.Event()
    started = threading.Semaphore(0)

    def job() -> None:
        started.release()
        gate.wait(5)

    for _ in range(3):
        senders.run(job)
    for _ in range(3):
        assert started.acquire(timeout=5)  # all three run at once: none waited for another
    gate.set()
    wait_for(lambda: senders.idle == 3)
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "test-sender-exit"])
    assert senders.idle == 0


def test_a_job_promised_as_the_wait_ends_still_runs() -> None:
    for _ in range(50):  # hand jobs over around the moment the idle wait times out
        senders = Senders(name="test-sender-race", idle_seconds=0.01)
        ran = threading.Event()
        senders.run(lambda: None)
        wait_idle(senders, 1)
        time.sleep(0.009)
        senders.run(ran.set)
        assert ran.wait(5)
