"""Tiered compilation in the real daemon: an app whose compiled code is not cached serves Winch's code
first, Cranelift compiles in the background and its generation is swapped in without a failed request;
a warm restart serves Cranelift's code directly; `--tiering off` waits for Cranelift; a component
Winch cannot compile falls back to Cranelift with a log line. Real registry, real fixtures (the JS
component), real HTTP.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import wasmtime

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.load import Load
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

ON = {"TAUON_TIERING": "on"}


def push_component(registry: RegistryServer, repo: str, wasm: bytes, *, wagi: bool = False) -> str:
    trigger: dict[str, object] = {"route": "/...", "component": "app"}
    if wagi:
        trigger["executor"] = {"type": "wagi"}
    app = SpinAppSpec(name=repo.replace("/", "-"), components=[SpinComponent(id="app", wasm=wasm)],
                      triggers=[trigger])
    return push_app(registry, repo, "v1", app)


def app_row(tauon: TauonProcess) -> dict[str, object]:
    assert tauon.admin is not None
    apps = httpx.get(f"{tauon.admin}/status", timeout=10).json()["apps"]
    assert len(apps) == 1
    row: dict[str, object] = apps[0]
    return row


def tier_metric(tauon: TauonProcess) -> list[str]:
    text = httpx.get(f"{tauon.admin}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith("tauon_app_tier{")]


def wait_tier(tauon: TauonProcess, tier: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while app_row(tauon).get("tier") != tier:
        assert time.monotonic() < deadline, f"still {app_row(tauon)} after {timeout}s; log:\n{tauon.log()}"
        time.sleep(0.2)


def compiled_components(cache: Path) -> list[Path]:
    return sorted((cache / "compiled" / "components").glob("*.cwasm"))


def test_cold_start_serves_winch_then_swaps_to_cranelift_under_load_and_a_warm_restart_serves_cranelift(
        registry: RegistryServer, tmp_path: Path) -> None:
    ref = push_component(registry, "tiering/js", component_path("js").read_bytes())
    cache = tmp_path / "cache"
    port = free_port()
    url = f"http://127.0.0.1:{port}/echo"
    with run_tauon(tmp_path / "cold", "--workers", "2", "--log-level", "info", admin=True, env=ON,
                   cache_dir=cache) as tauon:
        (tauon.watch_dir / "js.json").write_text(app_file(ref, port))
        tauon.wait_log(r"js\.json: serving: .*\(Winch's code; Cranelift compiles in the background\)",
                       timeout=180)
        wait_http(url, timeout=30)
        row = app_row(tauon)
        assert (row["tier"], row["generation"], row["state"]) == ("winch", 1, "running"), row
        assert tier_metric(tauon) == ['tauon_app_tier{app="js.json",tier="winch"} 1.0']
        with Load(url) as load:
            tauon.wait_log(r"js\.json: updated to generation 2: .*\(Cranelift's code\)", timeout=600)
            wait_tier(tauon, "cranelift", 30)
            served = load.total()
            deadline = time.monotonic() + 30  # requests on the new generation too, in every process
            while load.total() < served + 40 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert load.unexpected("200") == {}
        assert load.count("200") > served > 0
        assert tier_metric(tauon) == ['tauon_app_tier{app="js.json",tier="cranelift"} 1.0']
        assert "compiled with Cranelift in" in tauon.log()
        # Both tiers' code is cached: one artifact each (the Winch key carries strategy=winch).
        assert len(compiled_components(cache)) == 2, compiled_components(cache)
    with run_tauon(tmp_path / "warm", "--workers", "2", "--log-level", "debug", admin=True, env=ON,
                   cache_dir=cache) as tauon:
        (tauon.watch_dir / "js.json").write_text(app_file(ref, port))
        tauon.wait_log(r"js\.json: serving: ", timeout=120)
        assert httpx.get(url, timeout=30).status_code == 200
        row = app_row(tauon)
        assert (row["tier"], row["generation"]) == ("cranelift", 1), row
        log = tauon.log()
        assert "Winch's code" not in log and "in a child process" not in log, log


def test_tiering_off_waits_for_cranelift(registry: RegistryServer, tmp_path: Path) -> None:
    """`--tiering off` wins over TAUON_TIERING=on: one generation, Cranelift's, no Winch compile."""
    ref = push_component(registry, "tiering/c-off", component_path("c").read_bytes())
    port = free_port()
    with run_tauon(tmp_path, "--tiering", "off", "--workers", "2", "--log-level", "debug",
                   admin=True, env=ON) as tauon:
        (tauon.watch_dir / "c.json").write_text(app_file(ref, port))
        tauon.wait_log(r"c\.json: serving: ", timeout=120)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
        assert app_row(tauon)["tier"] == "cranelift"
        time.sleep(2)  # a background compile would have been swapped in by now for this tiny component
        log = tauon.log()
        assert "in a child process (cranelift)" in log, log
        assert "winch" not in log.lower(), log
        assert app_row(tauon)["generation"] == 1


