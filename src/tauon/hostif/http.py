"""wasi:http/types 0.2: fields, requests, responses and their bodies, as host resources.

Bodies are `BytePipe`s shared with the other side (the executor for the incoming request and the
response, the HTTP client thread for outbound requests), so they stream in both directions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tauon.hostif.http_fields import (
    Fields,
    Header,
    child_headers,
    fields_append,
    fields_clone,
    fields_delete,
    fields_entries,
    fields_from_list,
    fields_get,
    fields_has,
    fields_new,
    fields_set,
)
from tauon.hostif.io import PipeInput, PipeOutput, Pollable
from tauon.hostif.pipe import BytePipe
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok

METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
BODY_BUFFER = 1 << 20



def method_variant(method: str) -> tuple[str, Any]:
    lower = method.lower()
    return (lower, None) if lower in METHODS and method.isupper() else ("other", method)


def method_text(variant: tuple[str, Any]) -> str:
    tag, payload = variant
    return str(payload) if tag == "other" else tag.upper()


def scheme_text(variant: tuple[str, Any] | None) -> str:
    if variant is None:
        return "https"
    tag, payload = variant
    return str(payload).lower() if tag == "other" else tag.lower()


class ResponseSink(Protocol):
    """The executor's side of response-outparam.set."""

    def start(self, status: int, headers: list[Header], body: BytePipe) -> None: ...

    def fail(self, message: str) -> None: ...


@dataclass
class IncomingBody:
    pipe: BytePipe
    stream_taken: bool = False


@dataclass
class IncomingRequest:
    method: str
    path_with_query: str | None
    scheme: tuple[str, Any] | None
    authority: str | None
    headers: list[Header]
    body: IncomingBody | None


@dataclass
class ResponseOutparam:
    sink: ResponseSink


@dataclass
class OutgoingBody:
    pipe: BytePipe
    stream_taken: bool = False
    finished: bool = False

    def on_drop(self) -> None:
        if not self.finished:  # dropped without finish: the body is incomplete
            self.pipe.close(error="the guest dropped the body without finishing it")


@dataclass
class OutgoingResponse:
    headers: Fields
    pipe: BytePipe
    status: int = 200
    body_taken: bool = False


@dataclass
class OutgoingRequest:
    headers: Fields
    pipe: BytePipe
    method: tuple[str, Any] = ("get", None)
    scheme: tuple[str, Any] | None = None
    authority: str | None = None
    path_with_query: str | None = None
    body_taken: bool = False


@dataclass
class RequestOptions:
    timeouts: dict[str, int | None] = field(default_factory=dict)


@dataclass
class IncomingResponse:
    status: int
    headers: list[Header]
    body: IncomingBody | None


class FutureTrailers:
    pass


# -- incoming request and bodies ------------------------------------------------------------------

def _inreq(state: HostState, rep: int) -> IncomingRequest:
    return state.table.get(rep, IncomingRequest)


def inreq_method(state: HostState, rep: int) -> tuple[str, Any]:
    return method_variant(_inreq(state, rep).method)


def inreq_consume(state: HostState, rep: int) -> tuple[str, Any]:
    request = _inreq(state, rep)
    body, request.body = request.body, None
    return ok(state.table.push(body)) if body is not None else err()


def inbody_stream(state: HostState, rep: int) -> tuple[str, Any]:
    body = state.table.get(rep, IncomingBody)
    if body.stream_taken:
        return err()
    body.stream_taken = True
    return ok(state.table.push(PipeInput(body.pipe)))


def inbody_finish(state: HostState, rep: int) -> int:
    state.table.take(rep, IncomingBody)
    return state.table.push(FutureTrailers())


def trailers_subscribe(state: HostState, rep: int) -> int:
    state.table.get(rep, FutureTrailers)
    return state.table.push(Pollable(lambda: True))


def trailers_get(state: HostState, rep: int) -> tuple[str, Any]:
    state.table.get(rep, FutureTrailers)
    return ok(ok(None))  # no trailers


# -- response -------------------------------------------------------------------------------------

def outresp_new(state: HostState, headers: int) -> int:
    fields = state.table.take(headers, Fields)
    return state.table.push(OutgoingResponse(fields, BytePipe(state.cond, BODY_BUFFER)))


def outresp_set_status(state: HostState, rep: int, status: int) -> tuple[str, Any]:
    response = state.table.get(rep, OutgoingResponse)
    if not 100 <= status <= 999:
        return err()
    response.status = status
    return ok()


def outresp_body(state: HostState, rep: int) -> tuple[str, Any]:
    response = state.table.get(rep, OutgoingResponse)
    if response.body_taken:
        return err()
    response.body_taken = True
    return ok(state.table.push(OutgoingBody(response.pipe)))


def outbody_write(state: HostState, rep: int) -> tuple[str, Any]:
    body = state.table.get(rep, OutgoingBody)
    if body.stream_taken:
        return err()
    body.stream_taken = True
    return ok(state.table.push(PipeOutput(body.pipe)))


def outbody_finish(state: HostState, rep: int, trailers: int | None) -> tuple[str, Any]:
    body = state.table.take(rep, OutgoingBody)
    if trailers is not None:
        state.table.take(trailers, Fields)  # trailers are not sent (HTTP/1.1 responses rarely carry them)
    body.finished = True
    body.pipe.close()
    return ok()


def outparam_set(state: HostState, rep: int, response: tuple[str, Any]) -> None:
    outparam = state.table.take(rep, ResponseOutparam)
    if response[0] == "err":
        outparam.sink.fail(f"the guest answered with error {response[1]!r}")
        return
    out = state.table.take(response[1], OutgoingResponse)
    if not out.body_taken:
        out.pipe.close()
    outparam.sink.start(out.status, list(out.headers.entries), out.pipe)


