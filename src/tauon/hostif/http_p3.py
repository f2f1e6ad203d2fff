"""wasi:http/types 0.3 (WASIp3, `wasi:http/types@0.3.0` and `@0.3.0-rc-2026-03-15`): fields, requests,
responses and request options as host resources, for tauon's own component runtime.

Bodies are streams and trailers are futures (`tauon.wasm.runtime.async_host`): a request or response
holds the readable end of its body and of its trailers; `consume-body` hands them over. Headers
are the 0.2 `Fields` (http_fields.py): a request or response takes ownership of the fields it is made
with, and `get-headers` answers an immutable copy, as wasmtime-wasi-http's p3 types do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tauon.hostif.http import method_variant
from tauon.hostif.http_fields import (
    Fields,
    _check_mutation,
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
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok
from tauon.wasm.runtime.async_host import U8, FutureReader, FutureWriter, StreamReader, future, stream

VERSIONS = ("0.3.0", "0.3.0-rc-2026-03-15")
NO_TRAILERS = ("ok", None)
"""The value of a trailers future without trailers: `result<option<trailers>, error-code>`."""


@dataclass
class Message:
    """What requests and responses share: headers (a `Fields`), the body's readable end (None: no
    body), the trailers future's readable end, and the writer of the future `new` returned."""

    headers: Fields
    body: StreamReader | None
    trailers: FutureReader | None
    done: FutureWriter | None = None
    consumed: bool = False


@dataclass
class Request(Message):
    method: tuple[str, Any] = ("get", None)
    path_with_query: str | None = None
    scheme: tuple[str, Any] | None = None
    authority: str | None = None
    options: dict[str, int | None] | None = None


@dataclass
class Response(Message):
    status: int = 200


@dataclass
class Options:
    values: dict[str, int | None] = field(default_factory=dict)
    immutable: bool = False


def empty_body() -> StreamReader:
    reader, writer = stream(U8)
    writer.close()
    return reader


Trailers = list[tuple[bytes, bytes]]
"""Trailer fields as the HTTP server has them: lower-case names and values, bytes."""


def trailers_to_guest(reader: FutureReader, state: HostState) -> None:
    """An incoming request's trailers future, which the host completes with `("ok", Trailers | None)`
    when the body has ended: as the guest reads it, the fields become a `fields` resource in its host
    state (on the guest's thread, the only one that may touch that state)."""
    def adapt(value: Any) -> Any:
        tag, fields = value
        if tag == "ok" and fields:
            entries = [(name.decode("latin-1"), bytes(v)) for name, v in fields]
            return ("ok", state.table.push(Fields(entries, immutable=True)))
        return ("ok", None) if tag == "ok" else value
    reader.pipe.adapt = adapt


def trailers_from_guest(reader: FutureReader, state: HostState) -> None:
    """A response's trailers future, read by the host off the guest's thread: as the guest writes its
    value (or now, if it already has), the `fields` it hands over leave its host state and the host
    reads `("ok", Trailers | None)`."""
    def adapt(value: Any) -> Any:
        tag, rep = value
        if tag == "ok" and rep is not None:
            fields = state.table.take(rep, Fields)
            return ("ok", [(name.encode("latin-1"), bytes(v)) for name, v in fields.entries])
        return value
    pipe = reader.pipe
    with pipe.cond:
        pipe.adapt = adapt
        if pipe.data:
            pipe.data[0] = adapt(pipe.data[0])


def ready_future(value: Any) -> FutureReader:
    reader, writer = future()
    writer.write(value)
    return reader


def _take_fields(state: HostState, rep: int) -> Fields:
    """A request or response takes its headers: they leave the guest's hands and become immutable."""
    fields = state.table.take(rep, Fields)
    return Fields(fields.entries, immutable=True)


# -- request ---------------------------------------------------------------------------------------

def request_new(state: HostState, headers: int, contents: StreamReader | None, trailers: FutureReader,
                options: int | None) -> tuple[int, FutureReader]:
    reader, writer = future()
    opts = dict(state.table.get(options, Options).values) if options is not None else None
    if options is not None:
        state.table.drop(options)
    request = Request(_take_fields(state, headers), contents, trailers, writer, options=opts)
    return state.table.push(request), reader


def _request(state: HostState, rep: int) -> Request:
    return state.table.get(rep, Request)


def _setter(attr: str, check: Callable[[Any], bool] = lambda v: True) -> Callable[..., Any]:
    def set_(state: HostState, rep: int, value: Any) -> tuple[str, Any]:
        if not check(value):
            return err()
        setattr(_request(state, rep), attr, value)
        return ok()
    return set_


def _getter(kind: type, attr: str) -> Callable[..., Any]:
    def get(state: HostState, rep: int) -> Any:
        return getattr(state.table.get(rep, kind), attr)
    return get


