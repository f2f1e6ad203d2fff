"""Request metrics: plain counters on the hot path, Prometheus text at scrape time, own registry."""

from __future__ import annotations

import prometheus_client

from tauon.metrics import ByteCounter, Metrics, RequestStats, status_labels


def _samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render()[0].decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_requests_and_latency_render_as_prometheus_families() -> None:
    metrics = Metrics()
    stats = metrics.requests_for("shop.json")
    assert metrics.requests_for("shop.json") is stats
    stats.observe("web", 200, 0.004)
    stats.observe("web", 200, 0.0001)
    stats.observe("-", 404, 0.002)
    stats.observe("web", 0, 40.0)  # client went away, slower than the last bucket
    stats.inflight = 2
    metrics.app_states = lambda: {"running": 1, "failed": 2}
    s = _samples(metrics)
    assert s['tauon_http_requests_total{app="shop.json",class="2xx",code="200",component="web"}'] == 2
    assert s['tauon_http_requests_total{app="shop.json",class="4xx",code="404",component="-"}'] == 1
    assert s['tauon_http_requests_total{app="shop.json",class="none",code="none",component="web"}'] == 1
    assert s['tauon_http_request_duration_seconds_bucket{app="shop.json",le="0.001"}'] == 1
    assert s['tauon_http_request_duration_seconds_bucket{app="shop.json",le="0.005"}'] == 3
    assert s['tauon_http_request_duration_seconds_bucket{app="shop.json",le="30.0"}'] == 3
    assert s['tauon_http_request_duration_seconds_bucket{app="shop.json",le="+Inf"}'] == 4
    assert s['tauon_http_request_duration_seconds_count{app="shop.json"}'] == 4
    assert abs(s['tauon_http_request_duration_seconds_sum{app="shop.json"}'] - 40.0061) < 1e-9
    assert s['tauon_http_requests_in_flight{app="shop.json"}'] == 2
    assert s['tauon_apps{state="running"}'] == 1 and s['tauon_apps{state="failed"}'] == 2
    assert s['tauon_apps{state="pulling"}'] == 0  # every state is always there: no gaps in graphs
    assert s["tauon_guests_running"] == 0 and s["tauon_instance_pool_slots"] == 0  # not set: zeros
    metrics.guest_capacity = lambda: (1, 2, 1000)
    s = _samples(metrics)
    assert s["tauon_guests_running"] == 1 and s["tauon_guest_run_slots"] == 2
    assert s["tauon_instance_pool_slots"] == 1000


def test_supervisor_metrics_and_forget() -> None:
    metrics = Metrics()
    metrics.pulls.labels("a.json").inc()
    metrics.pull_bytes.labels("a.json").inc(1234)
    metrics.swaps.labels("a.json").inc()
    metrics.requests_for("a.json").observe("c", 500, 0.1)
    metrics.reloads.inc()
    s = _samples(metrics)
    assert s['tauon_pulls_total{app="a.json"}'] == 1 and s['tauon_pull_bytes_total{app="a.json"}'] == 1234
    assert s["tauon_reloads_total"] == 1
    assert not any(name.endswith("_created") or "_created{" in name for name in s)
    metrics.forget("a.json")
    metrics.forget("never-seen.json")
    assert not any('app="a.json"' in name for name in _samples(metrics))


def test_own_registry_not_the_global_one() -> None:
    Metrics()
    Metrics()  # a second instance must not clash over names
    assert "tauon_pulls_total" not in prometheus_client.generate_latest().decode()


def test_status_labels_and_byte_counter() -> None:
    assert status_labels(503) == ("503", "5xx") and status_labels(0) == ("none", "none")
    seen: list[int] = []
    counter = ByteCounter(lambda done, total, ld, lt: seen.append(done))
    counter(100, 500, 1, 3)  # 100 bytes were cached
    counter(300, 500, 2, 3)
    counter(500, 500, 3, 3)
    assert counter.downloaded == 400 and seen == [100, 300, 500]
    assert ByteCounter().downloaded == 0


def test_byte_counter_says_once_that_a_pull_downloads() -> None:
    """The runner starts a compile child on it (wasm/headstart.py): a pull with everything cached (a
    warm restart) must never call it."""
    calls: list[int] = []
    downloading = ByteCounter(on_download=lambda: calls.append(1))
    for done in (100, 300, 500):
        downloading(done, 500, 1, 3)
    assert calls == [1]
    cached = ByteCounter(on_download=lambda: calls.append(2))
    cached(500, 500, 3, 3)
    cached(500, 500, 3, 3)
    assert calls == [1]


def test_observe_is_cheap() -> None:
    import time

    stats = RequestStats()
    n = 200_000
    started = time.perf_counter()
    for i in range(n):
        stats.observe("web", 200, (i % 100) / 1000)
    per_call = (time.perf_counter() - started) / n
    assert per_call < 5e-6, f"{per_call * 1e6:.2f} µs per observe"


def test_redis_message_counters_and_forget() -> None:
    metrics = Metrics()
    metrics.redis_received("w.json", "orders")
    metrics.redis_received("w.json", "orders")
    metrics.redis_done("w.json", "orders", "worker", ok=True)
    metrics.redis_done("w.json", "orders", "worker", ok=False)
    metrics.redis_received("other.json", "x")
    text = metrics.render()[0].decode()
    assert 'tauon_redis_messages_total{app="w.json",channel="orders"} 2.0' in text
    assert 'tauon_redis_messages_handled_total{app="w.json",channel="orders",component="worker"} 1.0' in text
    assert 'tauon_redis_messages_failed_total{app="w.json",channel="orders",component="worker"} 1.0' in text
    metrics.forget("w.json")
    text = metrics.render()[0].decode()
    assert 'app="w.json"' not in text
    assert 'tauon_redis_messages_total{app="other.json",channel="x"} 1.0' in text
