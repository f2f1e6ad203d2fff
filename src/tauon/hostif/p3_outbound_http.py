"""Outbound HTTP for WASIp3 guests (wasi:http/client@0.3 `send`), through the 0.2 host's one way out
(`http_out`): the same `allowed_outbound_hosts` check before anything else (a denied request is
`HTTP-request-denied` with no connection), self-requests, service chaining, per-request and
per-process bounds, keep-alive pool, timeouts and tracing (Spin's p3 client shares its p2 path too:
crates/factor-outbound-http/src/wasi.rs `send_request`).

What differs is only the shape: the guest's request body arrives as a `stream<u8>` and the response
goes back as a `stream<u8>` with a trailers future, and `send` completes later (a `Deferred`), so the
guest keeps running, e.g. writing the body, while the exchange runs on http_out's sender thread.
Two pooled worker threads move the bodies between the component runtime's streams and http_out's
byte pipes, each at its reader's pace and within the request's deadline.

`send` takes an `OutboundRequest` and answers an `OutboundResponse`: plain data, which wasi:http 0.3's
request and response resources (`http_p3`, the types interface) are read into and built from by
`client_send`, the `wasi:http/client` import. tauon sends no request trailers (the guest's trailers
future is dropped) and receives none (the response's trailers future is ok(none) at the body's end).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tauon import tracing
from tauon.hostif import http_out, http_p3
from tauon.hostif.http import IncomingResponse, OutgoingRequest, RequestOptions
from tauon.hostif.http_fields import Fields
from tauon.hostif.p3_streams import U8, remaining, run_worker
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.runtime.async_host import Deferred, FutureReader, FutureWriter, StreamReader, future, stream

Header = tuple[str, bytes]
Result = tuple[str, Any]


@dataclass
class OutboundRequest:
    """What `send` needs of a wasi:http 0.3 request (the variants have the same cases as 0.2's)."""

    method: tuple[str, Any]
    scheme: tuple[str, Any] | None
    authority: str | None
    path_with_query: str | None
    headers: list[Header]
    body: StreamReader | None = None
    timeouts: dict[str, int | None] = field(default_factory=dict)
    """'connect-timeout', 'first-byte-timeout', 'between-bytes-timeout' in ns (None: Spin's default)."""
    sent: FutureWriter | None = None
    """The guest's `future<result<_, error-code>>` for its request body: completed once it is sent."""


@dataclass
class OutboundResponse:
    status: int
    headers: list[Header]
    body: StreamReader
    trailers: FutureReader
    """`future<result<option<trailers>, error-code>>`: ok(none) once the body has been read to its end
    (tauon's client reads no trailers), or the error that cut the body short."""


class OnGuestThread(Deferred):
    """A Deferred whose value is finished by `finish` where the runtime takes it: on the guest's
    thread (a resource the result owns must enter the request's resource table there, never from a
    worker thread). An adapter over async_host's Deferred, whose `outcome()` the runtime calls."""

    __slots__ = ("_finish_value",)

    def __init__(self, finish: Callable[[Any], Any]) -> None:
        super().__init__()
        self._finish_value = finish

    def outcome(self) -> Any:
        return self._finish_value(super().outcome())


def client_send(state: HostState, rep: int) -> Result | Deferred:
    """`wasi:http/client.send: async func(request) -> result<response, error-code>`."""
    request = state.table.take(rep, http_p3.Request)
    if request.trailers is not None:
        request.trailers.close()
    outbound = OutboundRequest(method=request.method, scheme=request.scheme, authority=request.authority,
                               path_with_query=request.path_with_query, headers=list(request.headers.entries),
                               body=request.body, timeouts=dict(request.options or {}), sent=request.done)

    def finish(result: Result) -> Result:
        if result[0] != "ok":
            return result
        got: OutboundResponse = result[1]
        response = http_p3.Response(Fields(got.headers, immutable=True), got.body, got.trailers,
                                    status=got.status)
        return ("ok", state.table.push(response))

    return send(state, outbound, finish)


def send(state: HostState, request: OutboundRequest, finish: Callable[[Result], Any]) -> Result | Deferred:
    """Start `request`: an `err` error-code at once if it may not or cannot go out (denied, bounds),
    else a Deferred completing with `finish(("ok", OutboundResponse) | ("err", error-code))`."""
    outgoing = OutgoingRequest(headers=Fields(list(request.headers)), pipe=BytePipe(state.cond),
                               method=request.method, scheme=request.scheme, authority=request.authority,
                               path_with_query=request.path_with_query, body_taken=request.body is not None)
    started = http_out.handle(state, state.table.push(outgoing),
                              state.table.push(RequestOptions(dict(request.timeouts))))
    if started[0] == "err":
        if request.body is not None:
            request.body.close()
        _complete(request.sent, started)
        return started
    pending = state.table.take(started[1], http_out.FutureIncomingResponse)
    if request.body is not None:
        run_worker(_pump_request_body, state.cond, request.body, outgoing.pipe, state.deadline, request.sent)
    else:
        _complete(request.sent, ("ok", None))
    deferred = OnGuestThread(finish)
    run_worker(_await_response, state.cond, pending, state.deadline, deferred)
    return deferred


def _complete(writer: FutureWriter | None, value: Result) -> None:
    if writer is not None:
        writer.write(value)


def _pump_request_body(cond: threading.Condition, body: StreamReader, pipe: BytePipe, deadline: float,
                       sent: FutureWriter | None) -> None:
    """The guest's body stream into the exchange's pipe, as the exchange takes it."""
    outcome: Result = ("ok", None)
    try:
        while (chunk := body.read(timeout=remaining(deadline))) is not None:
            with cond:
                if not cond.wait_for(pipe.writable, remaining(deadline)):
                    raise TimeoutError("the upstream did not take the request body in time")
            if pipe.reader_gone:
                break
            pipe.write(chunk)
    except (TimeoutError, PipeError) as exc:
        outcome = ("err", ("connection-write-timeout", None) if isinstance(exc, TimeoutError)
                   else ("HTTP-request-body-size", None))
        body.close()
        pipe.close(error=str(exc))
    else:
        pipe.close()
    _complete(sent, outcome)


def _await_response(cond: threading.Condition, pending: http_out.FutureIncomingResponse, deadline: float,
                    deferred: Deferred) -> None:
    with cond:
        arrived = cond.wait_for(pending.ready, remaining(deadline))
        result = pending.result
    if pending.span is not None:
        span, pending.span = pending.span, None
        tracing.end_outbound_http(span, result)
    if not arrived or result is None:
        deferred.resolve(("err", ("HTTP-response-timeout", None)))
        return
    if result[0] == "err":
        deferred.resolve(result)
        return
    response: IncomingResponse = result[1]
    body_reader, body_writer = stream(U8)
    trailers_reader, trailers_writer = future()
    deferred.resolve(("ok", OutboundResponse(response.status, list(response.headers), body_reader,
                                            trailers_reader)))
    pipe = response.body.pipe if response.body is not None else None
    trailers_writer.write(_pump_response_body(cond, pipe, body_writer, deadline))


def _pump_response_body(cond: threading.Condition, pipe: BytePipe | None, writer: Any,
                        deadline: float) -> Result:
    """The exchange's response body into the guest's stream: the trailers future's value."""
    try:
        while pipe is not None:
            with cond:
                if not cond.wait_for(pipe.readable, remaining(deadline)):
                    pipe.abandon()
                    return ("err", ("connection-read-timeout", None))
                data = pipe.read(1 << 16)
            if data is None:
                break
            if data and writer.write(data, timeout=remaining(deadline)) < len(data):
                pipe.abandon()  # the guest dropped the body: stop reading the upstream
                break
        return ("ok", None)
    except PipeError:
        return ("err", ("HTTP-response-incomplete", None))
    except TimeoutError:
        if pipe is not None:
            pipe.abandon()
        return ("err", ("connection-read-timeout", None))
    finally:
        writer.close()


INTERFACES = [HostInterface(f"wasi:http/client@{version}", {"send": client_send})
              for version in http_p3.VERSIONS]
