"""A bounded byte queue between two threads (or a thread and the event loop), one writer, one reader.

It shares the request's Condition, so a guest blocked in `poll` over several streams wakes when any
of them changes; listeners (e.g. `loop.call_soon_threadsafe(event.set)`) wake an async side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class PipeError(Exception):
    pass


class BytePipe:
    def __init__(self, cond: threading.Condition, limit: int = 1 << 20) -> None:
        self.cond = cond
        self.limit = limit
        self._buf = bytearray()
        self._closed = False
        self._error: str | None = None
        self._reader_gone = False
        self.listeners: list[Callable[[], None]] = []
        self.total = 0
        """Bytes written so far."""

    def _changed(self) -> None:
        self.cond.notify_all()
        for listener in self.listeners:
            listener()

    # -- writer side ----------------------------------------------------------------------------

    def space(self) -> int:
        """Bytes that may be written now without exceeding the limit."""
        with self.cond:
            return max(0, self.limit - len(self._buf))

    @property
    def reader_gone(self) -> bool:
        return self._reader_gone

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return self._reader_gone or self._closed or len(self._buf) < self.limit

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with self.cond:
            if self._closed:
                raise PipeError("write after close")
            if self._reader_gone:
                raise PipeError("the reader has gone away")
            self._buf += data
            self.total += len(data)
            self._changed()

    def close(self, error: str | None = None) -> None:
        """End of data (`error`: it ended abnormally, the reader sees a failure)."""
        with self.cond:
            if not self._closed:
                self._closed = True
                self._error = error
                self._changed()

    # -- reader side ----------------------------------------------------------------------------

    def readable(self) -> bool:
        return bool(self._buf) or self._closed

    def finished(self) -> bool:
        """Everything written has been read and the writer closed cleanly: the next read is the end."""
        return self._closed and not self._buf and self._error is None

    def read(self, n: int) -> bytes | None:
        """Up to `n` bytes now; b'' if none yet; None at the clean end. Raises PipeError after a failure."""
        with self.cond:
            if self._buf:
                if n >= len(self._buf):
                    data = bytes(self._buf)
                    self._buf.clear()
                else:
                    data = bytes(self._buf[:n])
                    del self._buf[:n]
                self._changed()
                return data
            if self._closed:
                if self._error is not None:
                    raise PipeError(self._error)
                return None
            return b""

    def abandon(self) -> None:
        """The reader will not read any more: writers fail instead of waiting for space."""
        with self.cond:
            self._reader_gone = True
            self._buf.clear()
            self._changed()
