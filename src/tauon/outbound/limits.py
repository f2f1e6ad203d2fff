"""What every outbound client shares: its error, the per-app connection bound, and the time limits.

The request's deadline governs every wait (as it does for outbound HTTP): a connect, a reply or a free
connection slot is waited for at most until shortly before the guest's request times out, so the guest
gets an error it can still answer with instead of being interrupted inside a host call.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 5.0
"""Seconds to establish a TCP connection (a dead or unreachable host fails a call this fast)."""
RESERVE = 0.2
"""Seconds left to the guest after a timed-out wait, to answer its request."""
MAX_CONNECTIONS = 128
"""Connections of one protocol one app may hold open at once, per process (Spin: unbounded unless its
runtime config sets `max_connections`). Beyond it `open` waits, then fails with `too-many-connections`."""


class OutboundError(Exception):
    """A failed outbound call: `kind` is the WIT error case, `message` its payload (if the case has one)."""

    def __init__(self, kind: str, message: str | None = None) -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message


def remaining(deadline: float) -> float:
    """Seconds a wait may take before `deadline` (monotonic), keeping RESERVE for the guest; >= 0."""
    return max(0.0, deadline - RESERVE - time.monotonic())


class Closeable(Protocol):
    def close(self) -> None: ...


class ConnectionLimit:
    """Counts one protocol's open connections of one app generation and closes what is left at the end."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self._free = threading.Semaphore(limit)
        self._lock = threading.Lock()
        self._open: set[Closeable] = set()
        self._closed = False

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._open)

    def acquire(self, owner: Closeable, deadline: float) -> bool:
        """Reserve a slot for `owner` (waiting until `deadline` at most); False if none freed up."""
        if not self._free.acquire(timeout=remaining(deadline)):
            return False
        with self._lock:
            if self._closed:
                self._free.release()
                return False
            self._open.add(owner)
        return True

    def release(self, owner: Closeable) -> None:
        with self._lock:
            if owner not in self._open:
                return
            self._open.discard(owner)
        self._free.release()

    def close(self) -> None:
        """The generation is gone: close every connection still open (a guest past its drain time)."""
        with self._lock:
            self._closed = True
            owners = list(self._open)
        for owner in owners:
            owner.close()


def public_address(address: str) -> str:
    """`scheme://host:port` of a guest's address, for log lines: no credentials, path or query."""
    try:
        parts = urlsplit(address)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparsable address)"
    if not parts.scheme or not host:
        return "(an unparsable address)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
