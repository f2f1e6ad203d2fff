"""Helpers for executors that hand the guest the whole request body at once (WAGI, Spin inbound-http)."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

from tauon.executors.base import IncomingRequest


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(request: IncomingRequest, receive: Receive, limit: int) -> bytes:
    """The full request body. Raises BodyTooLarge (declared or actual size over `limit`) or ClientGone."""
    declared = next((value for name, value in request.headers if name == "content-length"), None)
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def receive_body(request: IncomingRequest, receive: Receive, send: Send, limit: int) -> bytes | None:
    """The full request body, or None once the request is settled without the guest: a body over
    `limit` has been answered 413, or the client went away."""
    try:
        return await read_body(request, receive, limit)
    except BodyTooLarge:
        # connection: close: the server stops reading the rest of the body instead of discarding it
        await send_response(send, 413, [(b"content-length", b"0"), (b"connection", b"close")], b"")
    except ClientGone:
        pass
    return None


async def send_response(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_empty(send: Send, status: int) -> None:
    await send_response(send, status, [(b"content-length", b"0")], b"")


def guest_error_kind(trap_kind: str) -> str:
    """GuestError kind for a Trap kind (wasm/component/guest.py)."""
    return {"fuel": "timeout", "host": "trap", "instantiate": "trap"}.get(trap_kind, trap_kind)
