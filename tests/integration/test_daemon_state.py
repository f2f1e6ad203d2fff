"""Spin state through the real registry and the real tauon process: key-value and SQLite data that
survive restarts and updates, variables (secret values never logged), access-denied, missing variables.
The component tests run on both component runtimes (`component_runtime`), sharing one compile cache.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import wasmtime

from support.apps import push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-greeting-9d1f"


def sdk_app(*, stores: list[str], marker: str) -> SpinAppSpec:
    return SpinAppSpec(
        name="stateful",
        components=[SpinComponent(
            id="web", wasm=component_path("python-sdk").read_bytes(), env={"MARKER": marker},
            metadata={"key_value_stores": stores, "databases": ["default"]},
            config={"greeting": "{{ greeting }}"})],
        triggers=[{"route": "/...", "component": "web"}],
        variables={"greeting": {"secret": True}},
    )


def legacy_app(marker: str) -> SpinAppSpec:
    wasm = wasmtime.wat2wasm((ROOT / "tests/fixtures/legacy/spin-legacy-app.wat").read_text())
    return SpinAppSpec(
        name="legacy",
        components=[SpinComponent(id="legacy", wasm=bytes(wasm), env={"MARKER": marker},
                                  metadata={"key_value_stores": ["default"]})],
        triggers=[{"route": "/...", "component": "legacy"}],
    )


def app_file(ref: str, port: int, **extra: object) -> str:
    return json.dumps({"reference": ref, "address": f"127.0.0.1:{port}", "insecure": True, **extra})


def test_component_state_survives_restart_and_update(tmp_path: Path, registry: RegistryServer,
                                                     component_runtime: str, shared_cache: Path) -> None:
    v1 = push_app(registry, "state/sdk", "v1", sdk_app(stores=["default"], marker="one"))
    v2 = push_app(registry, "state/sdk", "v2", sdk_app(stores=["default"], marker="two"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = {"state_dir": "shop", "variables": {"greeting": SECRET}}
    cache = shared_cache
    with run_tauon(tmp_path / "run1", cache_dir=cache, state_root=tmp_path / "state") as tauon:
        (tauon.watch_dir / "shop.json").write_text(app_file(v1, port, **spec))
        wait_http(f"{base}/echo", timeout=120)
        assert httpx.put(f"{base}/kv?key=fruit", content=b"apple").status_code == 200
        for statement in (b"CREATE TABLE t (x INTEGER)", b"INSERT INTO t VALUES (42)"):
            r = httpx.post(f"{base}/sqlite", content=statement)  # one statement per call, as in Spin
            assert r.status_code == 200, r.text
        assert httpx.get(f"{base}/var").text == SECRET  # the app may show it; tauon never logs it
        log1 = tauon.log()
    with run_tauon(tmp_path / "run2", cache_dir=cache, state_root=tmp_path / "state") as tauon:
        (tauon.watch_dir / "shop.json").write_text(app_file(v1, port, **spec))
        r = wait_http(f"{base}/kv?key=fruit", timeout=120)
        assert r.content == b"apple"  # survived the restart
        (tauon.watch_dir / "shop.json").write_text(app_file(v2, port, **spec))
        tauon.wait_log(r"shop\.json: updated to generation 2", timeout=120)
        assert httpx.get(f"{base}/kv?key=fruit").content == b"apple"  # survived the update
        rows = httpx.post(f"{base}/sqlite", content=b"SELECT x FROM t").json()["rows"]
        assert rows == [[42]]
        log2 = tauon.log()
    # Warm: the restart compiled nothing (on tauon's runtime, nor the component's core modules).
    assert not re.search(r"compiling .* in a child process", log2), log2
    # Spin's schema and file name: the data is readable by Spin itself.
    with sqlite3.connect(tmp_path / "state" / "shop" / "sqlite_key_value.db") as db:
        assert db.execute("SELECT value FROM spin_key_value WHERE store='default' AND key='fruit'"
                          ).fetchall() == [(b"apple",)]
    for log in (log1, log2):
        assert SECRET not in log


def test_access_denied_and_missing_variable(tmp_path: Path, registry: RegistryServer,
                                            component_runtime: str, shared_cache: Path) -> None:
    no_stores = push_app(registry, "state/sdk", "nostores", sdk_app(stores=[], marker="x"))
    port, other = free_port(), free_port()
    with run_tauon(tmp_path, cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "denied.json").write_text(
            app_file(no_stores, port, variables={"greeting": SECRET}))
        wait_http(f"http://127.0.0.1:{port}/echo", timeout=120)
        r = httpx.get(f"http://127.0.0.1:{port}/kv?key=a")
        assert r.status_code >= 500 and "AccessDenied" in r.text
        (tauon.watch_dir / "novar.json").write_text(app_file(no_stores, other))
        log = tauon.wait_log(r"novar\.json: .*greeting", timeout=120)
        line = next(line for line in log.splitlines() if "novar.json" in line and "greeting" in line)
        assert "required" in line or "no provider" in line or "no value" in line
        assert SECRET not in log


def test_legacy_module_state_survives_restart_and_update(tmp_path: Path, registry: RegistryServer) -> None:
    v1 = push_app(registry, "state/legacy", "v1", legacy_app("one"))
    v2 = push_app(registry, "state/legacy", "v2", legacy_app("two"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/count"
    state = tmp_path / "state"
    with run_tauon(tmp_path / "run1", state_root=state) as tauon:
        (tauon.watch_dir / "legacy.json").write_text(app_file(v1, port, state_dir="legacy"))
        assert wait_http(url).text.strip().endswith("1")
        assert httpx.get(url).text.strip().endswith("2")
    with run_tauon(tmp_path / "run2", state_root=state) as tauon:
        (tauon.watch_dir / "legacy.json").write_text(app_file(v1, port, state_dir="legacy"))
        assert wait_http(url).text.strip().endswith("3")
        (tauon.watch_dir / "legacy.json").write_text(app_file(v2, port, state_dir="legacy"))
        tauon.wait_log(r"legacy\.json: updated to generation 2")
        assert httpx.get(url).text.strip().endswith("4")