def test_env_turns_tiering_off(registry: RegistryServer, tmp_path: Path) -> None:
    ref = push_component(registry, "tiering/c-env", component_path("c").read_bytes())
    port = free_port()
    with run_tauon(tmp_path, "--log-level", "debug", admin=True, env={"TAUON_TIERING": "off"}) as tauon:
        (tauon.watch_dir / "c.json").write_text(app_file(ref, port))
        tauon.wait_log(r"c\.json: serving: ", timeout=120)
        assert app_row(tauon)["tier"] == "cranelift"
        assert "winch" not in tauon.log().lower()


TAIL_CALL_WAGI = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\\n\\ntail call\\n")
  (func $write (result i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 36))
    (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $respond (result i32) return_call $write)
  (func (export "_start") (drop (call $respond))))
"""


def test_a_module_winch_cannot_compile_falls_back_to_cranelift_with_a_log_line(
        registry: RegistryServer, tmp_path: Path) -> None:
    """Winch (wasmtime 50) does not compile tail calls; Cranelift does: the app serves Cranelift's
    code at once and says why."""
    wasm = bytes(wasmtime.wat2wasm(TAIL_CALL_WAGI))
    ref = push_component(registry, "tiering/tail", wasm, wagi=True)
    port = free_port()
    with run_tauon(tmp_path, "--log-level", "info", admin=True, env=ON) as tauon:
        (tauon.watch_dir / "tail.json").write_text(app_file(ref, port))
        tauon.wait_log(r"tail\.json: serving: ", timeout=120)
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert (r.status_code, r.text) == (200, "tail call\n")
        log = tauon.log()
        assert "tail.json: Winch could not compile it" in log and "tail calls" in log, log
        assert "compiling with Cranelift instead" in log
        row = app_row(tauon)
        assert (row["tier"], row["generation"]) == ("cranelift", 1), row


def test_in_memory_stores_survive_the_swap_to_cranelift_with_workers(
        registry: RegistryServer, tmp_path: Path) -> None:
    """Without a state_dir, worker processes keep the default store in a private SQLite file per
    generation: the Cranelift generation of the same plan keeps the Winch generation's, so what a
    guest stored on Winch's code is still there after the swap."""
    app = SpinAppSpec(name="kv", components=[SpinComponent(
        id="web", wasm=component_path("js-spin").read_bytes(), metadata={"key_value_stores": ["default"]})],
        triggers=[{"route": "/...", "component": "web"}])
    ref = push_app(registry, "tiering/kv", "v1", app)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    with run_tauon(tmp_path, "--workers", "2", "--log-level", "info", admin=True,
                   env={**ON, "RUNTIME_DIRECTORY": str(runtime)}) as tauon:
        (tauon.watch_dir / "kv.json").write_text(app_file(ref, port))
        tauon.wait_log(r"kv\.json: serving: .*Winch's code", timeout=180)
        assert httpx.put(f"{base}/kv?key=fruit", content=b"apple", timeout=30).status_code == 200
        [private] = runtime.glob("*/kv.json.1.*")
        tauon.wait_log(r"kv\.json: updated to generation 2: .*\(Cranelift's code\)", timeout=600)
        wait_tier(tauon, "cranelift", 30)
        time.sleep(3)  # past the drain of generation 1, when its private directory would go
        # Still there: a process that opens the store anew (a restarted worker) finds the data.
        assert (private / "sqlite_key_value.db").is_file(), sorted(private.parent.rglob("*"))
        for _ in range(6):  # both processes
            r = httpx.get(f"{base}/kv?key=fruit", timeout=30)
            assert (r.status_code, r.content) == (200, b"apple")
