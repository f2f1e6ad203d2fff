"""The cache's collector and compiled code (`<cache>/compiled/`): a real daemon with a worker, real apps
whose compiled files and converted wasm exist. What no live generation holds goes when the cache is
over its bound (least recently used first) or once unused for the grace period; what the serving apps
hold stays, so they keep serving in every process and restart warm. The grace-period test runs on both
component runtimes (`component_runtime`): tauon's runtime caches each component's core modules beside
the compiled component (`modules/runtime*`), and they are collected with it."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.componentize import fixture
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.fixtures import fixture_path
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent
from tauon.registry.gc import GRACE

pytestmark = pytest.mark.integration

CHILD = r"compiling .* in a child process"
"""What the daemon logs (debug) when its compile child starts: a warm start logs none."""


def keep_app() -> SpinAppSpec:
    """A wit-bindgen reactor core module: converted at load (`converted/`), compiled (`components/`)."""
    return SpinAppSpec(name="keep", components=[SpinComponent(id="keep", wasm=fixture("reactor-http"))],
                       triggers=[{"route": "/...", "component": "keep"}])


def gone_app() -> SpinAppSpec:
    """A C component (`components/`) and a WAGI module (`modules/`)."""
    return SpinAppSpec(
        name="gone",
        components=[SpinComponent(id="c", wasm=component_path("c").read_bytes()),
                    SpinComponent(id="wagi", wasm=fixture_path("sleep").read_bytes())],
        triggers=[{"route": "/c/...", "component": "c"},
                  {"route": "/...", "component": "wagi", "executor": {"type": "wagi"}}])


def compiled_files(cache: Path) -> set[str]:
    root = cache / "compiled"
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.suffix in (".cwasm", ".wasm")}


def served_by_every_process(tauon: TauonProcess, url: str, processes: int = 2) -> None:
    """Requests on new connections until each serving process has answered some (all must be 200)."""
    assert tauon.admin is not None
    deadline = time.monotonic() + 60
    while True:
        for _ in range(20):
            assert httpx.get(url, timeout=10).status_code == 200
        rows = httpx.get(f"{tauon.admin}/status", timeout=5).json()["processes"]
        if len(rows) == processes and all(row["requests"] > 0 for row in rows):
            return
        assert time.monotonic() < deadline, f"not every process served {url}: {rows}"


def test_over_its_bound_the_cache_drops_unheld_compiled_code_and_the_serving_app_restarts_warm(
        registry: RegistryServer, tmp_path: Path) -> None:
    keep_ref = push_app(registry, "gc/keep", "v1", keep_app())
    gone_ref = push_app(registry, "gc/gone", "v1", gone_app())
    watch, cache = tmp_path / "apps", tmp_path / "cache"
    watch.mkdir()
    keep_port, gone_port = free_port(), free_port()
    (watch / "keep.json").write_text(app_file(keep_ref, keep_port))
    (watch / "gone.json").write_text(app_file(gone_ref, gone_port))
    keep_url = f"http://127.0.0.1:{keep_port}/"
    with run_tauon(tmp_path / "run1", "--workers", "2", watch_dir=watch, cache_dir=cache,
                   admin=True) as tauon:
        wait_http(keep_url, timeout=180)
        wait_http(f"http://127.0.0.1:{gone_port}/c/x", timeout=180)
        assert tauon.wait_log(CHILD)
    both = compiled_files(cache)
    assert {p.split("/")[0] for p in both} == {"modules", "components", "converted"}
    assert len(both) == 4  # keep: converted + component; gone: a component and a module

    (watch / "gone.json").unlink()  # gone's compiled code, written a minute ago, is unused now
    tiny = "0.000001"  # ~1 KiB: every collection is over the bound
    with run_tauon(tmp_path / "run2", "--workers", "2", "--cache-max-gib", tiny, watch_dir=watch,
                   cache_dir=cache, admin=True) as tauon:
        wait_http(keep_url, timeout=120)
        tauon.wait_log(r"cache: removed 2 compiled entries no app uses \(.*; 0 unused for the grace "
                       r"period, 2 to keep the cache within its bound\)", timeout=60)
        kept = compiled_files(cache)
        assert len(kept) == 2 and {p.split("/")[0] for p in kept} == {"converted", "components"}
        assert kept < both
        served_by_every_process(tauon, keep_url)  # the daemon and the worker map what was kept
        assert not re.search(CHILD, tauon.log())

    with run_tauon(tmp_path / "run3", "--workers", "2", "--cache-max-gib", tiny, watch_dir=watch,
                   cache_dir=cache, admin=True) as tauon:
        wait_http(keep_url, timeout=120)
        served_by_every_process(tauon, keep_url)
        tauon.wait_log(r"keep\.json: serving")
        assert not re.search(CHILD, tauon.log()), "the restart compiled again"
    assert compiled_files(cache) == kept


def test_compiled_code_no_app_has_used_for_the_grace_period_is_collected(
        registry: RegistryServer, tmp_path: Path, component_runtime: str) -> None:
    gone_ref = push_app(registry, "gc/aged", "v1", gone_app())
    port = free_port()
    with run_tauon(tmp_path, "--workers", "1") as tauon:
        (tauon.watch_dir / "aged.json").write_text(json.dumps(
            {"reference": gone_ref, "address": f"127.0.0.1:{port}", "insecure": True}))
        wait_http(f"http://127.0.0.1:{port}/c/x", timeout=180)
        compiled = compiled_files(tauon.cache_dir)
        core = {name for name in compiled if name.startswith("modules/runtime")}  # the tauon runtime's
        assert len(compiled - core) == 2 and bool(core) == (component_runtime == "tauon"), compiled
        (tauon.watch_dir / "aged.json").unlink()
        tauon.wait_log(r"aged\.json: stopped")
        old = time.time() - 2 * GRACE
        for name in compiled:
            os.utime(tauon.cache_dir / "compiled" / name, (old, old))
        n = len(compiled)
        tauon.wait_log(rf"cache: removed {n} compiled entries no app uses \(.*; {n} unused for the grace "
                       r"period, 0 to keep", timeout=60)
        assert compiled_files(tauon.cache_dir) == set()
