"""wasi:http/outgoing-handler 0.2: outbound HTTP, checked against `allowed_outbound_hosts` (spin-spec §5.5).

A denied request fails with `HTTP-request-denied` before any connection is made. An allowed one runs on
its own thread with `http.client`: the request body streams from the guest's outgoing-body pipe and
the response body streams into the guest's incoming-body pipe, both bounded. As in Spin (§3.8), a
request to `<component>.spin.internal` is served in-process by that component (server/chaining.py),
and a self-request (no authority, or `self.alt`) goes to the app's own listener.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from typing import Any

from tauon import tracing
from tauon.app.allowed_hosts import SERVICE_CHAINING_SUFFIX
from tauon.hostif.http import (
    BODY_BUFFER,
    IncomingBody,
    IncomingResponse,
    OutgoingRequest,
    RequestOptions,
    method_text,
    scheme_text,
)
from tauon.hostif.io import Pollable
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok

NS = 1_000_000_000
SELF_ALT = "self.alt"
"""The authority wasi:http guests use for a self-request (besides no authority at all)."""


class FutureIncomingResponse:
    def __init__(self) -> None:
        self.result: tuple[str, Any] | None = None
        """('ok', IncomingResponse) or ('err', error-code), set by the client thread under `cond`."""
        self.taken = False
        self.span: Any = None
        """The request's client span when tracing is on; ended when the guest takes the result."""

    def ready(self) -> bool:
        return self.result is not None

    def on_drop(self) -> None:
        if self.span is not None:  # dropped before the guest took the response
            span, self.span = self.span, None
            tracing.end_outbound_http(span, self.result)


def denied() -> tuple[str, Any]:
    return err(("HTTP-request-denied", None))


def handle(state: HostState, req_rep: int, options_rep: int | None) -> tuple[str, Any]:
    request = state.table.take(req_rep, OutgoingRequest)
    options = state.table.take(options_rep, RequestOptions) if options_rep is not None else RequestOptions()
    config = state.config
    scheme = scheme_text(request.scheme)
    allowed = config.allowed_hosts
    host = (request.authority or "").rsplit(":", 1)[0].lower() if request.authority else ""
    connect_to: tuple[str, int] | None = None
    if not request.authority or host == SELF_ALT:
        # A self-request (spin-spec §3.8): to this app's own listener, if `self` is allowed.
        if allowed is None or not allowed.allows_relative([scheme]):
            return _refuse(state, f"{scheme}://self{request.path_with_query or '/'}")
        if config.self_origin is None:
            return err(("HTTP-request-URI-invalid", None))
        connect_to = config.self_origin
        if not request.authority:
            request.authority = _origin_text(connect_to)
    else:
        url = f"{scheme}://{request.authority}{request.path_with_query or '/'}"
        if allowed is None or not allowed.allows(url):
            return _refuse(state, url)
    if scheme not in ("http", "https"):
        return err(("HTTP-protocol-error", None))
    request.pipe.limit = BODY_BUFFER
    future = FutureIncomingResponse()
    if state.trace is not None:  # tracing: a client span, whose context goes out as traceparent
        future.span = tracing.start_outbound_http(state, method_text(request.method), scheme,
                                                  request.authority or "", request.path_with_query or "/",
                                                  request.headers.entries)
    if host.endswith(SERVICE_CHAINING_SUFFIX):
        component = host[: -len(SERVICE_CHAINING_SUFFIX)]
        if config.chain is None or not config.chain.knows(component):
            if future.span is not None:
                tracing.end_outbound_http(future.span, ("err", ("destination-not-found", None)))
            return err(("destination-not-found", None))
        config.chain.start(component, request, future, state)
        return ok(state.table.push(future))
    timeouts = {k: (v / NS if v is not None else None) for k, v in options.timeouts.items()}
    thread = threading.Thread(target=_exchange, args=(state, request, scheme, future, timeouts, connect_to),
                              name=f"tauon-http-out {config.label}", daemon=True)
    thread.start()
    return ok(state.table.push(future))


def _refuse(state: HostState, url: str) -> tuple[str, Any]:
    state.config.logger.info("%s: outbound request to %s denied by allowed_outbound_hosts",
                             state.config.label, url.split("?", 1)[0])
    return denied()