def _headers_of(kind: type) -> Callable[..., int]:
    def headers(state: HostState, rep: int) -> int:
        return child_headers(state, list(state.table.get(rep, kind).headers.entries))
    return headers


def request_options(state: HostState, rep: int) -> int | None:
    options = _request(state, rep).options
    return None if options is None else state.table.push(Options(dict(options), immutable=True))


def consume_body(kind: type[Message]) -> Callable[..., tuple[StreamReader, FutureReader]]:
    """`[static]request.consume-body` / `[static]response.consume-body`: the body and trailers of a
    message the guest gives up. `res` is the guest's report of how consuming went (unused here)."""

    def consume(state: HostState, rep: int, res: FutureReader) -> tuple[StreamReader, FutureReader]:
        message: Message = state.table.take(rep, kind)
        res.close()
        body = message.body if message.body is not None else empty_body()
        trailers = message.trailers if message.trailers is not None else ready_future(NO_TRAILERS)
        message.body = message.trailers = None
        return body, trailers

    return consume


# -- response --------------------------------------------------------------------------------------

def response_new(state: HostState, headers: int, contents: StreamReader | None,
                 trailers: FutureReader) -> tuple[int, FutureReader]:
    reader, writer = future()
    response = Response(_take_fields(state, headers), contents, trailers, writer)
    return state.table.push(response), reader


def response_set_status(state: HostState, rep: int, status: int) -> tuple[str, Any]:
    if not 100 <= status <= 999:
        return err()
    state.table.get(rep, Response).status = status
    return ok()


# -- request-options -------------------------------------------------------------------------------

def options_new(state: HostState) -> int:
    return state.table.push(Options())


def _option_get(key: str) -> Callable[..., Any]:
    def get(state: HostState, rep: int) -> int | None:
        return state.table.get(rep, Options).values.get(key)
    return get


def _option_set(key: str) -> Callable[..., Any]:
    def set_(state: HostState, rep: int, value: int | None) -> tuple[str, Any]:
        options = state.table.get(rep, Options)
        if options.immutable:
            return err(("immutable", None))
        options.values[key] = value
        return ok()
    return set_


def options_clone(state: HostState, rep: int) -> int:
    return state.table.push(Options(dict(state.table.get(rep, Options).values)))


def fields_get_and_delete(state: HostState, rep: int, name: str) -> tuple[str, Any]:
    fields = state.table.get(rep, Fields)
    problem = _check_mutation(fields, name, [])
    if problem is not None:
        return problem
    values = fields_get(state, rep, name)
    fields_delete(state, rep, name)
    return ok(values)


def _valid_authority(value: str | None) -> bool:
    return value is None or ("/" not in value and " " not in value)


FUNCS: dict[str, Callable[..., Any]] = {
    "[constructor]fields": fields_new,
    "[static]fields.from-list": fields_from_list,
    "[method]fields.get": fields_get,
    "[method]fields.has": fields_has,
    "[method]fields.set": fields_set,
    "[method]fields.delete": fields_delete,
    "[method]fields.get-and-delete": fields_get_and_delete,
    "[method]fields.append": fields_append,
    "[method]fields.copy-all": fields_entries,
    "[method]fields.clone": fields_clone,
    "[static]request.new": request_new,
    "[method]request.get-method": _getter(Request, "method"),
    "[method]request.set-method": _setter("method"),
    "[method]request.get-path-with-query": _getter(Request, "path_with_query"),
    "[method]request.set-path-with-query": _setter("path_with_query"),
    "[method]request.get-scheme": _getter(Request, "scheme"),
    "[method]request.set-scheme": _setter("scheme"),
    "[method]request.get-authority": _getter(Request, "authority"),
    "[method]request.set-authority": _setter("authority", _valid_authority),
    "[method]request.get-options": request_options,
    "[method]request.get-headers": _headers_of(Request),
    "[static]request.consume-body": consume_body(Request),
    "[constructor]request-options": options_new,
    "[method]request-options.clone": options_clone,
    "[static]response.new": response_new,
    "[method]response.get-status-code": _getter(Response, "status"),
    "[method]response.set-status-code": response_set_status,
    "[method]response.get-headers": _headers_of(Response),
    "[static]response.consume-body": consume_body(Response),
}
for _key in ("connect-timeout", "first-byte-timeout", "between-bytes-timeout"):
    FUNCS[f"[method]request-options.get-{_key}"] = _option_get(_key)
    FUNCS[f"[method]request-options.set-{_key}"] = _option_set(_key)

INTERFACES = [HostInterface(f"wasi:http/types@{version}", FUNCS,
                            ("fields", "request", "response", "request-options"))
              for version in VERSIONS]

__all__ = ["INTERFACES", "Request", "Response", "method_variant"]
