"""wasi:http/outgoing-handler 0.2: outbound HTTP, checked against `allowed_outbound_hosts` (spin-spec §5.5).

A denied request fails with `HTTP-request-denied` before any connection is made. An allowed one runs on
its own thread with `http.client`: the request body streams from the guest's outgoing-body pipe and
the response body streams into the guest's incoming-body pipe, both bounded. As in Spin (§3.8), a
request to `<component>.spin.internal` is served in-process by that component (server/chaining.py),
and a self-request (no authority, or `self.alt`) goes to the app's own listener.

Connections are kept alive in the component's pool (http_pool.py) for the next request to the same
origin, as Spin's client pools them. Timeouts are the guest's request options, else Spin's 600 s,
and never reach past the request's deadline: the app's `request_timeout` is what bounds a slow
upstream. `send_request` is the one place a request is sent.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
from tauon.hostif.http_pool import Origin, open_connection
from tauon.hostif.http_senders import Senders
from tauon.hostif.io import Pollable
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.runtimeconfig.networks import BlockedNetworks, DestinationBlocked
from tauon.wasm.component.codec import err, ok

NS = 1_000_000_000
DEFAULT_TIMEOUT = 600.0
"""Spin's connect, first-byte and between-bytes timeout when the guest sets none (factor-outbound-http)."""
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
        scheme = config.self_scheme
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
    timeouts = timeouts_for(state, options.timeouts)
    release = _take_slot(state)
    if release is None:
        state.config.logger.warning("%s: outbound request refused: more than %d in flight (this request) "
                                    "or %d (this process)", config.label, PER_REQUEST, PER_PROCESS)
        if future.span is not None:
            tracing.end_outbound_http(future.span, ("err", ("connection-limit-reached", None)))
        return err(("connection-limit-reached", None))
    _senders.run(_send, state, request, scheme, future, timeouts, connect_to, release)
    return ok(state.table.push(future))


def _send(state: HostState, request: OutgoingRequest, scheme: str, future: FutureIncomingResponse,
          timeouts: Timeouts, connect_to: tuple[str, int] | None, release: Callable[[], None]) -> None:
    """The request's own thread: the exchange, within `[outbound_http] max_connections` if set."""
    services = state.config.services
    try:
        limit = services.http_limit if services is not None else None
        if limit is None:
            _exchange(state, request, scheme, future, timeouts, connect_to)
        elif not limit.acquire(timeout=max(0.0, state.deadline - time.monotonic())):
            with state.cond:  # none freed up in time
                future.result = ("err", ("connection-limit-reached", None))
                state.cond.notify_all()
        else:
            try:
                _exchange(state, request, scheme, future, timeouts, connect_to)
            finally:
                limit.release()
    finally:
        release()


PER_REQUEST = 64
"""Outbound HTTP requests one guest request may have in flight: each holds a thread (which may outlive
the guest until the remote answers, within the request's deadline)."""
PER_PROCESS = 512
"""...and all guests of this process together."""
_process_slots = threading.BoundedSemaphore(PER_PROCESS)
_senders = Senders()
"""The threads exchanges run on (each request its own, reused afterwards)."""
_REQUEST_SLOTS = "outbound-http-slots"


def _take_slot(state: HostState) -> Callable[[], None] | None:
    """A slot for one more outbound request (its release), or None when a bound is reached."""
    mine: threading.BoundedSemaphore = state.extensions.setdefault(
        _REQUEST_SLOTS, threading.BoundedSemaphore(PER_REQUEST))
    if not mine.acquire(blocking=False):
        return None
    if not _process_slots.acquire(blocking=False):
        mine.release()
        return None

    def release() -> None:
        _process_slots.release()
        mine.release()

    return release


def _refuse(state: HostState, url: str) -> tuple[str, Any]:
    state.config.logger.info("%s: outbound request to %s denied by allowed_outbound_hosts",
                             state.config.label, loggable_url(url))
    return denied()


def loggable_url(url: str) -> str:
    """`url` for a log line: no query string, and no user:password@ (an authority may carry them)."""
    url = url.split("?", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


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


def _blocked(state: HostState, origin: Origin) -> BlockedNetworks | None:
    """The blocklist for a connection to `origin`; none for the app's own listener (a self-request,
    which Spin serves in-process)."""
    services = state.config.services
    if services is None or origin[1:] == state.config.self_origin:
        return None
    return services.blocked_networks


def _tls(state: HostState, origin: Origin) -> ssl.SSLContext | None:
    """The runtime config's `[[client_tls]]` context for this component and host (None: the default)."""
    services = state.config.services
    return services.tls_contexts.get(origin[1].lower()) if services is not None else None


def _error_code(exc: BaseException, phase: str) -> tuple[str, Any]:
    """The wasi:http `error-code` of a failure while connecting (`phase` 'connect') or waiting for the
    response head ('response'), as Spin maps them."""
    if isinstance(exc, DestinationBlocked):
        return ("destination-IP-prohibited", None)
    if isinstance(exc, ConnectionRefusedError):
        return ("connection-refused", None)
    if isinstance(exc, socket.gaierror):
        return ("DNS-error", {"rcode": "address not available", "info-code": 0})
    if isinstance(exc, TimeoutError | socket.timeout):
        return ("connection-timeout", None) if phase == "connect" else ("connection-read-timeout", None)
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


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    between_bytes: float


def timeouts_for(state: HostState, options: dict[str, int | None]) -> Timeouts:
    """The guest's request options, else Spin's default (600 s), never past the request's deadline:
    the app's request timeout is what bounds an outbound call."""
    left = max(0.001, state.deadline - time.monotonic())

    def pick(key: str) -> float:
        given = options.get(key)
        return min(given / NS if given else DEFAULT_TIMEOUT, left)

    return Timeouts(pick("connect-timeout"), pick("first-byte-timeout"), pick("between-bytes-timeout"))


def _target(scheme: str, authority: str, connect_to: tuple[str, int] | None) -> Origin:
    if connect_to is not None:  # a self-request: the app's own listener, whatever the URL said
        return (scheme, connect_to[0], connect_to[1])
    parts = urlsplit(f"//{authority}")
    return (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))


