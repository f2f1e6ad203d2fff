"""Service chaining (spin-spec §3.8): `http://<component>.spin.internal/...` served in-process.

A guest's outbound request to another component of the same app never touches the network: it goes
to that component's executor, as if it had come in on the app's listener with a synthetic match
(route `/...`, path info = the request path, client `0.0.0.0:0`, scheme http). Private routes are
reachable this way. The calling guest's thread is blocked in `poll`; the chained request runs on the
event loop, reading the caller's request body pipe and writing the response into a pipe the caller
reads, both bounded, so bodies stream without buffering.

The chained request counts against the app's concurrency limit like any other: an app that chains
needs `limits.concurrency` above its chain depth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tauon import tracing
from tauon.app.routes import RouteMatch
from tauon.app.spinvalues import SERVICE_CHAINING_CLIENT
from tauon.executors.base import Executor, GuestError, RoutedRequest
from tauon.executors.responses import failure_status
from tauon.hostif.http import (
    BODY_BUFFER,
    IncomingBody,
    IncomingResponse,
    OutgoingRequest,
    method_text,
)
from tauon.hostif.http_fields import FORBIDDEN_HEADERS
from tauon.hostif.http_out import FutureIncomingResponse
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.state import HostState
from tauon.server.requests import routed_request

log = logging.getLogger("tauon.chaining")


class ServiceChain:
    """One generation's in-process routes to its components, filled in as its executors are built.
    `loop` is the event loop chained requests run on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._executors: dict[str, Executor] = {}
        self._loop = loop

    def add(self, component_id: str, executor: Executor) -> None:
        """A chained request reaches a component through the executor its first trigger uses."""
        self._executors.setdefault(component_id, executor)

    def knows(self, component_id: str) -> bool:
        return component_id in self._executors

    def start(self, component_id: str, request: OutgoingRequest, future: FutureIncomingResponse,
              state: HostState) -> None:
        """From the calling guest's thread: run the chained request; `future` gets the response."""
        executor = self._executors[component_id]
        asyncio.run_coroutine_threadsafe(_serve(executor, request, future, state), self._loop)


def _settle(state: HostState, future: FutureIncomingResponse, result: tuple[str, Any]) -> None:
    with state.cond:
        if future.result is None:
            future.result = result
        state.cond.notify_all()


async def _ready(pipe: BytePipe, state: HostState, check: Callable[[], bool]) -> None:
    """Wait on the event loop until `check()` holds for `pipe` (woken by the pipe's listeners)."""
    loop = asyncio.get_running_loop()
    event = asyncio.Event()

    def changed() -> None:
        loop.call_soon_threadsafe(event.set)

    with state.cond:  # the guest's thread walks the listeners under the same lock
        pipe.listeners.append(changed)
    try:
        while True:
            event.clear()
            with state.cond:
                if check():
                    return
            await event.wait()
    finally:
        with state.cond:
            pipe.listeners.remove(changed)


def _chained_request(request: OutgoingRequest) -> RoutedRequest:
    """The request as the target component sees it: route `/...`, client `0.0.0.0:0`, scheme http."""
    path_with_query = request.path_with_query or "/"
    path, _, query = path_with_query.partition("?")
    match: RouteMatch[Any] = RouteMatch(target=None, raw_route="/...", normalized_route="/...",
                                        component_route="", path_info=path)
    headers = tuple((name, value.decode("latin-1")) for name, value in request.headers.entries
                    if name not in FORBIDDEN_HEADERS)
    return routed_request(match, method=method_text(request.method), path=path, query=query,
                          headers=headers, scheme="http", authority=request.authority or "",
                          client=SERVICE_CHAINING_CLIENT, path_and_query=path_with_query)


class _ChainedExchange:
    """The ASGI side of one chained request: `receive` reads the caller's body pipe, `send` settles
    the caller's future with the head and writes the body into a pipe the caller reads."""

    def __init__(self, request: OutgoingRequest, future: FutureIncomingResponse, state: HostState) -> None:
        self._body_in = request.pipe if request.body_taken else None
        self._future = future
        self._state = state
        self.response_pipe = BytePipe(state.cond, BODY_BUFFER)
        self.started = False

    async def receive(self) -> dict[str, Any]:
        body_in = self._body_in
        if body_in is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        await _ready(body_in, self._state, body_in.readable)
        try:
            data = body_in.read(1 << 16)
        except PipeError:
            return {"type": "http.disconnect"}
        if data is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": data, "more_body": True}

    async def send(self, message: dict[str, Any]) -> None:
        pipe = self.response_pipe
        if message["type"] == "http.response.start":
            self.started = True
            fields = [(k.decode("latin-1").lower(), v) for k, v in message.get("headers", [])]
            _settle(self._state, self._future, ("ok", IncomingResponse(message["status"], fields,
                                                                       IncomingBody(pipe))))
            return
        data: bytes = message.get("body", b"")
        if data:
            await _ready(pipe, self._state, lambda: pipe.writable() or pipe.reader_gone)
            if pipe.reader_gone:
                raise ConnectionResetError("the calling guest stopped reading")
            pipe.write(data)
        if not message.get("more_body", False):
            pipe.close()


async def _serve(executor: Executor, request: OutgoingRequest, future: FutureIncomingResponse,
                 state: HostState) -> None:
    incoming = _chained_request(request)
    exchange = _ChainedExchange(request, future, state)
    receive, send = exchange.receive, exchange.send
    try:
        active = tracing.ACTIVE
        if active is None:
            await executor.serve(incoming, receive, send)  # type: ignore[arg-type]
        else:  # an execution span under the caller's outbound span (its traceparent is in `headers`)
            with active.chained(state.config.label.rsplit("/", 1)[0], executor, incoming.headers):
                await executor.serve(incoming, receive, send)  # type: ignore[arg-type]
    except GuestError as exc:
        # What the app's listener would answer: a 500 before the head, a cut body after it.
        log.error("%s: chained request to %s failed: %s", state.config.label, incoming.authority, exc)
        if not exchange.started:
            status, extra = failure_status(exc)
            fields = [(k, v.encode("latin-1")) for k, v in extra] + [("content-length", b"0")]
            _settle(state, future, ("ok", IncomingResponse(status, fields, IncomingBody(_closed(state)))))
        else:
            exchange.response_pipe.close(error=f"chained response cut short: {exc}")
    except Exception as exc:
        log.exception("%s: chained request to %s failed", state.config.label, incoming.authority)
        if not exchange.started:
            _settle(state, future, ("err", ("internal-error", f"{type(exc).__name__}: {exc}")))
        else:
            exchange.response_pipe.close(error=f"chained response cut short: {exc}")
    else:
        if not exchange.started:
            _settle(state, future, ("err", ("HTTP-protocol-error", None)))


def _closed(state: HostState) -> BytePipe:
    pipe = BytePipe(state.cond, 0)
    pipe.close()
    return pipe
