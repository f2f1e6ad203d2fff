"""The HTTP/1.1 protocol tauon's listeners speak: uvicorn's httptools (llhttp) protocol, bounded.

httptools parses in C, several times cheaper per request than h11, which matters when the guest
itself takes microseconds. Unlike h11, llhttp accepts a request head of any size; a client could
stream headers forever into memory. This protocol counts the bytes of the request line and headers
and turns a head over `MAX_HEAD` into the same 400 any other malformed request gets.
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http import h11_impl, httptools_impl

MAX_HEAD = 64 * 1024
"""Bytes of request target + header names and values accepted per request (h11's default limit)."""

# Spin passes guest statuses 100..600 through; uvicorn's status tables stop at 599 and a KeyError
# there drops the connection. An empty reason phrase is what uvicorn uses for other unnamed codes.
httptools_impl.STATUS_LINE.setdefault(600, b"HTTP/1.1 600 \r\n")
h11_impl.STATUS_PHRASES.setdefault(600, b"")


class HeadTooLarge(httptools.HttpParserError):
    pass


class BoundedHttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD:
            # Raised inside a parser callback: uvicorn answers 400 and closes the connection.
            raise HeadTooLarge(f"request head over {MAX_HEAD} bytes")
