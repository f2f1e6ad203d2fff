"""How long one pull may take: an overall deadline, and a minimum rate below which it has stalled.

A read timeout alone does not bound a pull: a registry that sends one byte every five seconds keeps
every read alive forever, holding a pull slot (and readiness) with it. Every byte a registry sends is
counted here; a pull that passes its deadline, or receives less than STALL_BYTES in STALL_WINDOW
seconds, fails with an error naming the limit. A read that is blocked when the deadline passes is cut
by closing its response from a timer thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Protocol

from tauon.errors import PullError

STALL_WINDOW = 30.0
STALL_BYTES = 1024
"""Less than this many bytes in STALL_WINDOW seconds while a body is still coming: stalled (as
curl's --speed-limit 1024 --speed-time 30)."""


class Closable(Protocol):
    def close(self) -> None: ...


class PullBudget:
    def __init__(self, seconds: float, *, stall_window: float = STALL_WINDOW,
                 stall_bytes: int = STALL_BYTES, error: type[PullError] = PullError) -> None:
        """`error`: the PullError subclass to raise (the client's RegistryUnreachable: a pull that
        cannot finish may fall back to a cached digest, like one whose registry is down)."""
        self.error = error
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.stall_window = stall_window
        self.stall_bytes = stall_bytes
        self.expired = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, what: str) -> None:
        if self.expired or self.remaining() <= 0:
            self.expired = True
            raise self.error(f"the pull did not finish within {self.seconds:.0f}s (while fetching {what})",
                            hint="the registry is too slow or stalled; raise --pull-deadline if it is "
                                 "merely slow")

    @contextlib.contextmanager
    def cutting(self, response: Closable) -> Iterator[None]:
        """Close `response` when the deadline passes, so a read blocked on a dribbling registry ends."""
        def expire() -> None:
            self.expired = True
            with contextlib.suppress(Exception):
                response.close()

        timer = threading.Timer(max(0.0, self.remaining()), expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def metered(self, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
        """Pass `chunks` on, failing the pull past the deadline or when the body stalls."""
        window_start = time.monotonic()
        window_bytes = 0
        for chunk in chunks:
            now = time.monotonic()
            window_bytes += len(chunk)
            if now - window_start >= self.stall_window:
                if window_bytes < self.stall_bytes:
                    raise self.error(
                        f"the registry stalled while sending {what}: {window_bytes} bytes in "
                        f"{now - window_start:.0f}s", hint="check the registry and the network path to it")
                window_start, window_bytes = now, 0
            self.check(what)
            yield chunk
