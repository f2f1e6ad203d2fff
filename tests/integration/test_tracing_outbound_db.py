"""Outbound Redis calls of a guest are child spans of its request's trace (the same wrapper traces
PostgreSQL, MySQL and MQTT calls), exported by the real tauon process to a loopback OTLP receiver."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.otlp import ReceivedSpan, otlp_http_receiver
from support.registry import RegistryServer
from support.servers.redis import run_redis
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"


def test_redis_calls_are_child_spans_of_the_request(registry: RegistryServer, tmp_path: Path) -> None:
    with run_redis(tmp_path / "redis") as server, otlp_http_receiver() as (endpoint, received):
        allowed = [f"redis://127.0.0.1:{server.port}"]
        app = SpinAppSpec(name="traced-redis", components=[SpinComponent(
            id="web", wasm=component_path("python-outbound").read_bytes(),
            metadata={"allowed_outbound_hosts": allowed})], triggers=[{"route": "/...", "component": "web"}])
        reference = push_app(registry, "tracing/redis", "v1", app)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with run_tauon(tmp_path / "tauon", "--workers", "1", env=env) as tauon:
            port = free_port()
            (tauon.watch_dir / "app.json").write_text(app_file(reference, port))
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/.well-known/spin/health", timeout=300)
            r = httpx.post(f"{url}/redis/set?key=k", content=b"v", timeout=60,
                           headers={"redis-address": server.address,
                                    "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
            assert r.status_code == 200, r.text
            r = httpx.get(f"{url}/redis/get?key=k", headers={"redis-address": f"redis://127.0.0.1:{free_port()}"},
                          timeout=60)
            assert r.status_code == 502  # nothing listens there: a failed call

            def spans(found: list[ReceivedSpan]) -> list[ReceivedSpan] | None:
                redis_spans = [s for s in found if s.attributes.get("db.system.name") == "redis"]
                return redis_spans if len(redis_spans) >= 3 else None

            redis_spans = received.wait_for(spans)
    traced = [s for s in redis_spans if s.trace_id == TRACE]
    by_name = {s.name: s for s in traced}
    assert {"OPEN", "SET"} <= set(by_name), [s.name for s in traced]  # Spin names Redis spans by command
    assert all(s.kind == "client" for s in traced)
    server_spans = [s for s in received.snapshot() if s.trace_id == TRACE and s.kind == "server"]
    assert server_spans
    # each call nests inside the request's trace (under the guest's execution span)
    ids = {s.span_id for s in received.snapshot() if s.trace_id == TRACE}
    assert all(s.parent_span_id in ids for s in traced)
    failed = [s for s in redis_spans if s.trace_id != TRACE and s.name == "OPEN"]
    assert failed and failed[0].status_code == 2  # the refused connection marks its span
