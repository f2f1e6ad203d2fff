"""Pull progress for humans: a bar on a terminal, periodic log lines otherwise (journald, files)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("tauon.pull")


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


class PullProgress:
    """A ProgressSink for one pull. Called from the pull's worker thread."""

    def __init__(self, app_id: str, reference: str, *, mode: str = "auto",
                 stream: TextIO | None = None, interval: float = 2.0) -> None:
        self.app_id = app_id
        self.reference = reference
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.interval = interval
        # Log mode waits one interval before the first line: quick (cached, local) pulls stay silent.
        self._last = time.monotonic() if mode != "bar" else 0.0
        self._logged = False
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, done_bytes: int, total_bytes: int, layers_done: int, layers_total: int) -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        finished = total_bytes > 0 and done_bytes >= total_bytes
        with self._lock:
            if self.mode == "bar":
                if now - self._last < 0.1 and not finished:
                    return
                self._last = now
                frac = done_bytes / total_bytes if total_bytes else 1.0
                width = 24
                filled = int(frac * width)
                bar = "#" * filled + "." * (width - filled)
                self.stream.write(
                    f"\r{self.app_id}: pulling [{bar}] {frac:4.0%} {_mb(done_bytes)}/{_mb(total_bytes)}"
                    f" layers {layers_done}/{layers_total}  "
                )
                self._drawn = True
                self.stream.flush()
                return
            if now - self._last < self.interval and not finished:
                return
            if finished and not self._logged:
                return  # fast pulls need no progress line
            self._last = now
            self._logged = True
            log.info("%s: pulling %s: %s of %s, %d/%d layers", self.app_id, self.reference,
                     _mb(done_bytes), _mb(total_bytes), layers_done, layers_total)

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False
