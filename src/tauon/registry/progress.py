"""Pull progress reporting: a sink protocol and a thread-safe, throttled tracker feeding it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("tauon.registry")


class ProgressSink(Protocol):
    def __call__(self, done_bytes: int, total_bytes: int, layers_done: int, layers_total: int) -> None: ...


class ProgressTracker:
    """Counts bytes and finished blobs; calls the sink at most every `interval` seconds, and always
    when a blob finishes. Blobs already in the cache count as done from the start."""

    def __init__(self, sink: ProgressSink | None, *, interval: float = 0.1) -> None:
        self._sink = sink
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self.total_bytes = 0
        self.done_bytes = 0
        self.layers_total = 0
        self.layers_done = 0

    def plan(self, sizes: list[int], cached: list[bool]) -> None:
        with self._lock:
            self.layers_total = len(sizes)
            self.total_bytes = sum(sizes)
            self.layers_done = sum(cached)
            self.done_bytes = sum(s for s, c in zip(sizes, cached, strict=True) if c)
        self._emit(force=True)

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.done_bytes += n
        self._emit(force=False)

    def blob_done(self) -> None:
        with self._lock:
            self.layers_done += 1
        self._emit(force=True)

    def _emit(self, *, force: bool) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self._interval:
                return
            self._last = now
            snapshot = (min(self.done_bytes, self.total_bytes), self.total_bytes,
                        self.layers_done, self.layers_total)
        try:
            self._sink(*snapshot)
        except Exception:
            # A broken progress display must not fail the pull; report it once and stop calling it.
            log.exception("progress reporting failed; continuing the pull without it")
            self._sink = None
