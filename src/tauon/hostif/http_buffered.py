"""Spin's buffered outbound HTTP (`fermyon:spin/http` v1 `send-request`, crates/factor-outbound-http/
src/spin.rs), shared by components (spin_http.py) and Spin 1.x core modules (executors/legacy_http.py
adapts the `wasi-outbound-http.request` ABI to it).

- An absolute URI is checked against `allowed_outbound_hosts` first (a URI without a scheme as
  `https://`); one that is not allowed, or cannot be parsed, is `destination-not-allowed`. An allowed
  URI the HTTP layer cannot take (spaces, control or non-ASCII characters) is `invalid-url`.
- A relative URI needs `http://self` / `https://self` and goes to the app's own listener; the
  Spin 1.x executor has no such origin, so there an allowed one is `invalid-url` (what Spin answers
  when it has no self origin).
- Any failure to connect, send or read is `runtime-error`, and so is a response whose headers and
  body exceed 128 MiB (Spin's MAX_HOST_BUFFERED_BYTES). Spin's `too-many-requests` needs a configured
  connection limit, which tauon has not.
- Request bodies and responses are buffered whole. Spin's reqwest client has no timeout: the wait is
  bounded by the request's deadline here, and the guest lends its run slot while it waits.
  Connections are kept alive (Spin's client lives as long as the instance; tauon's pool as long as
  the request for Spin 1.x modules, as long as the component's generation for components).
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tauon.hostif.http_pool import HttpPool, Origin, open_connection
from tauon.runtimeconfig.networks import BlockedNetworks

MAX_BUFFERED = 128 << 20
"""Spin's MAX_HOST_BUFFERED_BYTES: headers plus body of one response."""
DESTINATION_NOT_ALLOWED, INVALID_URL, RUNTIME_ERROR, TOO_MANY_REQUESTS = 1, 2, 4, 5
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
"""What the `http` crate's URI parser refuses: whitespace, controls, anything not ASCII."""


class HttpError(Exception):
    def __init__(self, case: int, why: str) -> None:
        super().__init__(why)
        self.case = case


@dataclass
class LegacyHttp:
    """Per request: what the import may reach, its deadline, and its keep-alive connections."""

    allows_url: Callable[[str, str], bool]
    allows_relative: Callable[[], bool]
    deadline: float
    pool: HttpPool = field(default_factory=lambda: HttpPool(enabled=True))
    self_origin: tuple[str, int] | None = None
    """The app's own listener, where relative URIs go (None: they are `invalid-url`)."""
    blocked: BlockedNetworks | None = None
    """The runtime config's block_networks (None: none)."""
    tls: Mapping[str, ssl.SSLContext] = field(default_factory=dict)
    """host -> the runtime config's `[[client_tls]]` context for it."""
    limit: threading.BoundedSemaphore | None = None
    """`[outbound_http] max_connections`: the app's requests in flight (beyond: too-many-requests)."""

    def close(self) -> None:
        self.pool.close()


def send(outbound: LegacyHttp, method: str, uri: str, headers: list[tuple[str, str]],
         body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
    if uri.startswith("/"):
        if not outbound.allows_relative():
            raise HttpError(DESTINATION_NOT_ALLOWED, "self-requests are not allowed")
        if outbound.self_origin is None or _UNSAFE.search(uri):
            raise HttpError(INVALID_URL, "no origin for a relative URL" if outbound.self_origin is None
                            else "not a valid URI")
        return _exchange(outbound, ("http", *outbound.self_origin), method, uri, headers, body)
    if not outbound.allows_url(uri, "https"):
        raise HttpError(DESTINATION_NOT_ALLOWED, "denied by allowed_outbound_hosts")
    if _UNSAFE.search(uri):
        raise HttpError(INVALID_URL, "not a valid URI")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(RUNTIME_ERROR, f"cannot send a request to a {parts.scheme or 'relative'} URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise HttpError(INVALID_URL, "bad port") from None
    origin: Origin = (parts.scheme, parts.hostname, port)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _exchange(outbound, origin, method, path, headers, body)


def _exchange(outbound: LegacyHttp, origin: Origin, method: str, path: str, headers: list[tuple[str, str]],
              body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
    if outbound.limit is None:
        return _exchange_now(outbound, origin, method, path, headers, body)
    if not outbound.limit.acquire(timeout=max(0.0, outbound.deadline - time.monotonic())):
        raise HttpError(TOO_MANY_REQUESTS, "[outbound_http] max_connections requests are in flight")
    try:
        return _exchange_now(outbound, origin, method, path, headers, body)
    finally:
        outbound.limit.release()


def _exchange_now(outbound: LegacyHttp, origin: Origin, method: str, path: str,
                  headers: list[tuple[str, str]],
                  body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
    timeout = max(0.001, outbound.deadline - time.monotonic())
    conn = outbound.pool.checkout(origin)
    try:
        if conn is None:
            conn = open_connection(origin, timeout,
                                   blocked=None if origin[1:] == outbound.self_origin else outbound.blocked,
                                   tls=outbound.tls.get(origin[1].lower()))
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        out_headers = [(k.lower(), v) for k, v in response.getheaders() if v.isascii()]
        budget = MAX_BUFFERED - sum(len(k) + len(v) for k, v in out_headers)
        data = response.read(max(0, budget) + 1)
        if len(data) > budget:
            raise HttpError(RUNTIME_ERROR, f"the response is over {MAX_BUFFERED} bytes")
        if not response.isclosed():
            response.read()  # an empty remainder marks the response done
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if conn is not None:
            conn.close()
        raise HttpError(RUNTIME_ERROR, f"{type(exc).__name__}: {exc}") from None
    except HttpError:
        if conn is not None:
            conn.close()
        raise
    if response.will_close:
        conn.close()
    else:
        outbound.pool.checkin(origin, conn)
    return response.status, out_headers, data
