"""Every metric contrib/grafana/tauon.json queries is one a real tauon serves on its admin /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_sleep_app
from support.daemon import free_port, run_tauon, wait_http
from support.dashboard import expressions, load_dashboard, metric_names, served_names
from support.registry import RegistryServer

pytestmark = pytest.mark.integration


def test_the_dashboard_queries_only_served_metrics(tmp_path: Path, registry: RegistryServer) -> None:
    ref = push_sleep_app(registry, "dashboard/app", "v1", version="v1")
    port = free_port()
    with run_tauon(tmp_path, "--workers", "2", admin=True) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/", timeout=60)
        text = httpx.get(f"{tauon.admin}/metrics", timeout=10).text
    served = served_names(text)
    assert 'tauon_http_requests_total{app="app.json"' in text  # a real app's series, not just TYPE lines
    queried = set().union(*(metric_names(e) for e in expressions(load_dashboard())))
    assert queried and queried <= served, f"queried but not served: {sorted(queried - served)}"
