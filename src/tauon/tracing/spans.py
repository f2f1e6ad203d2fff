"""The OpenTelemetry side of tracing: the SDK set-up and the spans tauon makes (imported only when on).

Names and attributes follow Spin's spans and the HTTP semantic conventions; tauon adds `tauon.app`
(the app's id, as in logs and metrics) and `spin.component.id`. Query strings are not recorded
(`url.query`, the query part of `url.full`): they often carry tokens, and tauon never logs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tauon import __version__
from tauon.tracing.config import TracingConfig, TracingConfigError

PROPAGATOR = TraceContextTextMapPropagator()
"""W3C trace context only, as Spin propagates it (traceparent, tracestate; no baggage)."""
KINDS = {"client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER,
         "internal": SpanKind.INTERNAL, "server": SpanKind.SERVER}
PROPAGATED = ("traceparent", "tracestate")
WAGI_EXECUTORS = frozenset({"WagiExecutor", "WagiComponentExecutor"})


def mark_error(span: Any, error_type: str, description: str | None = None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))


def _exporter(protocol: str) -> SpanExporter:
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
        except ImportError:
            raise TracingConfigError("OTLP over gRPC needs the optional gRPC exporter: "
                                     "pip install 'tauon[otlp-grpc]', or use http/protobuf") from None
        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def _resource(worker: int | None) -> Resource:
    # OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then "tauon" (Spin: "spin").
    detected = Resource.create({})
    name = str(detected.attributes.get("service.name", ""))
    attributes: dict[str, Any] = {"service.version": __version__, "process.pid": os.getpid()}
    if not name or name.startswith("unknown_service"):
        attributes["service.name"] = "tauon"
    if worker is not None:
        attributes["tauon.worker"] = worker
    return detected.merge(Resource(attributes))


class Tracing:
    def __init__(self, provider: TracerProvider, protocol: str = "http/protobuf") -> None:
        self.provider = provider
        self.protocol = protocol
        self.tracer = provider.get_tracer("tauon", __version__)

    @classmethod
    def from_config(cls, config: TracingConfig, *, worker: int | None = None,
                    exporter: SpanExporter | None = None) -> Tracing:
        # The sampler (OTEL_TRACES_SAMPLER[_ARG]), span limits and batching (OTEL_BSP_*) come from
        # the environment through the SDK's own defaults.
        provider = TracerProvider(resource=_resource(worker))
        provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(config.protocol)))
        return cls(provider, config.protocol)

    def shutdown(self) -> None:
        self.provider.shutdown()

    def current(self) -> Context:
        return otel_context.get_current()

    def server(self, app_id: str, scope: Mapping[str, Any]) -> ServerTrace:
        return ServerTrace(self.tracer, app_id, scope)

    @contextmanager
    def client_span(self, parent: Context | None, name: str, attributes: Mapping[str, Any] | None,
                    kind: str) -> Iterator[Span]:
        span = self.tracer.start_span(name, context=parent, kind=KINDS[kind], attributes=attributes)
        with trace.use_span(span, end_on_exit=True):
            yield span

    @contextmanager
    def chained(self, app_id: str, executor: Any, headers: tuple[tuple[str, str], ...]) -> Iterator[None]:
        """The execution span of a service-chained request, a child of the caller's outbound span
        (whose context tauon put in the chained request's headers)."""
        carrier = {name: value for name, value in headers if name in PROPAGATED}
        with execute_span(self.tracer, PROPAGATOR.extract(carrier), app_id, executor):
            yield

    def outbound_http(self, parent: Context | None, method: str, scheme: str, authority: str,
                      path: str, entries: list[tuple[str, bytes]]) -> Span:
        """Start the client span of an outbound HTTP request and put its context into the
        request's headers (`entries`, replacing any the guest set, as Spin does)."""
        host, port = _host_port(authority.rpartition("@")[2], scheme)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": f"{scheme}://{authority.rpartition('@')[2]}{path.split('?', 1)[0] or '/'}",
            "server.address": host,
        }
        if port is not None:
            attributes["server.port"] = port
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, parent))
        if carrier:
            entries[:] = [(k, v) for k, v in entries if k not in carrier]
            entries.extend((k, v.encode("latin-1")) for k, v in carrier.items())
        return span


