"""Responses the host writes itself, shared by the switchboard, service chaining and the executors:
a whole response in one go, the empty-bodied answers (404, 405, 413, 500, 503, ...), and which status
a guest failure becomes."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Send

from tauon.executors.base import GuestError

RETRY_AFTER = ("retry-after", "1")
"""Sent with a 503: the host was full, not the guest at fault, so the client may simply retry."""


async def send_response(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Head and whole body as two ASGI messages; `headers` as they go out (framing included)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond(send: Send, status: int, headers: Sequence[tuple[str, str]] = (),
                  body: bytes = b"") -> None:
    """A host-made response: header names lower-cased, `content-length` added unless given."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if not any(k == b"content-length" for k, _ in raw):
        raw.append((b"content-length", str(len(body)).encode()))
    await send_response(send, status, raw, body)


async def send_empty(send: Send, status: int) -> None:
    """An empty-bodied answer the guest never saw (405, 413, ...). A 413 also says `connection:
    close`, so the server stops reading (and discarding) the rest of the oversized body."""
    headers = [(b"content-length", b"0")]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send_response(send, status, headers, b"")


def unsendable_status(label: str, status: int) -> GuestError | None:
    """The error for a status wasi:http allows (up to 999) but the HTTP server cannot send (100-600,
    as Spin), or None."""
    if status <= 600:
        return None
    return GuestError(f"{label}: the guest answered status {status}, which tauon's HTTP server cannot "
                      "send (100-600); answering 500", kind="output")


async def send_head(send: Send, status: int, headers: list[tuple[str, bytes]]) -> None:
    """A guest's response head (names as text, values as bytes), as the ASGI start message."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode("latin-1"), v) for k, v in headers]})


def failure_status(exc: GuestError) -> tuple[int, list[tuple[str, str]]]:
    """(status, headers) for a guest failure before the response started, as the listener answers it:
    503 with retry-after when every instance slot was busy, else 500 (Spin's empty 500)."""
    if exc.kind == "busy":
        return 503, [RETRY_AFTER]
    return 500, []
