"""The Spin executor (spin-spec §4.2, §3.5, §3.6): `fermyon:spin/inbound-http#handle-request`.

The guest gets the whole request in one record (uri = path and query, every inbound header including
`host` plus Spin's values, no params, the buffered body) and returns one response record. As in Spin:
methods outside the WIT enum get 405 without running the guest, a status below 100 or above 600 is a
500, and response headers are inserted one by one, so a repeated name keeps its last value.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
from starlette.types import Receive, Send
from wasmtime.component import Component

from tauon.executors.base import ExecutorSetup, GuestError, RoutedRequest
from tauon.executors.buffered import guest_error_kind, receive_body
from tauon.executors.oneshot import ComponentExecutor, GuestRunner, Trap
from tauon.executors.responses import send_empty, send_response
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.slots import SlotHold

EXPORT = "fermyon:spin/inbound-http"
FUNCTION = "handle-request"
METHODS = {"GET": "get", "POST": "post", "PUT": "put", "DELETE": "delete", "PATCH": "patch",
           "HEAD": "head", "OPTIONS": "options"}
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Replaced by the host, which knows the real body length."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def guest_request(request: RoutedRequest, method: str, body: bytes) -> dict[str, Any]:
    headers = list(request.headers) + [(v.header, v.value) for v in request.spin_values]
    uri = request.path + (f"?{request.query}" if request.query else "")
    return {"method": method, "uri": uri, "headers": headers, "params": [], "body": body}


def response_parts(response: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, ASGI headers, body) from the guest's response record. Raises ValueError when Spin
    would fail the request."""
    status = int(response["status"])
    if status < 100 or status > 600:
        raise ValueError(f"the guest returned the invalid status {status}")
    collapsed: dict[str, str] = {}
    for name, value in response["headers"] or ():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"the guest returned an invalid header name {name!r}")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"the guest returned an invalid value for header {name!r}")
        key = name.lower()
        collapsed.pop(key, None)  # insert semantics: last wins, in the position of the last
        collapsed[key] = value
    body = bytes(response["body"] or b"")
    headers = [(k.encode("latin-1"), v.encode("utf-8")) for k, v in collapsed.items()
               if k not in FRAMING_HEADERS]
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


class SpinInboundExecutor(ComponentExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: Component, linked: LinkedComponent,
                 config: HostConfig, runner: GuestRunner | None = None) -> None:
        super().__init__(setup, component=component, linked=linked, config=config, runner=runner)
        self.export = EXPORT
        self._handle = self._oneshot(EXPORT, FUNCTION)

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        method = METHODS.get(request.method)
        if method is None:
            await send_empty(send, 405)
            return
        body = await receive_body(request, receive, send, self._limits.max_request_body)
        if body is None:
            return
        record = guest_request(request, method, body)
        hold = SlotHold()
        response = await anyio.to_thread.run_sync(self._in_slot, hold, self._execute, record, hold,
                                                  limiter=self._limiter)
        try:
            status, headers, payload = response_parts(response)
        except ValueError as exc:
            raise GuestError(f"{self._label}: {exc}", kind="output") from None
        if request.method == "HEAD":
            payload = b""
        await send_response(send, status, headers, payload)

    def _execute(self, record: dict[str, Any], hold: SlotHold) -> dict[str, Any]:
        state = HostState(self._config, timeout=self._limits.request_timeout, slot=hold)
        try:
            response: dict[str, Any] = self._handle.call(state, record)
        except Trap as exc:
            if exc.kind == "timeout":
                raise GuestError(f"{self._label}: interrupted after the request timeout of "
                                 f"{self._limits.request_timeout:g} s", kind="timeout") from None
            raise GuestError(f"{self._label}: {exc}", kind=guest_error_kind(exc.kind)) from None
        return response