def end_outbound_http(span: Span, result: tuple[str, Any] | None) -> None:
    """End an outbound HTTP span with what the request came to: ('ok', response), ('err',
    error-code) or None (the guest dropped the request before it was answered)."""
    if result is None:
        span.set_attribute("error.type", "cancelled")
    elif result[0] == "ok":
        status = result[1].status
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            mark_error(span, str(status))
    else:
        mark_error(span, str(result[1][0]))
    span.end()


def _host_port(authority: str, scheme: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if port_text.isdigit():
        return host, int(port_text)
    return host, {"http": 80, "https": 443}.get(scheme)


@contextmanager
def execute_span(tracer: trace.Tracer, parent: Context | None, app_id: str, executor: Any,
                 errors: list[str] | None = None) -> Iterator[None]:
    """Spin's `spin_trigger_http.execute_wasm` span around one executor run, made current in this
    task so the HostState the executor creates captures it. A GuestError marks it failed (and its
    kind is appended to `errors`)."""
    component = executor.component_id
    wagi = type(executor).__name__ in WAGI_EXECUTORS
    span = tracer.start_span(f"execute_{'wagi' if wagi else 'wasm'}_component {component}", context=parent,
                             attributes={"tauon.app": app_id, "spin.component.id": component})
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield
    except Exception as exc:
        kind = getattr(exc, "kind", None) or type(exc).__name__
        mark_error(span, kind, str(exc))
        if errors is not None:
            errors.append(kind)
        raise
    finally:
        otel_context.detach(token)
        span.end()


class ServerTrace:
    """The server span of one request on an app's listener, continuing the client's trace."""

    __slots__ = ("context", "errors", "span", "tracer")

    def __init__(self, tracer: trace.Tracer, app_id: str, scope: Mapping[str, Any]) -> None:
        carrier: dict[str, str] = {}
        forwarded: str | None = None
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate":
                carrier[name.decode()] = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
        parent = PROPAGATOR.extract(carrier) if carrier else None
        client = scope.get("client") or ("", 0)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        attributes: dict[str, Any] = {
            "http.request.method": scope["method"],
            "url.path": raw_path.decode("latin-1").split("?", 1)[0],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.name": "http",
            "network.protocol.version": scope.get("http_version", "1.1"),
            "network.peer.address": client[0],
            "network.peer.port": client[1],
            "tauon.app": app_id,
        }
        if forwarded is not None:
            attributes["client.address"] = forwarded  # as Spin records it; not interpreted
        self.tracer = tracer
        self.span = tracer.start_span("spin_trigger_http.handle_http_request", context=parent,
                                      kind=SpanKind.SERVER, attributes=attributes)
        self.context = trace.set_span_in_context(self.span, parent)
        self.errors: list[str] = []

    def execute(self, app_id: str, executor: Any) -> Any:
        return execute_span(self.tracer, self.context, app_id, executor, self.errors)

    def ids(self) -> tuple[str, str]:
        """(trace id, span id) as hex, for log lines."""
        ctx = self.span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    def finish(self, method: str, route: str | None, component: str, status: int) -> None:
        span = self.span
        span.update_name(f"{method} {route}" if route else method)
        if route:
            span.set_attribute("http.route", route)
        if component != "-":
            span.set_attribute("spin.component.id", component)
        if status:
            span.set_attribute("http.response.status_code", status)
        if status >= 500 or not status:
            # No status: the client went away (or the app failed) before a response started.
            mark_error(span, self.errors[-1] if self.errors else (str(status) if status else "no-response"))
        span.end()
