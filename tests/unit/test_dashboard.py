"""contrib/grafana/tauon.json queries only metrics tauon's registry declares (the integration test
checks the same against a real tauon's /metrics)."""

from __future__ import annotations

from support.dashboard import expressions, load_dashboard, metric_names, served_names
from tauon.metrics import Metrics


def test_the_promql_parser_finds_metrics_not_functions_or_labels() -> None:
    expr = ('histogram_quantile(0.99, sum by (app, le) (rate(tauon_x_bucket{app=~"$app",class="5xx"}'
            '[$__rate_interval]))) / sum(tauon_y) + on (app) group_left tauon_z')
    assert metric_names(expr) == {"tauon_x_bucket", "tauon_y", "tauon_z"}
    assert metric_names('label_values(tauon_apps{instance=~"$instance"}, instance)') == {"tauon_apps"}


def test_every_queried_metric_is_registered() -> None:
    dashboard = load_dashboard()
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    queried = set().union(*(metric_names(e) for e in exprs))
    registered = served_names(Metrics().render()[0].decode())
    assert queried, "no metric found in the dashboard"
    assert queried <= registered, f"not exported by tauon: {sorted(queried - registered)}"
    # The dashboard covers what the issue lists: requests, errors, latency, in flight, swaps, pull
    # failures, worker restarts and the instance pool.
    for name in ("tauon_http_requests_total", "tauon_http_request_duration_seconds_bucket",
                 "tauon_http_requests_in_flight", "tauon_generation_swaps_total", "tauon_pull_failures_total",
                 "tauon_worker_restarts_total", "tauon_instance_pool_slots", "tauon_guests_running"):
        assert name in queried, name
