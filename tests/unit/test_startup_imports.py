"""What a daemon imports before it serves: client libraries only the apps that use them need are left out
(redis-py, with the OpenTelemetry SDK it loads, was 90 ms of every start; psycopg 45 ms)."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("redis", "opentelemetry", "psycopg")
"""Imported on first use: Redis triggers, stores and outbound calls; tracing; PostgreSQL."""


def test_the_daemon_imports_no_client_library_it_may_not_need() -> None:
    code = ("import json, sys; import tauon.cli, tauon.daemon, tauon.workers.child; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True).stdout))
    assert "wasmtime" in loaded and "uvicorn" in loaded  # what serving needs is there
    assert not loaded & set(LAZY), sorted(loaded & set(LAZY))


def test_the_lazy_libraries_still_load_where_they_are_used() -> None:
    code = ("import json, sys; import tauon.services.postgres, tauon.server.redis_subscriber; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True).stdout))
    assert {"redis", "psycopg"} <= loaded
