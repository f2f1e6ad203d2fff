"""A client connection's transport whose writes within one event-loop step leave as one.

uvicorn writes a response's head as soon as it is sent and each body chunk as it comes, one
`transport.write` each: a small response costs two or three socket sends, and on loopback each send
also runs the receiving side's TCP path. hyper (Spin, `wasmtime serve`) buffers the head with the first
body bytes and sends them together. This transport does the same for every response tauon sends:
writes made in one loop step are held and go out in one send (a writev) when the response completes,
when the step ends (a `call_soon`, so a streaming response's head is never held past the step it was
written in), when more than `MAX_HELD` bytes are held (so the real transport's flow control sees big
bodies as before), or before the connection closes.

Every close of the connection passes here too, so the protocol can ask for a lingering close
(`on_close`): when a response goes out while the client is still sending, closing at once would make
the kernel reset the connection, and a reset that overtakes the response discards it at the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

MAX_HELD = 64 * 1024
"""Bytes held before they are handed over at once: above it one more send costs little, and the real
transport's buffer (whose high-water mark pauses writers) should see the bytes."""


class CoalescingTransport:
    """Wraps one connection's transport; what it does not define is the wrapped transport's."""

    __slots__ = ("_closing", "_held", "_held_bytes", "_loop", "on_close", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self._closing = False
        self.on_close: Callable[[], bool] | None = None
        """Asked on the first close: True if it takes the close over (and ends the connection later)."""

    def write(self, data: bytes) -> None:
        if not data or self._closing:
            return
        held = self._held
        if held is None:
            if len(data) > MAX_HELD:
                self.transport.write(data)
                return
            self._held = [data]
            self._held_bytes = len(data)
            self._loop.call_soon(self.flush)
            return
        held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes > MAX_HELD:
            self.flush()

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        """Hand what is held to the real transport (one send for all of it)."""
        held = self._held
        if held is None:
            return
        self._held = None
        if self.transport.is_closing():
            return  # the connection is gone (aborted or lost): nothing can be sent
        if len(held) == 1:
            self.transport.write(held[0])
        else:
            self.transport.writelines(held)

    def close(self) -> None:
        self.flush()
        if not self._closing:
            self._closing = True
            if self.on_close is not None and not self.transport.is_closing() and self.on_close():
                return
        self.transport.close()  # a second close (a server shutting down) ends a lingering one

    def close_now(self) -> None:
        """Close without lingering (a client that has run out of time)."""
        self.flush()
        self._closing = True
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self.transport.abort()

    def is_closing(self) -> bool:
        return self._closing or self.transport.is_closing()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
