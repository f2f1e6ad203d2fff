"""`fermyon:spin/http` (v1, unversioned): `send-request`, Spin's buffered outbound HTTP for components.

The same implementation as the Spin 1.x `wasi-outbound-http` import (http_buffered.py, which lists
Spin's semantics and errors), with the component's `allowed_outbound_hosts`, its self origin
for relative URIs, its keep-alive pool, and the request's deadline.
"""

from __future__ import annotations

from typing import Any

from tauon.hostif.http_buffered import HttpError, LegacyHttp, send
from tauon.hostif.http_pool import HttpPool
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok

HTTP_ERRORS = ("success", "destination-not-allowed", "invalid-url", "request-error", "runtime-error",
               "too-many-requests")


def _outbound(state: HostState) -> LegacyHttp:
    config = state.config
    allowed = config.allowed_hosts

    def allows_url(url: str, scheme: str) -> bool:
        return allowed is not None and allowed.allows(url, scheme)

    def allows_relative() -> bool:
        return allowed is not None and allowed.allows_relative(["http", "https"])

    pool = config.http_pool if config.http_pool is not None else HttpPool(enabled=False)
    services = config.services
    if services is None:
        return LegacyHttp(allows_url, allows_relative, state.deadline, pool, config.self_origin)
    return LegacyHttp(allows_url, allows_relative, state.deadline, pool, config.self_origin,
                      services.blocked_networks, services.tls_contexts, services.http_limit)


def send_request(state: HostState, request: dict[str, Any]) -> tuple[str, Any]:
    if request["params"]:
        state.config.logger.info("%s: the HTTP params field is deprecated (ignored, as Spin ignores it)",
                                 state.config.label)
    uri: str = request["uri"]
    try:
        with state.slot.blocked():
            status, headers, body = send(_outbound(state), str(request["method"]).upper(), uri,
                                         [tuple(h) for h in request["headers"]], request["body"])
    except HttpError as exc:
        state.config.logger.info("%s: outbound request to %s failed: %s", state.config.label,
                                 uri.split("?", 1)[0], exc)
        return err(HTTP_ERRORS[exc.case])
    return ok({"status": status, "headers": headers, "body": body})


INTERFACES = [HostInterface("fermyon:spin/http", {"send-request": send_request})]
