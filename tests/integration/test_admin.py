"""The admin endpoints and `tauon status` on the real process, against a real registry."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_sleep_app
from support.daemon import free_port, hanging_server, run_tauon, wait_http
from support.registry import RegistryServer

SECRET = "s3cret-value-never-logged"


@pytest.fixture(scope="module")
def image(registry: RegistryServer) -> str:
    return push_sleep_app(registry, "admin/app", "v1", version="v1")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in:\n{text}")


def test_status_metrics_and_the_status_command(tmp_path: Path, image: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path, "--workers", "1", admin=True) as tauon:
        assert tauon.admin is not None
        (tauon.watch_dir / "app.json").write_text(app_file(image, port, variables={"api_token": SECRET},
                                                           state_dir="app"))
        (tauon.watch_dir / "broken.json").write_text('{"reference": ')
        (tauon.watch_dir / "twin.json").write_text(app_file(image, port))
        wait_http(url, contains="in v1")
        tauon.wait_log(r"twin\.json: field 'address': address 127\.0\.0\.1:\d+ is already claimed")
        wait_http(f"{tauon.admin}/readyz")
        assert httpx.get(f"{tauon.admin}/healthz").text == "ok\n"

        doc = httpx.get(f"{tauon.admin}/status").json()
        assert (doc["mode"], doc["source"], doc["ready"]) == ("directory", str(tauon.watch_dir), True)
        apps = {a["app"]: a for a in doc["apps"]}
        app = apps["app.json"]
        assert (app["reference"], app["address"], app["state"], app["generation"], app["error"]) == (
            image, f"127.0.0.1:{port}", "running", 1, None)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", app["digest"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", app["since"])
        assert app["variables"] == ["api_token"] and app["state_dir"] == "app"
        assert apps["broken.json"]["state"] == "invalid"
        assert "is not valid JSON" in apps["broken.json"]["error"]
        (process,) = doc["processes"]  # --workers 1: the daemon alone serves
        assert (process["worker"], process["pid"]) == (0, tauon.proc.pid) and process["requests"] >= 1
        assert apps["twin.json"]["state"] == "invalid"
        assert "already claimed by app.json" in apps["twin.json"]["error"]

        for _ in range(3):
            assert httpx.get(url).status_code == 200
        metrics = httpx.get(f"{tauon.admin}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=")
        text = metrics.text
        assert _metric(text, 'tauon_http_requests_total{app="app.json",class="2xx",code="200",'
                             'component="sleepy"}') >= 4  # wait_http's request and ours
        assert _metric(text, 'tauon_http_request_duration_seconds_count{app="app.json"}') >= 4
        assert _metric(text, 'tauon_http_requests_in_flight{app="app.json"}') == 0
        assert _metric(text, 'tauon_pulls_total{app="app.json"}') == 1
        assert _metric(text, 'tauon_pull_bytes_total{app="app.json"}') > 10_000  # the wasm was downloaded
        assert _metric(text, 'tauon_pull_duration_seconds_count{app="app.json"}') == 1
        assert _metric(text, 'tauon_compile_duration_seconds_count{app="app.json"}') == 1
        assert _metric(text, 'tauon_generation_swaps_total{app="app.json"}') == 1
        assert _metric(text, 'tauon_apps{state="running"}') == 1
        assert _metric(text, "tauon_instance_pool_slots") == 1000  # the default pool
        assert _metric(text, "tauon_guest_run_slots") == len(os.sched_getaffinity(0))
        assert _metric(text, 'tauon_apps{state="invalid"}') == 2
        assert _metric(text, "tauon_worker_restarts_total") == 0

        table = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin", tauon.admin[7:]],
                               capture_output=True, text=True, check=True).stdout
        header, row = table.splitlines()[1:3]
        assert header.split() == ["APP", "STATE", "GEN", "ADDRESS", "DIGEST", "SINCE", "REFERENCE"]
        assert row.split()[:4] == ["app.json", "running", "1", f"127.0.0.1:{port}"]
        assert "errors:" in table and "broken.json: is not valid JSON" in table
        raw = subprocess.run([sys.executable, "-m", "tauon", "status", "--json"], capture_output=True,
                             text=True, check=True, env={"TAUON_ADMIN": tauon.admin[7:], "PATH": "/usr/bin"})
        assert json.loads(raw.stdout)["apps"][0]["app"] == "app.json"

        # A failed update keeps generation 1 serving and says why, in /status and the table.
        (tauon.watch_dir / "app.json").write_text(app_file(image.replace(":v1", ":v404"), port))
        tauon.wait_log(r"app\.json: .*generation 1 keeps serving")
        app = {a["app"]: a for a in httpx.get(f"{tauon.admin}/status").json()["apps"]}["app.json"]
        assert app["state"] == "running" and app["generation"] == 1 and "v404" in app["error"]
        metrics_text = httpx.get(f"{tauon.admin}/metrics").text
        assert _metric(metrics_text, 'tauon_app_failures_total{app="app.json"}') >= 1
        status_text = httpx.get(f"{tauon.admin}/status").text
    assert SECRET not in tauon.log() and SECRET not in status_text and SECRET not in table


def test_readyz_waits_for_a_hanging_pull_then_reports_the_failure(tmp_path: Path) -> None:
    with hanging_server() as hung, run_tauon(tmp_path, "--pull-timeout", "2", admin=True) as tauon:
        assert tauon.admin is not None
        wait_http(f"{tauon.admin}/readyz")  # ready with no apps; an app added later holds it again
        (tauon.watch_dir / "slow.json").write_text(app_file(f"{hung}/admin/slow:v1", free_port()))
        tauon.wait_log(r"new app file")
        r = httpx.get(f"{tauon.admin}/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["pending"] == [{"app": "slow.json", "state": "pulling"}]
        r = wait_http(f"{tauon.admin}/readyz", timeout=30)  # failed for a reported reason: ready
        assert r.json() == {"ready": True, "apps": {"failed": 1}}
        slow = httpx.get(f"{tauon.admin}/status").json()["apps"][0]
        assert slow["state"] == "failed" and slow["generation"] is None and "slow.json" in slow["error"]
        metrics_text = httpx.get(f"{tauon.admin}/metrics").text
        assert _metric(metrics_text, 'tauon_pull_failures_total{app="slow.json"}') >= 1


def test_access_log_as_json_lines(tmp_path: Path, image: str) -> None:
    port = free_port()
    with run_tauon(tmp_path, "--access-log", "--log-format", "json", log_level="info") as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(image, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in v1")
        assert httpx.get(f"http://127.0.0.1:{port}/some/path?token={SECRET}").status_code == 200
        tauon.wait_log(r'"path": "/some/path"')
        entries = [json.loads(line) for line in tauon.log().splitlines() if line.startswith("{")]
        access = [e for e in entries if e.get("path") == "/some/path"]
        assert len(access) == 1
        entry = access[0]
        assert (entry["logger"], entry["level"], entry["app"], entry["component"], entry["method"],
                entry["status"]) == ("tauon.access", "info", "app.json", "sleepy", "GET", 200)
        assert isinstance(entry["duration_ms"], float)
        assert SECRET not in tauon.log()  # query strings are never logged


def test_admin_address_in_use_is_fatal(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "tauon", str(tmp_path / "apps"), "--cache-dir", str(tmp_path / "c"),
             "--state-root", str(tmp_path / "s"), "--admin", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"tauon: --admin: cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr


def test_status_command_without_a_daemon(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin"}
    none = subprocess.run([sys.executable, "-m", "tauon", "status"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert none.returncode == 2 and "pass --admin HOST:PORT or set TAUON_ADMIN" in none.stderr
    (tmp_path / "status").mkdir()
    started = time.monotonic()
    down = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert down.returncode == 1 and time.monotonic() - started < 10
    assert "cannot reach tauon's admin endpoint" in down.stderr
    assert "to watch a directory named status, run `tauon ./status`" in down.stderr
