"""HTTP/1.1 trailer fields, as hyper (Spin's HTTP server) handles them.

Request trailers (the fields after a chunked body's last chunk) are collected apart from the headers
(server/httpproto.py) and handed to the executor with the request (`RoutedRequest.trailers`).

Response trailers go out only where hyper sends them: the request said it accepts them (`TE:
trailers`), the response is chunked, and only the fields its `Trailer` header declared, minus the
ones never allowed in trailers. An executor asks for them by putting `"trailers": [(name, value)]`
on its final `http.response.body` message; for a connection that may carry them, the protocol wraps
the request's `send` (`install`) to write them after the last chunk. Anything else drops them, as
hyper does (and uvicorn ignores the extra key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

TRAILERS_KEY = "tauon.trailers"
"""The ASGI scope key of a request's trailer fields: a list, filled when its body has ended."""
ACCEPTS_KEY = "tauon.accepts_trailers"
"""Present in the ASGI scope of a request whose `send` can carry response trailers (`install`)."""

NOT_ALLOWED = frozenset({b"authorization", b"cache-control", b"content-encoding", b"content-length",
                         b"content-range", b"content-type", b"host", b"max-forwards", b"set-cookie",
                         b"trailer", b"transfer-encoding", b"te"})
"""Fields hyper never sends as trailers (`is_valid_trailer_field`)."""


def accepts_trailers(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's `TE` header lists `trailers` (names lower-case, as uvicorn gives them)."""
    for name, value in headers:
        if name == b"te" and any(part.split(b";")[0].strip().lower() == b"trailers"
                                 for part in value.split(b",")):
            return True
    return False


def declared(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The field names a response's `Trailer` header(s) declare, lower-case."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"trailer":
            names.update(part.strip().lower() for part in value.split(b",") if part.strip())
    return frozenset(names)


def encode(allowed: frozenset[bytes], fields: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The end of a chunked body with the trailers `allowed` lets through: `0\\r\\n`, the fields,
    `\\r\\n`; None when none is left (the body then ends as usual)."""
    lines = [b"%s: %s\r\n" % (name, value) for name, value in fields
             if name.lower() in allowed and name.lower() not in NOT_ALLOWED]
    if not lines:
        return None
    return b"0\r\n" + b"".join(lines) + b"\r\n"


Send = Callable[[dict[str, Any]], Awaitable[None]]


def install(cycle: Any) -> None:
    """Let `cycle` (uvicorn's RequestResponseCycle of a request that accepts trailers) send them."""
    original: Send = cycle.send
    allowed: list[frozenset[bytes]] = [frozenset()]
    cycle.scope[ACCEPTS_KEY] = True

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            allowed[0] = declared(message.get("headers", ()))
        elif kind == "http.response.body" and not message.get("more_body", False) and message.get("trailers"):
            end = encode(allowed[0], message["trailers"]) if cycle.chunked_encoding else None
            if end is not None and not cycle.disconnected:
                await original({"type": "http.response.body", "body": message.get("body", b""),
                                "more_body": True})
                if not cycle.disconnected and not cycle.response_complete:
                    _finish(cycle, end)
                return
        await original(message)

    cycle.send = send


def _finish(cycle: Any, end: bytes) -> None:
    """Write the last chunk with the trailers and complete the response, as uvicorn's own send does
    after a final body message."""
    cycle.transport.write(end)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
