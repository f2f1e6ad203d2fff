"""The ASGI app behind one listener: points at the app's current generation and runs Spin's pipeline.

The pipeline order is Spin's (spin-spec §3.2): strip forbidden headers, answer /.well-known/spin/*,
route (404 with an empty body), compute the spin-* values, then a static response or the executor.
Any failure before the response starts is a 500 with an empty body, logged with app and component.
Every request bumps the app's RequestStats (a few integer updates) and, when enabled, writes one access
log line (at info with --access-log, else debug). With tracing on (tauon.tracing), each request also
gets a server span and its executor run an execution span; with it off, that costs one `is None`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send

from tauon import tracing
from tauon.app.spinvalues import well_known_response
from tauon.executors.base import GuestError
from tauon.executors.responses import RETRY_AFTER, failure_status, respond
from tauon.metrics import RequestStats
from tauon.server.generation import Generation
from tauon.server.requests import routed_request
from tauon.server.trailers import ACCEPTS_KEY, TRAILERS_KEY

if TYPE_CHECKING:
    from tauon.tracing.spans import ServerTrace

log = logging.getLogger("tauon.http")
access_log = logging.getLogger("tauon.access")


class _Outcome:
    """What one request came to, for the metrics and the access log."""

    __slots__ = ("component", "route", "status", "trace")

    def __init__(self) -> None:
        self.status = 0
        self.component = "-"
        self.route: str | None = None
        self.trace: ServerTrace | None = None


class Switchboard:
    def __init__(self, app_id: str, generation: Generation | None = None, *,
                 stats: RequestStats | None = None, access_log: bool = False) -> None:
        self.app_id = app_id
        self.current = generation
        self.stats = stats if stats is not None else RequestStats()
        self.access_level = logging.INFO if access_log else logging.DEBUG

    def swap(self, generation: Generation | None) -> Generation | None:
        """Point new requests at `generation`; requests already running stay on the old one."""
        old, self.current = self.current, generation
        return old

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not part of Spin's HTTP trigger
        started = time.perf_counter()
        stats = self.stats
        stats.inflight += 1
        outcome = _Outcome()
        active = tracing.ACTIVE
        if active is not None:
            outcome.trace = active.server(self.app_id, scope)
        try:
            generation = self.current
            if generation is None:
                outcome.status = 503
                await respond(send, 503, [RETRY_AFTER])
                return
            generation.enter()
            try:
                await self._handle(generation, scope, receive, send, outcome)
            finally:
                generation.leave()
        finally:
            elapsed = time.perf_counter() - started
            stats.inflight -= 1
            stats.observe(outcome.component, outcome.status, elapsed)
            if outcome.trace is not None:
                outcome.trace.finish(scope["method"], outcome.route, outcome.component, outcome.status)
            if access_log.isEnabledFor(self.access_level):
                self._log_access(scope, outcome, elapsed)

    def _log_access(self, scope: Scope, outcome: _Outcome, elapsed: float) -> None:
        # The path only: query strings often carry tokens.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        duration_ms = round(elapsed * 1000, 3)
        extra: dict[str, object] = {
            "app": self.app_id, "component": outcome.component, "method": scope["method"], "path": path,
            "status": outcome.status or None, "duration_ms": duration_ms}
        if outcome.trace is None:
            access_log.log(self.access_level, "%s/%s %s %s -> %s in %.1f ms", self.app_id, outcome.component,
                           scope["method"], path, outcome.status or "-", duration_ms, extra=extra)
            return
        extra["trace_id"], extra["span_id"] = outcome.trace.ids()
        access_log.log(self.access_level, "%s/%s %s %s -> %s in %.1f ms trace_id=%s", self.app_id,
                       outcome.component, scope["method"], path, outcome.status or "-", duration_ms,
                       extra["trace_id"], extra=extra)

    async def _handle(self, gen: Generation, scope: Scope, receive: Receive, send: Send,
                      outcome: _Outcome) -> None:
        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
            await send(message)

        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        try:
            await self._dispatch(gen, scope, path, receive, tracking_send, outcome)
        except UnicodeDecodeError:
            log.warning("%s: request %s has a header value that is not UTF-8: 500", self.app_id, path)
            if not outcome.status:
                await respond(tracking_send, 500)
        except GuestError as exc:
            self._log_failure(gen, scope, path, exc, outcome)
            if not outcome.status:
                status, headers = failure_status(exc)
                await respond(tracking_send, status, headers)
        except Exception:
            log.exception("%s/%s: %s %s failed", self.app_id, outcome.component, scope["method"], path)
            if not outcome.status:
                await respond(tracking_send, 500)

    async def _dispatch(self, gen: Generation, scope: Scope, path: str, receive: Receive, send: Send,
                        outcome: _Outcome) -> None:
        """Spin's pipeline after the connection headers: well-known routes, routing, then a static
        response or the executor. Raises what the executor raises."""
        headers, host = _client_headers(scope)
        plan = gen.plan
        known = well_known_response(path, name=plan.name, version=plan.version, oci_image_digest=plan.digest)
        if known is not None:
            outcome.route = path  # as Spin names the well-known routes
            status, hdrs, body = known
            await respond(send, status, hdrs, body)
            return
        match = gen.router.match(path)
        if match is None:
            await respond(send, 404)
            return
        target = match.target
        if host is None:
            # Spin drops the connection; HTTP/1.0 clients may omit Host, so say what is wrong.
            await respond(send, 400)
            return
        if target.static is not None:
            await respond(send, target.static.status, target.static.headers, target.static.body or b"")
            return
        assert target.executor is not None
        outcome.component = target.executor.component_id
        outcome.route = match.raw_route
        client = scope.get("client") or ("0.0.0.0", 0)
        request = routed_request(match, method=scope["method"], path=path,
                                 query=scope.get("query_string", b"").decode("latin-1"),
                                 headers=headers, scheme=scope.get("scheme", "http"), authority=host,
                                 client=(client[0], client[1]), http_version=scope.get("http_version", "1.1"),
                                 trailers=scope.get(TRAILERS_KEY), accepts_trailers=ACCEPTS_KEY in scope)
        if outcome.trace is None:
            await target.executor.serve(request, receive, send)
        else:
            with outcome.trace.execute(self.app_id, target.executor):
                await target.executor.serve(request, receive, send)

    def _log_failure(self, gen: Generation, scope: Scope, path: str, exc: GuestError,
                     outcome: _Outcome) -> None:
        if exc.kind == "busy":  # the host is full, not the guest at fault: let the client retry
            log.warning("%s/%s: %s %s: 503, every instance slot is in use (%s); raise "
                        "--instance-pool if this persists", self.app_id, outcome.component,
                        scope["method"], path, exc)
            return
        # Say which limit was hit in words an operator can act on; the guest's text follows.
        why = {"timeout": f"exceeded the request timeout ({gen.plan.limits.request_timeout:g}s); ",
               "memory": f"exceeded the memory limit ({gen.plan.limits.max_memory // 2**20} MiB); "
               }.get(exc.kind, "")
        log.error("%s/%s: %s %s failed: %s%s", self.app_id, outcome.component, scope["method"], path,
                  why, exc)


def _client_headers(scope: Scope) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """The client's headers as the guest sees them (lower-case names, `connection` stripped, a
    `*.spin.internal` host dropped) and the Host. Raises UnicodeDecodeError (a 500, as in Spin)."""
    headers: list[tuple[str, str]] = []
    host: str | None = None
    for name_b, value_b in scope["headers"]:
        name = name_b.decode("latin-1").lower()
        if name == "connection":
            continue  # Spin always strips it
        value = value_b.decode("utf-8")  # non-UTF-8 values are a 500, as in Spin
        if name == "host":
            if value.split(":", 1)[0].endswith(".spin.internal"):
                continue
            host = value
        headers.append((name, value))
    return tuple(headers), host
