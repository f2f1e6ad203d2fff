"""WASI 0.3's synchronous host functions (clocks, random, cli environment/exit/terminal) and Spin 4's
sqlite@3.1.0 synchronous functions: which import versions they serve, and their values as a real
component sees them through tauon's component runtime (`RuntimeLinks`, real wasmtime, a real HostState).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from support.asynchost import load_wat
from tauon.hostif.linker import ALL_INTERFACES, interface_for, merge
from tauon.hostif.runtime_link import RuntimeLinks
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.component.guest import Trap
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.guest import RuntimeGuestFunc, instantiate
from tauon.wasm.runtime.instance import RuntimeComponent

BY_NAME = merge(ALL_INTERFACES)


def served(import_name: str) -> str | None:
    iface = interface_for(BY_NAME, import_name)
    return iface.name if iface is not None else None


@pytest.mark.parametrize("version", ["0.3.0", "0.3.0-rc-2026-03-15", "0.3.4"])
def test_wasi_0_3_imports_resolve_to_the_0_3_interfaces(version: str) -> None:
    assert served(f"wasi:clocks/monotonic-clock@{version}") == "wasi:clocks/monotonic-clock@0.3"
    assert served(f"wasi:clocks/system-clock@{version}") == "wasi:clocks/system-clock@0.3"
    assert served(f"wasi:random/insecure-seed@{version}") == "wasi:random/insecure-seed@0.3"
    assert served(f"wasi:cli/environment@{version}") == "wasi:cli/environment@0.3"


def test_0_2_and_unknown_candidates_never_reach_the_0_3_interfaces() -> None:
    assert served("wasi:clocks/monotonic-clock@0.2.9") == "wasi:clocks/monotonic-clock"
    assert served("wasi:clocks/wall-clock@0.3.0") is None  # renamed system-clock in 0.3
    assert served("wasi:clocks/monotonic-clock@0.3.0-rc-2026-01-06") is None  # Spin links only 03-15
    assert served("wasi:clocks/monotonic-clock@0.4.0") is None
    assert served("spin:sqlite/sqlite@3.1.0") == "spin:sqlite/sqlite@3.1.0"


def test_the_0_3_functions_have_0_3_names() -> None:
    assert set(BY_NAME["wasi:clocks/monotonic-clock@0.3"].funcs) >= {"now", "get-resolution"}
    assert "get-insecure-seed" in BY_NAME["wasi:random/insecure-seed@0.3"].funcs
    assert "get-initial-cwd" in BY_NAME["wasi:cli/environment@0.3"].funcs


# A component importing the 0.3 synchronous functions at both versions Spin 4 links, and exporting
# functions that return what they got.
V = "0.3.0"
RC = "0.3.0-rc-2026-03-15"
COMPONENT = f"""(component
  (import "wasi:clocks/monotonic-clock@{V}" (instance $mono
    (export "now" (func (result u64)))
    (export "get-resolution" (func (result u64)))))
  (import "wasi:clocks/system-clock@{RC}" (instance $sys
    (type $instant (record (field "seconds" s64) (field "nanoseconds" u32)))
    (export "instant" (type $i (eq $instant)))
    (export "now" (func (result $i)))
    (export "get-resolution" (func (result u64)))))
  (import "wasi:random/random@{V}" (instance $rand
    (export "get-random-bytes" (func (param "max-len" u64) (result (list u8))))))
  (import "wasi:random/insecure-seed@{RC}" (instance $seed
    (export "get-insecure-seed" (func (result (tuple u64 u64))))))
  (import "wasi:cli/environment@{V}" (instance $env
    (export "get-environment" (func (result (list (tuple string string)))))
    (export "get-initial-cwd" (func (result (option string))))))
  (import "wasi:cli/exit@{V}" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (core module $libc
    (memory (export "memory") 32)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (core func $now (canon lower (func $mono "now")))
  (core func $res (canon lower (func $mono "get-resolution")))
  (core func $sys_now (canon lower (func $sys "now") (memory $mem)))
  (core func $sys_res (canon lower (func $sys "get-resolution")))
  (core func $bytes (canon lower (func $rand "get-random-bytes") (memory $mem) (realloc $realloc)))
  (core func $seed (canon lower (func $seed "get-insecure-seed") (memory $mem)))
  (core func $env (canon lower (func $env "get-environment") (memory $mem) (realloc $realloc)))
  (core func $cwd (canon lower (func $env "get-initial-cwd") (memory $mem) (realloc $realloc)))
  (core func $exit (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "h" "now" (func $now (result i64)))
    (import "h" "res" (func $res (result i64)))
    (import "h" "sys-now" (func $sys_now (param i32)))
    (import "h" "sys-res" (func $sys_res (result i64)))
    (import "h" "bytes" (func $bytes (param i64 i32)))
    (import "h" "seed" (func $seed (param i32)))
    (import "h" "env" (func $env (param i32)))
    (import "h" "cwd" (func $cwd (param i32)))
    (import "h" "exit" (func $exit (param i32)))
    (func (export "now") (result i64) (call $now))
    (func (export "res") (result i64) (call $res))
    (func (export "sys-now") (result i32) (call $sys_now (i32.const 1024)) (i32.const 1024))
    (func (export "sys-res") (result i64) (call $sys_res))
    (func (export "bytes") (param i64) (result i32) (call $bytes (local.get 0) (i32.const 1024))
      (i32.const 1024))
    (func (export "seed") (result i32) (call $seed (i32.const 1024)) (i32.const 1024))
    (func (export "env") (result i32) (call $env (i32.const 1024)) (i32.const 1024))
    (func (export "cwd") (result i32) (call $cwd (i32.const 1024)) (i32.const 1024))
    (func (export "exit") (param i32) (call $exit (local.get 0))))
  (core instance $i (instantiate $m (with "h" (instance
    (export "now" (func $now)) (export "res" (func $res)) (export "sys-now" (func $sys_now))
    (export "sys-res" (func $sys_res)) (export "bytes" (func $bytes)) (export "seed" (func $seed))
    (export "env" (func $env)) (export "cwd" (func $cwd)) (export "exit" (func $exit))))))
  (type $instant' (record (field "seconds" s64) (field "nanoseconds" u32)))
  (export $instant "instant" (type $instant'))
  (func (export "now") (result u64) (canon lift (core func $i "now")))
  (func (export "res") (result u64) (canon lift (core func $i "res")))
  (func (export "sys-now") (result $instant) (canon lift (core func $i "sys-now") (memory $mem)))
  (func (export "sys-res") (result u64) (canon lift (core func $i "sys-res")))
  (func (export "bytes") (param "n" u64) (result (list u8))
    (canon lift (core func $i "bytes") (memory $mem)))
  (func (export "seed") (result (tuple u64 u64)) (canon lift (core func $i "seed") (memory $mem)))
  (func (export "env") (result (list (tuple string string)))
    (canon lift (core func $i "env") (memory $mem)))
  (func (export "cwd") (result (option string)) (canon lift (core func $i "cwd") (memory $mem)))
  (func (export "exit") (param "code" u8) (canon lift (core func $i "exit")))
)"""


@pytest.fixture(scope="module")
def runtime(engine: WasmEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[RuntimeComponent,
                                                                                    RuntimeLinks]:
    links = RuntimeLinks()
    return load_wat(engine, tmp_path_factory.mktemp("p3") / "c.wasm", COMPONENT, links), links


def call(engine: WasmEngine, component: RuntimeComponent, name: str, *args: Any) -> Any:
    config = HostConfig(label="app.json/web", logger=logging.getLogger("tauon.test.p3"),
                        env=(("GREETING", "hé"), ("EMPTY", "")))
    state = HostState(config, timeout=10.0)
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    instance = instantiate(component, store, state=state)
    try:
        return RuntimeGuestFunc(component, None, name).call(store, instance, state, *args)
    finally:
        state.finish()


def test_every_imported_function_is_implemented(runtime: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    _, links = runtime
    assert links.trapping == []
    assert len(links.implemented) == 9


def test_clocks(engine: WasmEngine, runtime: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    component, _ = runtime
    before = time.monotonic_ns()
    now = call(engine, component, "now")
    assert before <= now <= time.monotonic_ns()
    assert call(engine, component, "res") == 1
    wall = time.time_ns()
    instant = call(engine, component, "sys-now")
    assert set(instant) == {"seconds", "nanoseconds"} and 0 <= instant["nanoseconds"] < 1_000_000_000
    assert abs(instant["seconds"] * 1_000_000_000 + instant["nanoseconds"] - wall) < 5_000_000_000
    assert call(engine, component, "sys-res") == 1000


def test_random_returns_at_most_max_len_bytes(engine: WasmEngine,
                                              runtime: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    component, _ = runtime
    first, second = call(engine, component, "bytes", 32), call(engine, component, "bytes", 32)
    assert len(first) == 32 and first != second
    assert call(engine, component, "bytes", 0) == b""
    assert len(call(engine, component, "bytes", 1 << 40)) == 1 << 20  # capped, as 0.3 allows
    a, b = call(engine, component, "seed")
    assert isinstance(a, int) and isinstance(b, int)


def test_environment_is_the_components_and_there_is_no_cwd(
        engine: WasmEngine, runtime: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    component, _ = runtime
    assert call(engine, component, "env") == [("GREETING", "hé"), ("EMPTY", "")]
    assert call(engine, component, "cwd") is None


def test_exit_with_code_ends_the_guest_with_its_status(
        engine: WasmEngine, runtime: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    component, _ = runtime
    with pytest.raises(Trap) as info:
        call(engine, component, "exit", 3)
    assert "exit with status 3" in str(info.value)


def test_terminal_and_sqlite_3_1_sync_functions_are_served() -> None:
    terminal = BY_NAME["wasi:cli/terminal-stdout@0.3"].funcs["get-terminal-stdout"]
    assert terminal(None) is None
    sqlite = BY_NAME["spin:sqlite/sqlite@3.1.0"].funcs
    assert {"[static]connection.open", "[method]connection.execute",
            "[method]connection.last-insert-rowid", "[method]connection.changes"} <= set(sqlite)


def test_sqlite_3_1_sync_open_and_execute_on_a_state_dir(tmp_path: Path) -> None:
    from support.spin_services import app_services, component, host_state

    sqlite = BY_NAME["spin:sqlite/sqlite@3.1.0"].funcs
    with app_services(tmp_path, component(databases=["default"])) as services:
        state = host_state(services)
        try:
            conn = sqlite["[static]connection.open"](state, "default")[1]
            sqlite["[method]connection.execute"](state, conn, "CREATE TABLE t (v)", [])
            assert sqlite["[method]connection.execute"](
                state, conn, "INSERT INTO t VALUES (?)", [("text", "x")]) == ("ok", ([], []))
            assert sqlite["[method]connection.last-insert-rowid"](state, conn) == 1
            assert sqlite["[method]connection.changes"](state, conn) == 1
            assert sqlite["[static]connection.open"](state, "other") == ("err", "access-denied")
        finally:
            state.finish()


def test_name_lookup_fails_as_spin_never_enables_it() -> None:
    lookup = BY_NAME["wasi:sockets/ip-name-lookup@0.3"].funcs["resolve-addresses"]
    assert lookup(None, "example.com") == ("err", "permanent-resolver-failure")
    assert lookup(None, "127.0.0.1") == ("err", "permanent-resolver-failure")
    assert lookup(None, "not a host") == ("err", "invalid-argument")
    assert served("wasi:sockets/types@0.3.0") is None  # 0.3 sockets: not provided yet