def send_request(state: HostState, request: OutgoingRequest, origin: Origin, timeouts: Timeouts,
                 ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one outbound request and read its response head: the one place a request leaves tauon
    (a tracing hook belongs here). Reuses a pooled connection to `origin` when there is one (a reused
    connection the server closed meanwhile is replaced once, if the request has no body to replay)."""
    pool = state.config.http_pool
    headers: dict[str, str] = {}
    for name, value in request.headers.entries:
        text = value.decode("latin-1")
        headers[name] = text if name not in headers else f"{headers[name]}, {text}"
    body = _body_chunks(state, request.pipe, timeouts.first_byte) if request.body_taken else None
    chunked = body is not None and "content-length" not in headers
    method, path = method_text(request.method), request.path_with_query or "/"
    conn = pool.checkout(origin) if pool is not None else None
    while True:
        reused = conn is not None
        if conn is None:
            try:
                conn = open_connection(origin, timeouts.connect, blocked=_blocked(state, origin),
                                       tls=_tls(state, origin))
            except BaseException as exc:
                raise OutboundError(_error_code(exc, "connect")) from exc
            if pool is not None:
                pool.created += 1
        try:
            if conn.sock is not None:
                conn.sock.settimeout(timeouts.first_byte)
            conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            response = conn.getresponse()
        except BaseException as exc:
            conn.close()
            if reused and body is None and isinstance(exc, ConnectionError | http.client.RemoteDisconnected):
                conn = None  # the server dropped the idle connection as we reused it: once more, fresh
                continue
            raise OutboundError(_error_code(exc, "response")) from exc
        if conn.sock is not None:
            conn.sock.settimeout(timeouts.between_bytes)
        return conn, response


class OutboundError(Exception):
    def __init__(self, code: tuple[str, Any]) -> None:
        super().__init__(code[0])
        self.code = code


def _exchange(state: HostState, request: OutgoingRequest, scheme: str, future: FutureIncomingResponse,
              timeouts: Timeouts, connect_to: tuple[str, int] | None = None) -> None:
    origin = _target(scheme, request.authority or "", connect_to)
    try:
        conn, response = send_request(state, request, origin, timeouts)
    except OutboundError as exc:
        with state.cond:
            future.result = ("err", exc.code)
            state.cond.notify_all()
        return
    pipe = BytePipe(state.cond, BODY_BUFFER)
    response_headers = [(k.lower(), v.encode("latin-1")) for k, v in response.getheaders()]
    with state.cond:
        future.result = ("ok", IncomingResponse(response.status, response_headers, IncomingBody(pipe)))
        state.cond.notify_all()
    pool = state.config.http_pool

    def release() -> None:
        """The body was read to its end: the connection can carry the next request."""
        if pool is not None and not response.will_close:
            response.close()  # read1 leaves a fully read content-length body open; the socket stays up
            pool.checkin(origin, conn)
        else:
            conn.close()

    if not _pump(state, response, pipe, timeouts.between_bytes, release):
        conn.close()


def _pump(state: HostState, response: http.client.HTTPResponse, pipe: BytePipe, timeout: float,
          release: Callable[[], None]) -> bool:
    """Copy the response body into the guest's pipe, waiting for room; stop if the guest goes away.
    At the body's end, `release` the connection before the guest sees the end, so the guest's next
    request finds it in the pool. False if the body was not read to its end."""
    try:
        while True:
            data = response.read1(1 << 16)
            if not data:
                release()
                pipe.close()
                return True
            with state.cond:
                if not state.cond.wait_for(pipe.writable, timeout) or pipe.reader_gone:
                    return False
            pipe.write(data)
    except (OSError, http.client.HTTPException, PipeError) as exc:
        pipe.close(error=f"reading the response body failed: {exc}")
        return False


INTERFACES = [
    HostInterface("wasi:http/outgoing-handler", {"handle": handle}),
    HostInterface("wasi:http/types", {
        "[method]future-incoming-response.subscribe": future_subscribe,
        "[method]future-incoming-response.get": future_get,
    }),
]
