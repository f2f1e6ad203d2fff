"""Labelled key-value stores and SQLite databases from a runtime config, through the real registry and
the real tauon process with the spin-sdk 3.4.1 python-kv fixture: labels other than 'default', Spin's
file layout, the TOML edited while serving (new generation; a broken edit keeps the last good one).
On both component runtimes (`component_runtime`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.daemon import free_port, run_tauon, wait_http
from support.kvapp import kv_app
from support.registry import RegistryServer

pytestmark = pytest.mark.integration

RC_V1 = '''
[key_value_store.cache]
type = "spin"
path = "data/cache.db"

[sqlite_database.reports]
type = "spin"
path = "data/reports.db"
'''


def test_labelled_stores_and_databases(tmp_path: Path, registry: RegistryServer, component_runtime: str,
                                       shared_cache: Path) -> None:
    ref = push_app(registry, "rc/kv", "v1", kv_app(["default", "cache"], ["default", "reports"]))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_tauon(tmp_path, cache_dir=shared_cache) as tauon:
        # No runtime config: the component's 'cache' label is unknown, as in Spin.
        (tauon.watch_dir / "shop.json").write_text(app_file(ref, port, state_dir="shop"))
        tauon.wait_log(r"unknown key_value_stores label\(s\) 'cache'.*\[key_value_store\.<label>\]",
                       timeout=180)
        (tauon.watch_dir / "rc.toml").write_text(RC_V1)
        (tauon.watch_dir / "shop.json").write_text(
            app_file(ref, port, state_dir="shop", runtime_config="rc.toml"))
        wait_http(f"{base}/keys/default", timeout=180)
        assert httpx.put(f"{base}/kv/cache/fruit", content=b"apple").status_code == 200
        assert httpx.put(f"{base}/kv/default/fruit", content=b"pear").status_code == 200
        assert httpx.get(f"{base}/kv/cache/fruit").content == b"apple"
        assert httpx.get(f"{base}/kv/default/fruit").content == b"pear"
        r = httpx.post(f"{base}/sql/reports", content=b"CREATE TABLE t (x INTEGER)")
        assert r.status_code == 200, r.text
        httpx.post(f"{base}/sql/reports", content=b"INSERT INTO t VALUES (7)")
        assert httpx.post(f"{base}/sql/default", content=b"SELECT 1").json()["rows"] == [[1]]
        # A label the component does not list: access-denied, as in Spin.
        assert "AccessDenied" in httpx.get(f"{base}/kv/other/fruit").text

        # A broken edit: the error names the file, table and key; the last good generation serves.
        (tauon.watch_dir / "rc.toml").write_text(RC_V1.replace('type = "spin"\npath = "data/cache.db"',
                                                               'type = "azure_cosmos"'))
        tauon.wait_log(r"\[key_value_store\.cache\.type\] type 'azure_cosmos' \(Azure Cosmos DB\) is not "
                       r"available in tauon", timeout=60)
        assert httpx.get(f"{base}/kv/cache/fruit").content == b"apple"
        # A good edit moves the cache: a new generation, with the new file.
        (tauon.watch_dir / "rc.toml").write_text(RC_V1.replace("data/cache.db", "data/cache2.db"))
        tauon.wait_log(r"shop\.json: updated to generation \d+", timeout=180)
        assert httpx.get(f"{base}/kv/cache/fruit").status_code == 404
        assert httpx.get(f"{base}/kv/default/fruit").content == b"pear"
    # Spin's schema: the label is the store column; the default store stays in the state dir.
    with sqlite3.connect(tauon.watch_dir / "data" / "cache.db") as db:
        assert db.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("cache", "fruit", b"apple")]
    with sqlite3.connect(tmp_path / "state" / "shop" / "sqlite_key_value.db") as db:
        assert db.execute("SELECT store, value FROM spin_key_value").fetchall() == [("default", b"pear")]
    with sqlite3.connect(tauon.watch_dir / "data" / "reports.db") as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(7,)]
