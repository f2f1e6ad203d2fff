"""Helpers for executors that hand the guest the whole request body at once (WAGI, Spin inbound-http)."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

from tauon.executors.base import RoutedRequest
from tauon.executors.responses import send_empty


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(request: RoutedRequest, receive: Receive, limit: int) -> bytes:
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


async def receive_body(request: RoutedRequest, receive: Receive, send: Send, limit: int) -> bytes | None:
    """The full request body, or None once the request is settled without the guest: a body over
    `limit` has been answered 413, or the client went away."""
    try:
        return await read_body(request, receive, limit)
    except BodyTooLarge:
        await send_empty(send, 413)
    except ClientGone:
        pass
    return None


def guest_error_kind(trap_kind: str) -> str:
    """GuestError kind for a Trap kind (wasm/component/guest.py)."""
    return {"fuel": "timeout", "host": "trap", "instantiate": "trap"}.get(trap_kind, trap_kind)
