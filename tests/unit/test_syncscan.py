"""The quick synchronous-component scan (wasm/runtime/syncscan.py) against the full plan it short-cuts:
on small hand-written components, each validated by real wasmtime, it must never call a component
synchronous that the plan calls async, and must call the plain ones synchronous (or it saves nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from tauon.wasm.engine import WasmEngine
from tauon.wasm.runtime.selection import compiles_core_modules
from tauon.wasm.runtime.syncscan import P3_HANDLER, certainly_sync

# Host functions `f: func(n: u32) -> u32` and `g: async func()` lowered into a core module whose `run`
# is lifted and exported; a resource with its three builtins; the export re-typed through a nested
# component, as wit-component does. Placeholders vary one part at a time.
TEMPLATE = r"""(component
  (import "test:x/api" (instance $h
    (export "f" (func (param "n" u32) (result u32)))
    (export "g" (func async))))
  (alias export $h "f" (func $f))
  (alias export $h "g" (func $g))
  (type $r (resource (rep i32)))
  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (core module $m
    (import "h" "f" (func $f (param i32) (result i32)))
    (import "h" "g" (func $g {G_CORE}))
    (import "h" "extra" (func $extra {EXTRA_CORE}))
    (import "h" "new" (func $new (param i32) (result i32)))
    (import "h" "drop" (func $drop (param i32)))
    (import "h" "rep" (func $rep (param i32) (result i32)))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 8)
    (func (export "run") (param i32) {RUN_CORE} local.get 0 call $f {RUN_TAIL})
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0)
    (func (export "post") (param i32)))
  (core func $f_l (canon lower (func $f) (memory $mem) string-encoding=utf8))
  (core func $g_l (canon lower (func $g) {G_OPTS}))
  (core func $extra_l {EXTRA})
  (core func $new_l (canon resource.new $r))
  (core func $drop_l (canon resource.drop $r))
  (core func $rep_l (canon resource.rep $r))
  (core instance $hi
    (export "f" (func $f_l)) (export "g" (func $g_l)) (export "extra" (func $extra_l))
    (export "new" (func $new_l)) (export "drop" (func $drop_l)) (export "rep" (func $rep_l)))
  (core instance $i (instantiate $m (with "h" (instance $hi))))
  (alias core export $i "realloc" (core func $realloc))
  (alias core export $i "post" (core func $post))
  (alias core export $i "cb" (core func $cb))
  (func $run {RUN_ASYNC}(param "n" u32) {RUN_RESULT} (canon lift (core func $i "run") {LIFT_OPTS}))
  (component $shim
    (import "run" (func $run {RUN_ASYNC}(param "n" u32) {RUN_RESULT}))
    {NESTED}
    (export "run" (func $run)))
  (instance $typed (instantiate $shim (with "run" (func $run)){WITH}))
  (export "{EXPORT}" (instance $typed)))
"""

SYNC = {
    "G_CORE": "", "G_OPTS": "",
    "EXTRA_CORE": "(param i32) (result i32)", "EXTRA": "(canon resource.rep $r)",
    "RUN_CORE": "(result i32)", "RUN_TAIL": "", "RUN_RESULT": "(result u32)",
    "LIFT_OPTS": "(memory $mem) (realloc $realloc) (post-return $post)",
    "NESTED": "", "EXPORT": "test:x/run@1.0.0", "RUN_ASYNC": "", "WITH": "",
}

ASYNC_VARIANTS = {
    "an async lower": {"G_CORE": "(result i32)", "G_OPTS": "async"},
    "an async lift with a callback": {
        "RUN_CORE": "(result i32)", "LIFT_OPTS": "async (callback $cb)", "RUN_ASYNC": "async "},
    "a task.return builtin": {"EXTRA_CORE": "(param i32)", "EXTRA": "(canon task.return (result u32))"},
    "a context.get builtin": {"EXTRA_CORE": "(result i32)", "EXTRA": "(canon context.get i32 0)"},
    "the WASIp3 handler's export name": {"EXPORT": "wasi:http/handler@0.3.0-rc-2026-03-15"},
    "an async lower in a nested component": {"NESTED": """(import "n" (func $n async))
    (core func $n_l (canon lower (func $n) async))
    (core module $nm (import "n" "n" (func (result i32))))
    (core instance $ni (instantiate $nm (with "n" (instance (export "n" (func $n_l))))))""",
        "WITH": ' (with "n" (func $g))'},
}


def component(engine: WasmEngine, tmp_path: Path, name: str, **parts: str) -> Path:
    wat = TEMPLATE
    for key, value in {**SYNC, **parts}.items():
        wat = wat.replace("{" + key + "}", value)
    data = bytes(wasmtime.wat2wasm(wat))
    wasmtime.component.Component(engine.engine, data)  # valid, as tauon only ever scans validated wasm
    path = tmp_path / f"{name.replace(' ', '-')}.wasm"
    path.write_bytes(data)
    return path


def test_a_synchronous_component_with_every_plain_canon_form_is_certainly_sync(
        engine: WasmEngine, tmp_path: Path) -> None:
    path = component(engine, tmp_path, "sync")
    assert certainly_sync(path, P3_HANDLER)
    assert not compiles_core_modules(path, "wasmtime")


@pytest.mark.parametrize("variant", sorted(ASYNC_VARIANTS))
def test_any_sign_of_async_makes_it_uncertain_and_the_plan_decides(engine: WasmEngine, tmp_path: Path,
                                                                   variant: str) -> None:
    path = component(engine, tmp_path, variant, **ASYNC_VARIANTS[variant])
    assert not certainly_sync(path, P3_HANDLER)
    assert compiles_core_modules(path, "wasmtime")


def test_what_is_not_a_whole_component_binary_is_uncertain(engine: WasmEngine, tmp_path: Path) -> None:
    data = component(engine, tmp_path, "whole").read_bytes()
    cut = tmp_path / "cut.wasm"
    cut.write_bytes(data[:len(data) // 2])
    module = tmp_path / "module.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm("(module)")))
    text = tmp_path / "text.wat"
    text.write_text("(component)")
    for path in (cut, module, text, tmp_path / "missing.wasm"):
        assert not certainly_sync(path, P3_HANDLER), path.name
