"""The host-made responses shared by the switchboard, service chaining and the executors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tauon.executors.base import GuestError
from tauon.executors.responses import failure_status, respond, send_empty


def _sent(coro_factory: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(coro_factory(send))
    return messages


def test_respond_lowercases_names_and_adds_the_length() -> None:
    start, body = _sent(lambda send: respond(send, 200, [("Content-Type", "text/plain")], b"hello"))
    assert start == {"type": "http.response.start", "status": 200,
                     "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]}
    assert body == {"type": "http.response.body", "body": b"hello"}
    start, _ = _sent(lambda send: respond(send, 200, [("content-length", "0")]))
    assert start["headers"] == [(b"content-length", b"0")]


@pytest.mark.parametrize(("status", "headers"), [
    (404, [(b"content-length", b"0")]),
    (405, [(b"content-length", b"0")]),
    # an oversized body: the server stops reading the rest instead of discarding it
    (413, [(b"content-length", b"0"), (b"connection", b"close")]),
])
def test_send_empty(status: int, headers: list[tuple[bytes, bytes]]) -> None:
    start, body = _sent(lambda send: send_empty(send, status))
    assert (start["status"], start["headers"], body["body"]) == (status, headers, b"")


def test_failure_status_is_503_with_retry_after_only_when_the_host_was_busy() -> None:
    assert failure_status(GuestError("full", kind="busy")) == (503, [("retry-after", "1")])
    for kind in ("trap", "timeout", "memory", "output", "no-response"):
        assert failure_status(GuestError("x", kind=kind)) == (500, [])
