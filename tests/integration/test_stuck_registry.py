"""One stalled registry never holds the host: pulls have a deadline, readiness and the workers stop
waiting after the start grace, and stuck pulls cannot keep the pull slots from other apps."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from support.daemon import dribbling_server, free_port, run_tauon, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def write_app(watch: Path, name: str, reference: str, *, insecure: bool = False) -> str:
    port = free_port()
    (watch / name).write_text(json.dumps({"reference": reference, "address": f"127.0.0.1:{port}",
                                          "insecure": insecure}))
    return f"http://127.0.0.1:{port}"


def test_a_stuck_app_does_not_hold_readiness_or_the_workers(tmp_path: Path) -> None:
    watch = tmp_path / "apps"
    watch.mkdir()
    shutil.copytree(ROOT / "tauon" / "images", watch / "images")
    with dribbling_server(interval=0.5) as stuck_host:
        write_app(watch, "stuck.json", f"{stuck_host}/slow/app:v1", insecure=True)
        hello = write_app(watch, "hello.json", "./images/hello")
        with run_tauon(tmp_path, "--workers", "2", "--pull-deadline", "8", "--start-grace", "2",
                       watch_dir=watch, admin=True) as tauon:
            assert tauon.admin is not None
            wait_http(f"{hello}/hello", contains="Hello")
            ready = wait_http(f"{tauon.admin}/readyz", timeout=15).json()
            assert ready["ready"] is True
            assert ready["pending"] == [{"app": "stuck.json", "state": "pulling"}]
            tauon.wait_log(r"ready after 2s without 1, still starting: stuck\.json \(pulling\)")
            tauon.wait_log(r"worker 1 \(pid \d+\) serving", timeout=20)
            log = tauon.wait_log(r"stuck\.json: .*the pull did not finish within 8s", timeout=30)
            assert "unexpected failure" not in log
            apps = {row["app"]: row for row in httpx.get(f"{tauon.admin}/status").json()["apps"]}
            assert apps["stuck.json"]["state"] == "failed"
            assert apps["hello.json"]["state"] == "running"


def test_stuck_pulls_cannot_keep_the_pull_slots(tmp_path: Path) -> None:
    """Four stuck pulls take all four pull slots; the deadline frees them for the next app."""
    watch = tmp_path / "apps"
    watch.mkdir()
    shutil.copytree(ROOT / "tauon" / "images", watch / "images")
    with dribbling_server(interval=0.5) as stuck_host:
        for index in range(4):
            write_app(watch, f"stuck{index}.json", f"{stuck_host}/slow/app{index}:v1", insecure=True)
        with run_tauon(tmp_path, "--workers", "1", "--pull-deadline", "4", "--start-grace", "1",
                       watch_dir=watch) as tauon:
            tauon.wait_log(r"stuck3\.json.*pull", timeout=15)
            started = time.monotonic()
            hello = write_app(watch, "hello.json", "./images/hello")
            wait_http(f"{hello}/hello", contains="Hello", timeout=30)
            assert time.monotonic() - started < 20
            tauon.wait_log(r"stuck0\.json: .*the pull did not finish within 4s")