def _origin_text(origin: tuple[str, int]) -> str:
    host, port = origin
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def future_subscribe(state: HostState, rep: int) -> int:
    future = state.table.get(rep, FutureIncomingResponse)
    return state.table.push(Pollable(future.ready))


def future_get(state: HostState, rep: int) -> tuple[str, Any] | None:
    future = state.table.get(rep, FutureIncomingResponse)
    with state.cond:
        result = future.result
    if result is None:
        return None
    if future.taken:
        return err()
    future.taken = True
    if future.span is not None:
        span, future.span = future.span, None
        tracing.end_outbound_http(span, result)
    if result[0] == "err":
        return ok(result)
    return ok(ok(state.table.push(result[1])))


def _error_code(exc: BaseException) -> tuple[str, Any]:
    if isinstance(exc, ConnectionRefusedError):
        return ("connection-refused", None)
    if isinstance(exc, socket.gaierror):
        return ("DNS-error", {"rcode": str(exc.args[-1]) if exc.args else None, "info-code": None})
    if isinstance(exc, TimeoutError | socket.timeout):
        return ("connection-timeout", None)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ("TLS-certificate-error", None)
    if isinstance(exc, ssl.SSLError):
        return ("TLS-protocol-error", None)
    if isinstance(exc, http.client.HTTPException):
        return ("HTTP-protocol-error", None)
    if isinstance(exc, ConnectionError):
        return ("connection-terminated", None)
    return ("internal-error", f"{type(exc).__name__}: {exc}")


def _body_chunks(state: HostState, pipe: BytePipe, timeout: float) -> Any:
    """The guest's request body as it is written (raises if the guest abandons it)."""
    while True:
        with state.cond:
            if not state.cond.wait_for(pipe.readable, timeout):
                raise TimeoutError("the guest did not write the request body in time")
            data = pipe.read(1 << 16)
        if data is None:
            return
        if data:
            yield data


def _exchange(state: HostState, request: OutgoingRequest, scheme: str, future: FutureIncomingResponse,
              timeouts: dict[str, float | None], connect_to: tuple[str, int] | None = None) -> None:
    default = state.config.outbound_timeout
    connect_timeout = timeouts.get("connect-timeout") or default
    read_timeout = timeouts.get("first-byte-timeout") or default
    conn_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    authority = request.authority or ""
    try:
        if connect_to is not None:  # a self-request: the app's own listener, whatever the URL said
            conn = conn_type(connect_to[0], connect_to[1], timeout=connect_timeout)
        else:
            conn = conn_type(authority, timeout=connect_timeout)
        headers: dict[str, str] = {}
        for name, value in request.headers.entries:
            headers[name] = value.decode("latin-1") if name not in headers else f"{headers[name]}, " \
                f"{value.decode('latin-1')}"
        body = _body_chunks(state, request.pipe, read_timeout) if request.body_taken else None
        chunked = body is not None and "content-length" not in headers
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        conn.request(method_text(request.method), request.path_with_query or "/", body=body,
                     headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        if conn.sock is not None:
            conn.sock.settimeout(timeouts.get("between-bytes-timeout") or default)
    except BaseException as exc:
        with state.cond:
            future.result = ("err", _error_code(exc))
            state.cond.notify_all()
        return
    pipe = BytePipe(state.cond, BODY_BUFFER)
    response_headers = [(k.lower(), v.encode("latin-1")) for k, v in response.getheaders()]
    with state.cond:
        future.result = ("ok", IncomingResponse(response.status, response_headers, IncomingBody(pipe)))
        state.cond.notify_all()
    _pump(state, response, pipe)
    conn.close()


def _pump(state: HostState, response: http.client.HTTPResponse, pipe: BytePipe) -> None:
    """Copy the response body into the guest's pipe, waiting for room; stop if the guest goes away."""
    try:
        while True:
            data = response.read1(1 << 16)
            if not data:
                pipe.close()
                return
            with state.cond:
                state.cond.wait_for(lambda: pipe.writable(), state.config.outbound_timeout)
                if pipe.reader_gone:
                    return
            pipe.write(data)
    except (OSError, http.client.HTTPException, PipeError) as exc:
        pipe.close(error=f"reading the response body failed: {exc}")


INTERFACES = [
    HostInterface("wasi:http/outgoing-handler", {"handle": handle}),
    HostInterface("wasi:http/types", {
        "[method]future-incoming-response.subscribe": future_subscribe,
        "[method]future-incoming-response.get": future_get,
    }),
]
