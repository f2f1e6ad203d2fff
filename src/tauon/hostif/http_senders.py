"""The threads outbound wasi:http requests run on (http_out.py), kept for the next request.

Each outbound request runs on its own thread, so the guest can poll, stream its body and time out
while the exchange blocks. Starting a thread per request cost ~30 us of CPU and, on a busy machine,
~0.4 ms before it ran (measured here); a thread that finished an exchange instead waits up to
`IDLE_SECONDS` for the next one. How many run at once stays bounded by http_out's slots.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

IDLE_SECONDS = 30.0
"""How long a finished sender thread waits for another request before it exits."""

_log = logging.getLogger(__name__)

Job = tuple[Callable[..., None], tuple[Any, ...]]


class Senders:
    def __init__(self, name: str = "tauon-http-out", idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._idle = 0
        """Threads waiting for a job and not yet promised one."""
        self._lock = threading.Lock()

    @property
    def idle(self) -> int:
        return self._idle

    def run(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on a waiting thread, or on a new one if none waits."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # promised: that thread takes this job even if its wait just ended
                self._jobs.put((fn, args))
                return
        threading.Thread(target=self._work, args=((fn, args),), name=self._name, daemon=True).start()

    def _work(self, job: Job) -> None:
        while True:
            fn, args = job
            try:
                fn(*args)
            except Exception:  # the job reports its own outcome; this only keeps the thread alive
                _log.exception("outbound HTTP sender failed")
            del fn, args, job  # hold nothing of the finished request while idle
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody promised us a job: leave
                        self._idle -= 1
                        return
                job = self._jobs.get()  # a job was promised as the wait ended: it is on its way
