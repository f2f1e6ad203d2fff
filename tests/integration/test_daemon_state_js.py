"""Spin state from a JavaScript component (j2w, fermyon:spin/{key-value,variables,sqlite}@2.0.0) through the
real registry and the real tauon process: data that survives restarts and updates, variables (secret values
never logged), access-denied for stores and databases the component does not list. The daemon tests run
on both component runtimes (`component_runtime`), sharing one compile cache.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path

import httpx

from support.apps import push_app
from support.components import component_path, component_world
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

SECRET = "s3cret-js-greeting-4e7a"
SPIN_IMPORTS = ("fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0", "fermyon:spin/sqlite@2.0.0")


@functools.cache
def js_spin_wasm() -> bytes:
    return component_path("js-spin").read_bytes()


def js_app(*, stores: list[str], databases: list[str], marker: str) -> SpinAppSpec:
    # `marker` only makes each pushed version's lock (and so its digest) distinct.
    return SpinAppSpec(
        name="stateful-js",
        components=[SpinComponent(
            id="web", wasm=js_spin_wasm(), env={"MARKER": marker},
            metadata={"key_value_stores": stores, "databases": databases},
            config={"greeting": "{{ greeting }}"})],
        triggers=[{"route": "/...", "component": "web"}],
        variables={"greeting": {"secret": True}},
    )


def app_file(ref: str, port: int, **extra: object) -> str:
    return json.dumps({"reference": ref, "address": f"127.0.0.1:{port}", "insecure": True, **extra})


def test_fixture_imports_only_sync_spin_2_interfaces() -> None:
    js_spin_wasm()
    world = component_world(component_path("js-spin"))
    assert set(SPIN_IMPORTS) <= set(world.imports)
    # Anything else from Spin (async @3.0.0 interfaces, say) would not link in tauon.
    spin = [name for name in world.imports if name.startswith(("fermyon:", "spin:"))]
    assert sorted(spin) == sorted(SPIN_IMPORTS)
    assert world.exports == ("wasi:http/incoming-handler@0.2.3",)


def test_js_state_survives_restart_and_update(tmp_path: Path, registry: RegistryServer,
                                              component_runtime: str, shared_cache: Path) -> None:
    v1 = push_app(registry, "state/js", "v1", js_app(stores=["default"], databases=["default"], marker="one"))
    v2 = push_app(registry, "state/js", "v2", js_app(stores=["default"], databases=["default"], marker="two"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = {"state_dir": "shop", "variables": {"greeting": SECRET}}
    cache = shared_cache
    with run_tauon(tmp_path / "run1", cache_dir=cache, state_root=tmp_path / "state") as tauon:
        (tauon.watch_dir / "shop.json").write_text(app_file(v1, port, **spec))
        wait_http(f"{base}/", timeout=120)
        assert httpx.get(f"{base}/kv?key=fruit").status_code == 404
        assert httpx.put(f"{base}/kv?key=fruit", content=b"apple").status_code == 200
        assert httpx.put(f"{base}/kv?key=gone", content=b"x").status_code == 200
        assert httpx.get(f"{base}/kv?key=gone").content == b"x"
        assert httpx.delete(f"{base}/kv?key=gone").status_code == 200
        assert httpx.get(f"{base}/kv?key=gone").status_code == 404
        for statement in (b"CREATE TABLE t (x INTEGER, s TEXT, b BLOB, n)",
                          b"INSERT INTO t VALUES (42, 'hi', x'00ff', NULL)"):
            r = httpx.post(f"{base}/sqlite", content=statement)  # one statement per call, as in Spin
            assert r.status_code == 200, r.text
        doc = httpx.post(f"{base}/sqlite", content=b"SELECT x, s, b, n FROM t").json()
        assert doc == {"columns": ["x", "s", "b", "n"], "rows": [[42, "hi", "00ff", None]]}
        r = httpx.post(f"{base}/sqlite", content=b"SELECT * FROM no_such_table")
        assert r.status_code == 500 and r.text.startswith("error: io: "), r.text
        assert httpx.get(f"{base}/var").text == SECRET  # the app may show it; tauon never logs it
        log1 = tauon.log()
    with run_tauon(tmp_path / "run2", cache_dir=cache, state_root=tmp_path / "state") as tauon:
        (tauon.watch_dir / "shop.json").write_text(app_file(v1, port, **spec))
        r = wait_http(f"{base}/kv?key=fruit", timeout=120)
        assert r.content == b"apple"  # survived the restart
        (tauon.watch_dir / "shop.json").write_text(app_file(v2, port, **spec))
        tauon.wait_log(r"shop\.json: updated to generation 2", timeout=120)
        assert httpx.get(f"{base}/kv?key=fruit").content == b"apple"  # survived the update
        assert httpx.get(f"{base}/kv?key=gone").status_code == 404
        rows = httpx.post(f"{base}/sqlite", content=b"SELECT x FROM t").json()["rows"]
        assert rows == [[42]]
        assert httpx.get(f"{base}/var").text == SECRET
        log2 = tauon.log()
    # Spin's schema and file name: what the JS component wrote is readable by Spin itself.
    with sqlite3.connect(tmp_path / "state" / "shop" / "sqlite_key_value.db") as db:
        assert db.execute("SELECT value FROM spin_key_value WHERE store='default' AND key='fruit'"
                          ).fetchall() == [(b"apple",)]
    for log in (log1, log2):
        assert SECRET not in log


def test_js_access_denied(tmp_path: Path, registry: RegistryServer, component_runtime: str,
                          shared_cache: Path) -> None:
    denied = push_app(registry, "state/js", "denied", js_app(stores=[], databases=[], marker="x"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_tauon(tmp_path, cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "denied.json").write_text(app_file(denied, port, variables={"greeting": SECRET}))
        wait_http(f"{base}/", timeout=120)
        for method in ("GET", "PUT"):
            r = httpx.request(method, f"{base}/kv?key=a", content=b"v")
            assert (r.status_code, r.text) == (500, "error: access-denied\n")
        r = httpx.post(f"{base}/sqlite", content=b"SELECT 1")
        assert (r.status_code, r.text) == (500, "error: access-denied\n")
        assert httpx.get(f"{base}/var").text == SECRET  # variables need no grant
        assert SECRET not in tauon.log()
