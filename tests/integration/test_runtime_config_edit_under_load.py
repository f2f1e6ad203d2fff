"""The runtime config edited while one tauon serves its app under load: the edit is a new generation,
swapped in without a failed request. Real registry, real tauon, the spin-sdk 3.4.1 python-kv fixture;
four client threads keep requests going before, during and after the swap."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.daemon import free_port, run_tauon, wait_http
from support.kvapp import kv_app
from support.load import Load
from support.registry import RegistryServer

pytestmark = pytest.mark.integration

RC = '[key_value_store.cache]\ntype = "spin"\npath = "data/{name}.db"\n'


def test_editing_the_runtime_config_under_load_fails_no_request(tmp_path: Path,
                                                                registry: RegistryServer) -> None:
    ref = push_app(registry, "rc/kv-load", "v1", kv_app(["default", "cache"]))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "rc.toml").write_text(RC.format(name="first"))
        (tauon.watch_dir / "shop.json").write_text(
            app_file(ref, port, state_dir="shop", runtime_config="rc.toml"))
        wait_http(f"{base}/keys/default", timeout=240)
        assert httpx.put(f"{base}/kv/cache/which", content=b"first").status_code == 200

        with Load(f"{base}/kv/cache/which", outcome=lambda r: f"{r.status_code} {r.text[:200]}") as load:
            _wait_for(lambda: load.count("200 first") >= 20, "requests served before the edit")
            (tauon.watch_dir / "rc.toml").write_text(RC.format(name="second"))
            tauon.wait_log(r"shop\.json: updated to generation \d+", timeout=240)
            # The new store is empty: the guest sees 'no such key' from the new generation on.
            _wait_for(lambda: load.count("404 no such key\n") >= 20, "requests served after the swap")
    assert load.unexpected("200 first", "404 no such key\n") == {}


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
