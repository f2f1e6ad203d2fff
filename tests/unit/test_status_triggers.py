"""`tauon status` output for apps with Redis triggers (the table is built from /status JSON)."""

from __future__ import annotations

from tauon.status import format_table


def test_format_table_lists_redis_connections() -> None:
    doc = {"version": "x", "mode": "watch", "source": "/apps", "ready": True, "apps": [
        {"app": "w.json", "state": "running", "generation": 2, "address": None, "digest": "sha256:ab",
         "since": "2026-01-01T00:00:00Z", "reference": "r:1", "error": None, "problem": None,
         "triggers": [{"type": "redis", "address": "redis://:***@127.0.0.1:6379", "channels": ["a", "b"],
                       "state": "reconnecting", "last_error": "Connection refused",
                       "since": "2026-01-01T00:00:01Z"}]},
        {"app": "web.json", "state": "running", "generation": 1, "address": "127.0.0.1:80",
         "digest": None, "since": None, "reference": "r:2", "triggers": []},
    ]}
    text = format_table(doc)
    row = next(line for line in text.splitlines() if line.startswith("w.json"))
    assert " - " in row  # no address
    assert ("  w.json: redis redis://:***@127.0.0.1:6379 reconnecting since 2026-01-01T00:00:01Z, channels "
            "a, b (last error: Connection refused)") in text.splitlines()
    assert "web.json: redis" not in text