def http_error_code(state: HostState, rep: int) -> None:
    return None


def _getter(kind: type, attr: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[..., Any]:
    def get(state: HostState, rep: int) -> Any:
        return convert(getattr(state.table.get(rep, kind), attr))

    return get


def _headers_of(kind: type) -> Callable[..., int]:
    def headers(state: HostState, rep: int) -> int:
        item: Any = state.table.get(rep, kind)
        entries = item.headers.entries if isinstance(item.headers, Fields) else item.headers
        return child_headers(state, list(entries))

    return headers


def _outreq_setter(attr: str, check: Callable[[Any], bool] = lambda v: True) -> Callable[..., Any]:
    def set_(state: HostState, rep: int, value: Any) -> tuple[str, Any]:
        request = state.table.get(rep, OutgoingRequest)
        if not check(value):
            return err()
        setattr(request, attr, value)
        return ok()

    return set_


def outreq_new(state: HostState, headers: int) -> int:
    fields = state.table.take(headers, Fields)
    # Generous before `handle` (the guest may write the whole body first), bounded after.
    return state.table.push(OutgoingRequest(fields, BytePipe(state.cond, 16 * BODY_BUFFER)))


def outreq_body(state: HostState, rep: int) -> tuple[str, Any]:
    request = state.table.get(rep, OutgoingRequest)
    if request.body_taken:
        return err()
    request.body_taken = True
    return ok(state.table.push(OutgoingBody(request.pipe)))


def options_new(state: HostState) -> int:
    return state.table.push(RequestOptions())


def _option_get(key: str) -> Callable[..., Any]:
    def get(state: HostState, rep: int) -> int | None:
        return state.table.get(rep, RequestOptions).timeouts.get(key)

    return get


def _option_set(key: str) -> Callable[..., Any]:
    def set_(state: HostState, rep: int, value: int | None) -> tuple[str, Any]:
        state.table.get(rep, RequestOptions).timeouts[key] = value
        return ok()

    return set_


_FUNCS: dict[str, Callable[..., Any]] = {
    "http-error-code": http_error_code,
    "[constructor]fields": fields_new,
    "[static]fields.from-list": fields_from_list,
    "[method]fields.get": fields_get,
    "[method]fields.has": fields_has,
    "[method]fields.set": fields_set,
    "[method]fields.delete": fields_delete,
    "[method]fields.append": fields_append,
    "[method]fields.entries": fields_entries,
    "[method]fields.clone": fields_clone,
    "[method]incoming-request.method": inreq_method,
    "[method]incoming-request.path-with-query": _getter(IncomingRequest, "path_with_query"),
    "[method]incoming-request.scheme": _getter(IncomingRequest, "scheme"),
    "[method]incoming-request.authority": _getter(IncomingRequest, "authority"),
    "[method]incoming-request.headers": _headers_of(IncomingRequest),
    "[method]incoming-request.consume": inreq_consume,
    "[method]incoming-body.stream": inbody_stream,
    "[static]incoming-body.finish": inbody_finish,
    "[method]future-trailers.subscribe": trailers_subscribe,
    "[method]future-trailers.get": trailers_get,
    "[constructor]outgoing-response": outresp_new,
    "[method]outgoing-response.status-code": _getter(OutgoingResponse, "status"),
    "[method]outgoing-response.set-status-code": outresp_set_status,
    "[method]outgoing-response.headers": _headers_of(OutgoingResponse),
    "[method]outgoing-response.body": outresp_body,
    "[method]outgoing-body.write": outbody_write,
    "[static]outgoing-body.finish": outbody_finish,
    "[static]response-outparam.set": outparam_set,
    "[constructor]outgoing-request": outreq_new,
    "[method]outgoing-request.body": outreq_body,
    "[method]outgoing-request.method": _getter(OutgoingRequest, "method"),
    "[method]outgoing-request.set-method": _outreq_setter("method"),
    "[method]outgoing-request.path-with-query": _getter(OutgoingRequest, "path_with_query"),
    "[method]outgoing-request.set-path-with-query": _outreq_setter("path_with_query"),
    "[method]outgoing-request.scheme": _getter(OutgoingRequest, "scheme"),
    "[method]outgoing-request.set-scheme": _outreq_setter("scheme"),
    "[method]outgoing-request.authority": _getter(OutgoingRequest, "authority"),
    "[method]outgoing-request.set-authority": _outreq_setter(
        "authority", lambda v: v is None or ("/" not in v and " " not in v)),
    "[method]outgoing-request.headers": _headers_of(OutgoingRequest),
    "[constructor]request-options": options_new,
    "[method]incoming-response.status": _getter(IncomingResponse, "status"),
    "[method]incoming-response.headers": _headers_of(IncomingResponse),
    "[method]incoming-response.consume": lambda state, rep: _consume_response(state, rep),
}
for _key in ("connect-timeout", "first-byte-timeout", "between-bytes-timeout"):
    _FUNCS[f"[method]request-options.{_key}"] = _option_get(_key)
    _FUNCS[f"[method]request-options.set-{_key}"] = _option_set(_key)


def _consume_response(state: HostState, rep: int) -> tuple[str, Any]:
    response = state.table.get(rep, IncomingResponse)
    body, response.body = response.body, None
    return ok(state.table.push(body)) if body is not None else err()


INTERFACES = [
    HostInterface("wasi:http/types", _FUNCS, (
        "fields", "incoming-request", "outgoing-request", "request-options", "response-outparam",
        "incoming-response", "incoming-body", "future-trailers", "outgoing-response", "outgoing-body",
        "future-incoming-response",
    )),
]
