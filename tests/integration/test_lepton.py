"""Lepton mode (`tauon --apps FILE`): a fixed list of apps, re-read on SIGHUP, against a real registry."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from support.apps import push_sleep_app
from support.daemon import free_port, run_tauon, wait_http, wait_refused
from support.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]


def _entry(reference: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"reference": reference, "address": f"127.0.0.1:{port}", "insecure": True, **extra}


def test_contrib_example_resolves_references_against_its_own_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    with run_tauon(tmp_path, apps_file=ROOT / "contrib" / "lepton.json", cwd=elsewhere, admin=True) as tauon:
        r = wait_http("http://127.0.0.1:3100/hello/x", contains="Hello from tauon!")
        assert "You asked for /hello/x" in r.text
        wait_http("http://127.0.0.1:3101/hello", contains="Hello from tauon!")
        tauon.wait_log(r"hello: serving")
        assert tauon.admin is not None
        doc = httpx.get(f"{tauon.admin}/status").json()
        assert (doc["mode"], doc["source"]) == ("apps-file", str(ROOT / "contrib" / "lepton.json"))
        assert [(a["app"], a["state"]) for a in doc["apps"]] == [("hello", "running"),
                                                               ("hello-limited", "running")]
        assert not (tmp_path / "apps").exists()  # nothing is watched in lepton mode


def test_serve_reload_and_drain(tmp_path: Path, registry: RegistryServer) -> None:
    web, other, bad = free_port(), free_port(), free_port()
    ref = push_sleep_app(registry, "lepton/web", "stable", version="first")
    other_ref = push_sleep_app(registry, "lepton/other", "v1", version="other")
    config = tmp_path / "etc" / "lepton.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"apps": [
        _entry(ref, web, name="web", state_dir="web"),
        _entry(other_ref, other),
        _entry(other_ref, 99999, name="api"),
        _entry(other_ref, web, name="twin"),
    ]}))
    with run_tauon(tmp_path, apps_file=config, admin=True) as tauon:
        wait_http(f"http://127.0.0.1:{web}/?0", contains="in first")
        wait_http(f"http://127.0.0.1:{other}/?0", contains="in other")
        log = tauon.wait_log(r"web: serving")
        assert "lepton.json#1: serving" in log
        assert ("api (lepton.json apps[2]): field 'address': port '99999' is not a number from 1 to 65535"
                in log)
        assert (f"twin (lepton.json apps[3]): field 'address': address 127.0.0.1:{web} is already claimed "
                "by web (web comes first in lepton.json and keeps it; change one address)") in log

        # SIGHUP re-reads the file (entry removed, entry fixed) and re-resolves tags.
        push_sleep_app(registry, "lepton/web", "stable", version="second")
        config.write_text(json.dumps({"apps": [
            _entry(ref, web, name="web", state_dir="web"),
            _entry(other_ref, bad, name="api"),
        ]}))
        tauon.signal(signal.SIGHUP)
        wait_http(f"http://127.0.0.1:{web}/?0", contains="in second")
        wait_http(f"http://127.0.0.1:{bad}/?0", contains="in other")
        wait_refused(f"http://127.0.0.1:{other}/?0")
        tauon.wait_log(r"reload done")

        # An unusable file on SIGHUP changes nothing.
        config.write_text('{"apps": [')
        tauon.signal(signal.SIGHUP)
        tauon.wait_log(r"lepton\.json: is not valid JSON.*the apps keep serving as they are")
        assert "in second" in httpx.get(f"http://127.0.0.1:{web}/?0").text

        # SIGTERM drains a request in flight.
        answers: list[str] = []
        slow = threading.Thread(target=lambda: answers.append(
            httpx.get(f"http://127.0.0.1:{web}/?1500", timeout=10).text))
        slow.start()
        _wait_in_flight(f"{tauon.admin}/status", "web")
        tauon.signal(signal.SIGTERM)
        slow.join()
        assert tauon.proc.wait(30) == 0
        assert answers == ["slept 1500 ms in second\n"]


def _wait_in_flight(status_url: str, app: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = {a["app"]: a for a in httpx.get(status_url).json()["apps"]}
        if apps[app]["in_flight"] > 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"no request in flight for {app}")


def test_unusable_apps_file_fails_at_start(tmp_path: Path) -> None:
    config = tmp_path / "lepton.json"
    config.write_text('{"aps": []}')
    with run_tauon(tmp_path, apps_file=config, wait_started=False) as tauon:
        assert tauon.proc.wait(30) == 1
        assert ("tauon: lepton.json: field 'apps': is required (found 'aps': did you mean 'apps'?)"
                in tauon.log())
