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
from tauon.app.spinvalues import SERVICE_CHAINING_CLIENT, spin_values
from tauon.executors.base import Executor, GuestError, IncomingRequest
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


async def _serve(executor: Executor, request: OutgoingRequest, future: FutureIncomingResponse,
                 state: HostState) -> None:
    path_with_query = request.path_with_query or "/"
    path, _, query = path_with_query.partition("?")
    authority = request.authority or ""
    match: RouteMatch[Any] = RouteMatch(target=None, raw_route="/...", normalized_route="/...",
                                        component_route="", path_info=path)
    headers = tuple((name, value.decode("latin-1")) for name, value in request.headers.entries
                    if name not in FORBIDDEN_HEADERS)
    incoming = IncomingRequest(
        method=method_text(request.method), path=path, query=query, headers=headers,
        spin_values=spin_values(match, scheme="http", host=authority, path_and_query=path_with_query,
                                client=SERVICE_CHAINING_CLIENT),
        scheme="http", authority=authority, client=SERVICE_CHAINING_CLIENT, http_version="1.1",
        match=match)
    body_in = request.pipe if request.body_taken else None
    response_pipe = BytePipe(state.cond, BODY_BUFFER)
    started = False

    async def receive() -> dict[str, Any]:
        if body_in is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        await _ready(body_in, state, body_in.readable)
        try:
            data = body_in.read(1 << 16)
        except PipeError:
            return {"type": "http.disconnect"}
        if data is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": data, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
            fields = [(k.decode("latin-1").lower(), v) for k, v in message.get("headers", [])]
            _settle(state, future, ("ok", IncomingResponse(message["status"], fields,
                                                           IncomingBody(response_pipe))))
            return
        data: bytes = message.get("body", b"")
        if data:
            await _ready(response_pipe, state, lambda: response_pipe.writable() or response_pipe.reader_gone)
            if response_pipe.reader_gone:
                raise ConnectionResetError("the calling guest stopped reading")
            response_pipe.write(data)
        if not message.get("more_body", False):
            response_pipe.close()

    try:
        active = tracing.ACTIVE
        if active is None:
            await executor.serve(incoming, receive, send)  # type: ignore[arg-type]
        else:  # an execution span under the caller's outbound span (its traceparent is in `headers`)
            with active.chained(state.config.label.rsplit("/", 1)[0], executor, headers):
                await executor.serve(incoming, receive, send)  # type: ignore[arg-type]
    except GuestError as exc:
        # What the app's listener would answer: a 500 before the head, a cut body after it.
        log.error("%s: chained request to %s failed: %s", state.config.label, authority, exc)
        if not started:
            busy = exc.kind == "busy"  # the instance pool is full: 503, as the listener answers
            status, extra = (503, [("retry-after", b"1")]) if busy else (500, [])
            _settle(state, future, ("ok", IncomingResponse(status, [*extra, ("content-length", b"0")],
                                                           IncomingBody(_closed(state)))))
        else:
            response_pipe.close(error=f"chained response cut short: {exc}")
    except Exception as exc:
        log.exception("%s: chained request to %s failed", state.config.label, authority)
        if not started:
            _settle(state, future, ("err", ("internal-error", f"{type(exc).__name__}: {exc}")))
        else:
            response_pipe.close(error=f"chained response cut short: {exc}")
    else:
        if not started:
            _settle(state, future, ("err", ("HTTP-protocol-error", None)))


def _closed(state: HostState) -> BytePipe:
    pipe = BytePipe(state.cond, 0)
    pipe.close()
    return pipe
