"""OpenTelemetry traces through the real tauon process, a real upstream and a loopback OTLP receiver.

The receiver decodes what tauon's OTLP exporter sends with the official opentelemetry-proto messages.
The upstream is a real HTTP server that answers with the `traceparent` it was sent, so the test sees
what the guest's outbound request carried.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, hanging_server, run_tauon, wait_http
from support.otlp import Received, ReceivedSpan, otlp_grpc_receiver, otlp_http_receiver
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "tauon-under-test"}


class _Upstream(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append(headers)
        body = json.dumps({"traceparent": headers.get("traceparent"),
                           "tracestate": headers.get("tracestate")}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("U", (_Upstream,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def refused() -> int:
    """A loopback port nobody listens on (the app may call it: connection refused)."""
    return free_port()


@pytest.fixture(scope="module")
def hanging() -> Iterator[str]:
    """host:port of a server that accepts and never answers."""
    with hanging_server() as address:
        yield address


@pytest.fixture(scope="module")
def reference(registry: RegistryServer, upstream: tuple[int, list[dict[str, str]]], refused: int,
              hanging: str) -> str:
    """'front' (python-raw on /..., may call the upstream, `refused` and `hanging`, and chain) and 'back'
    (the C component on a private route, reachable by chaining only)."""
    port, _ = upstream
    app = SpinAppSpec(name="traced", components=[
        SpinComponent(id="front", wasm=component_path("python-raw").read_bytes(), metadata={
            "allowed_outbound_hosts": [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{refused}",
                                       f"http://{hanging}", "http://*.spin.internal",
                                       "http://nosuch.spin.internal"]}),
        SpinComponent(id="back", wasm=component_path("c").read_bytes()),
    ], triggers=[{"route": "/...", "component": "front"}, {"route": {"private": True}, "component": "back"}])
    return push_app(registry, "tracing/app", "v1", app)


def serve(tmp: Path, reference: str, env: dict[str, str], *args: str) -> Iterator[tuple[TauonProcess, str]]:
    """tauon serving the app as traced.json; also as slow.json (a 2 s request timeout) on the next port."""
    port, slow = free_port(), free_port()
    with run_tauon(tmp, "--access-log", *args, env=env) as tauon:
        (tauon.watch_dir / "traced.json").write_text(app_file(reference, port))
        (tauon.watch_dir / "slow.json").write_text(app_file(reference, slow, limits={"request_timeout": 2}))
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/.well-known/spin/health", timeout=120)
        wait_http(f"http://127.0.0.1:{slow}/.well-known/spin/health", timeout=120)
        tauon.slow_url = f"http://127.0.0.1:{slow}"  # type: ignore[attr-defined]
        yield tauon, url


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory,
           reference: str) -> Iterator[tuple[TauonProcess, str, Received]]:
    with otlp_http_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **FAST_EXPORT}
        for tauon, url in serve(tmp_path_factory.mktemp("traced"), reference, env, "--workers", "1"):
            yield tauon, url, received


def trace_of(received: Received, trace_id: str, names: set[str]) -> dict[str, ReceivedSpan]:
    """The spans named `names` in trace `trace_id`, once all have arrived."""
    def complete(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan] | None:
        found = {s.name: s for s in spans if s.trace_id == trace_id and s.name in names}
        return found if set(found) == names else None

    result: dict[str, ReceivedSpan] = received.wait_for(complete)
    return result


def test_a_request_with_an_outbound_call_is_one_trace(
        traced: tuple[TauonProcess, str, Received], upstream: tuple[int, list[dict[str, str]]]) -> None:
    tauon, url, received = traced
    port, _ = upstream
    r = httpx.get(f"{url}/outbound", params={"url": f"http://127.0.0.1:{port}/x?token=secret"},
                  headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=1"},
                  timeout=30)
    assert r.status_code == 200, r.text
    sent = json.loads(r.text)  # what the upstream was sent by the guest's outbound request
    spans = trace_of(received, CLIENT_TRACE, {"GET /...", "execute_wasm_component front", "GET"})
    server, execute, client = spans["GET /..."], spans["execute_wasm_component front"], spans["GET"]

    # The server span continues the client's trace; execution and the outbound call nest under it.
    assert server.parent_span_id == CLIENT_SPAN and server.kind == "server"
    assert execute.parent_span_id == server.span_id and execute.kind == "internal"
    assert client.parent_span_id == execute.span_id and client.kind == "client"
    # The upstream saw the outbound span's context, and the client's tracestate carried along.
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{client.span_id}-01"
    assert sent["tracestate"] == "vendor=1"

    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.route"] == "/..."
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/outbound"
    assert server.attributes["tauon.app"] == "traced.json"
    assert server.attributes["spin.component.id"] == "front"
    assert execute.attributes["spin.component.id"] == "front"
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["server.address"] == "127.0.0.1" and client.attributes["server.port"] == port
    assert client.attributes["url.full"] == f"http://127.0.0.1:{port}/x"  # never the query string
    assert not any("secret" in str(v) for s in spans.values() for v in s.attributes.values())
    assert server.resource["service.name"] == "tauon-under-test"
    # Children end before their parents.
    assert server.start_ns <= execute.start_ns <= client.start_ns
    assert client.end_ns <= execute.end_ns <= server.end_ns

    # The access log line of the request names its trace.
    tauon.wait_log(rf"traced\.json/front GET /outbound -> 200 in [\d.]+ ms trace_id={CLIENT_TRACE}")


def test_a_request_without_traceparent_starts_a_trace(traced: tuple[TauonProcess, str, Received],
                                                      upstream: tuple[int, list[dict[str, str]]]) -> None:
    _, url, received = traced
    port, _ = upstream
    r = httpx.get(f"{url}/outbound", params={"url": f"http://127.0.0.1:{port}/fresh"}, timeout=30)
    assert r.status_code == 200, r.text
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", json.loads(r.text)["traceparent"])
    assert match and int(match[3], 16) & 1, r.text  # sampled (the SDK may add W3C's random-id flag)
    spans = trace_of(received, match[1], {"GET /...", "execute_wasm_component front", "GET"})
    assert spans["GET /..."].parent_span_id == ""  # a root span
    assert spans["GET"].span_id == match[2]


def test_a_chained_request_nests_under_the_outbound_span(traced: tuple[TauonProcess, str, Received]) -> None:
    _, url, received = traced
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    r = httpx.get(f"{url}/outbound", params={"url": "http://back.spin.internal/"},
                  headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}, timeout=30)
    assert r.status_code == 200 and r.text == "hello from c"
    spans = trace_of(received, trace_id, {"GET /...", "execute_wasm_component front", "GET",
                                          "execute_wasm_component back"})
    assert spans["execute_wasm_component back"].parent_span_id == spans["GET"].span_id


def test_a_chained_request_to_no_such_component_ends_its_span(
        traced: tuple[TauonProcess, str, Received]) -> None:
    _, url, received = traced
    trace_id = "77777777777777777777777777777777"
    r = httpx.get(f"{url}/outbound", params={"url": "http://nosuch.spin.internal/"},
                  headers={"traceparent": f"00-{trace_id}-8888888888888888-01"}, timeout=30)
    assert r.status_code == 502 and r.text == "error: ErrorCode_DestinationNotFound"
    client = trace_of(received, trace_id, {"GET /...", "GET"})["GET"]
    assert client.status_code == 2 and client.attributes["error.type"] == "destination-not-found"


def test_a_failed_outbound_call_is_marked(traced: tuple[TauonProcess, str, Received], refused: int) -> None:
    _, url, received = traced
    trace_id = "11111111111111111111111111111111"
    r = httpx.get(f"{url}/outbound", params={"url": f"http://127.0.0.1:{refused}/"},
                  headers={"traceparent": f"00-{trace_id}-2222222222222222-01"}, timeout=30)
    assert r.status_code == 502 and r.text == "error: ErrorCode_ConnectionRefused"
    spans = trace_of(received, trace_id, {"GET /...", "GET"})
    client = spans["GET"]
    assert client.status_code == 2 and client.attributes["error.type"] == "connection-refused"
    assert "http.response.status_code" not in client.attributes
    # The guest answered (502): a server span is an error only for a 5xx (HTTP conventions).
    assert spans["GET /..."].attributes["http.response.status_code"] == 502
    assert spans["GET /..."].status_code == 2


def test_a_guest_timeout_marks_the_execution_and_server_spans(traced: tuple[TauonProcess, str, Received],
                                                              hanging: str) -> None:
    tauon, _, received = traced
    trace_id = "55555555555555555555555555555555"
    r = httpx.get(f"{tauon.slow_url}/outbound", params={"url": f"http://{hanging}/"},  # type: ignore[attr-defined]
                  headers={"traceparent": f"00-{trace_id}-6666666666666666-01"}, timeout=30)
    assert r.status_code == 500
    spans = trace_of(received, trace_id, {"GET /...", "execute_wasm_component front", "GET"})
    server, execute = spans["GET /..."], spans["execute_wasm_component front"]
    # The guest was blocked in poll when its time ran out: a host-side trap, which the message names.
    assert execute.status_code == 2 and "request timed out" in execute.status_message
    assert server.status_code == 2 and server.attributes["error.type"] == execute.attributes["error.type"]
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["tauon.app"] == "slow.json"
    assert spans["GET"].attributes["error.type"] == "cancelled"  # the guest never got an answer


def test_a_guest_404_is_not_an_error(traced: tuple[TauonProcess, str, Received]) -> None:
    _, url, received = traced
    trace_id = "33333333333333333333333333333333"
    r = httpx.get(f"{url}/nothing/here", headers={"traceparent": f"00-{trace_id}-4444444444444444-01"})
    assert r.status_code == 404
    server = trace_of(received, trace_id, {"GET /..."})["GET /..."]
    assert server.attributes["http.response.status_code"] == 404 and server.status_code == 0


def test_worker_processes_export_too(tmp_path_factory: pytest.TempPathFactory, reference: str) -> None:
    with otlp_http_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **FAST_EXPORT}
        for tauon, url in serve(tmp_path_factory.mktemp("workers"), reference, env, "--workers", "2"):
            tauon.wait_log(r"worker 1 \(pid \d+\) serving", timeout=60)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for _ in range(20):  # new connections: whichever process accepts first serves
                    httpx.get(f"{url}/echo", headers={"connection": "close"}, timeout=20)
                workers = {s.resource.get("tauon.worker") for s in received.snapshot()
                           if s.kind == "server"}
                if {None, 1} <= workers:
                    break
            assert {None, 1} <= workers, f"server spans came from {workers}"


def test_grpc_export(tmp_path_factory: pytest.TempPathFactory, reference: str) -> None:
    with otlp_grpc_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
               **FAST_EXPORT}
        for _, url in serve(tmp_path_factory.mktemp("grpc"), reference, env, "--workers", "1"):
            trace_id = "5bf92f3577b34da6a3ce929d0e0e4736"
            r = httpx.get(f"{url}/echo", headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"})
            assert r.status_code == 200
            spans = trace_of(received, trace_id, {"GET /...", "execute_wasm_component front"})
            assert spans["GET /..."].parent_span_id == CLIENT_SPAN


@pytest.mark.parametrize("env", [{}, {"OTEL_SDK_DISABLED": "true"}], ids=["unset", "disabled"])
def test_tracing_off_sends_nothing(tmp_path_factory: pytest.TempPathFactory, reference: str,
                                   upstream: tuple[int, list[dict[str, str]]], env: dict[str, str]) -> None:
    port, _ = upstream
    with otlp_http_receiver() as (endpoint, received):
        # "unset" still names the receiver, in a variable tauon must not read, so a stray export
        # from an SDK default would land here too.
        full = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint, **env, **FAST_EXPORT}
        if env:
            full["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        for tauon, url in serve(tmp_path_factory.mktemp("off"), reference, full, "--workers", "1"):
            r = httpx.get(f"{url}/outbound", params={"url": f"http://127.0.0.1:{port}/off"},
                          headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}, timeout=30)
            assert r.status_code == 200
            assert json.loads(r.text)["traceparent"] is None  # nothing injected
            text = tauon.wait_log(r"traced\.json/front GET /outbound -> 200")
            assert "trace_id=" not in text
            time.sleep(1.0)  # ten export intervals: anything queued would have gone out
        assert received.exports == 0 and received.snapshot() == []
