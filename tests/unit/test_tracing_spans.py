"""tauon.tracing: the OTEL_* configuration, the no-op path, and the spans host calls open on guest
threads (recorded by the SDK's in-memory exporter; the OTLP export itself is tested in
tests/integration/test_daemon_tracing.py against a real receiver)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tauon import tracing
from tauon.tracing.config import TracingConfigError, tracing_config
from tauon.tracing.spans import Tracing, end_outbound_http

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(("env", "protocol"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, None),
    (ENDPOINT, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318"}, None),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, None),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, None),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, "http/protobuf"),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf"),
])
def test_when_tracing_is_on_and_how(env: dict[str, str], protocol: str | None) -> None:
    config = tracing_config(env)
    assert (config.protocol if config else None) == protocol
    assert config is None or config.warnings == ()


def test_an_unknown_protocol_falls_back_to_http_protobuf_with_a_warning() -> None:
    config = tracing_config({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
    assert config is not None and config.protocol == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon'" in config.warnings[0]


def test_http_json_is_refused_naming_the_variable() -> None:
    with pytest.raises(TracingConfigError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"):
        tracing_config({**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})


def test_setup_without_the_variables_leaves_tracing_off() -> None:
    assert tracing.setup({}) is False
    assert tracing.ACTIVE is None
    assert tracing.current_context() is None


def test_off_client_span_is_one_shared_no_op() -> None:
    state = SimpleNamespace(trace=None)
    with tracing.client_span(state, "GET", {"db.system.name": "redis"}) as span:
        span.set_attribute("x", 1)
        tracing.set_error(span, "boom")
    assert tracing.client_span(state, "SET") is tracing.NO_SPAN
    assert tracing.start_outbound_http(state, "GET", "http", "h", "/", []) is None


@pytest.fixture
def recorded() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.ACTIVE = Tracing(provider)
    try:
        yield exporter
    finally:
        tracing.ACTIVE = None
        provider.shutdown()


def _guest_state(active: Tracing) -> tuple[SimpleNamespace, trace.Span]:
    """A HostState stand-in captured inside an execution span, as the executors create it."""
    parent = active.tracer.start_span("execute_wasm_component c")
    with trace.use_span(parent):
        return SimpleNamespace(trace=tracing.current_context()), parent


def test_client_spans_on_a_guest_thread_parent_on_the_execution_span(recorded: InMemorySpanExporter) -> None:
    assert tracing.ACTIVE is not None
    state, parent = _guest_state(tracing.ACTIVE)

    def guest() -> None:  # another thread: the event loop's context is not current here
        with tracing.client_span(state, "GET", {"db.system.name": "redis"}) as span:
            span.set_attribute("db.operation.name", "GET")
        with pytest.raises(ConnectionError), tracing.client_span(state, "publish", kind="producer"):
            raise ConnectionError("broker went away")
        with tracing.client_span(state, "execute") as span:
            tracing.set_error(span, "no-such-table", "no such table: t")

    thread = threading.Thread(target=guest)
    thread.start()
    thread.join()
    parent.end()
    spans = {s.name: s for s in recorded.get_finished_spans()}
    get, publish, execute = spans["GET"], spans["publish"], spans["execute"]
    for span in (get, publish, execute):
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
        assert span.context.trace_id == parent.get_span_context().trace_id
    assert get.kind == SpanKind.CLIENT and get.attributes == {"db.system.name": "redis",
                                                              "db.operation.name": "GET"}
    assert get.status.status_code == StatusCode.UNSET
    assert publish.kind == SpanKind.PRODUCER and publish.status.status_code == StatusCode.ERROR
    assert execute.status.status_code == StatusCode.ERROR
    assert execute.attributes is not None and execute.attributes["error.type"] == "no-such-table"


def test_outbound_http_replaces_the_guests_traceparent(recorded: InMemorySpanExporter) -> None:
    assert tracing.ACTIVE is not None
    state, parent = _guest_state(tracing.ACTIVE)
    entries = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"), ("accept", b"*/*")]
    span = tracing.start_outbound_http(state, "POST", "https", "user:pw@api.example.com", "/v1/x?key=s3cret",
                                       entries)
    end_outbound_http(span, ("ok", SimpleNamespace(status=503)))
    parent.end()
    recorded_span = next(s for s in recorded.get_finished_spans() if s.name == "POST")
    ctx = recorded_span.context
    flags = int(ctx.trace_flags)
    assert entries == [("accept", b"*/*"),
                       ("traceparent", f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}".encode())]
    assert recorded_span.attributes == {
        "http.request.method": "POST", "url.full": "https://api.example.com/v1/x",
        "server.address": "api.example.com", "server.port": 443, "http.response.status_code": 503,
        "error.type": "503"}
    assert recorded_span.status.status_code == StatusCode.ERROR
