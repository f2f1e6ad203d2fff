"""The threads guests run on: started on demand, reused, and resolved straight into asyncio futures.

`loop.run_in_executor` with a ThreadPoolExecutor creates a concurrent future, a work item and a
chained asyncio future per call, each with its own locks and callbacks: 5-7 % of the GIL-holding
samples on a small request (py-spy --gil). This pool hands the job over a C-implemented queue and resolves the
asyncio future with one `call_soon_threadsafe`. How many guests run at once is decided elsewhere
(per-app limiters, wasm/slots.py); the pool only has to avoid queueing, so it grows while every
thread is busy, and idle threads exit after `IDLE_EXIT` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_EXIT = 60.0
"""Seconds an idle thread waits for work before it exits."""

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class GuestThreads:
    def __init__(self, name: str = "tauon-guest", *, idle_exit: float = IDLE_EXIT) -> None:
        self._name = name
        self._idle_exit = idle_exit
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0
        self.threads = 0
        """Threads alive now."""

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on a pool thread; the returned future resolves on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # claimed: the next submitter will not count on this thread
                spawn = False
            else:
                self._started += 1
                self.threads += 1
                spawn = True
                number = self._started
        self._jobs.put((fn, args, loop, future))
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}_{number}", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                fn, args, loop, future = self._jobs.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody claimed this thread: it may go
                        self._idle -= 1
                        self.threads -= 1
                        return
                continue  # claimed just now: its job is on the way
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # delivered to the awaiting request, never lost here
                error = exc
            # Idle before the result is out: a caller that submits again as soon as it has the
            # result must find this thread rather than start another.
            with self._lock:
                self._idle += 1
            _deliver(loop, future, result, error)
            del fn, args, loop, future, result, error


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
             exc: BaseException | None) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_resolve, future, result, exc)


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
