"""Hostile but valid wasm for the compile sandbox's tests: built here, from WAT, in milliseconds.

- `compile_bomb`: one function whose br_table jumps to `targets` nested blocks that each yield
  `results` values. The module is O(results + targets) bytes, but wasmtime's translation passes every
  value along every edge, O(results x targets): 1000 x 1000 (16 KB) allocates past 4 GiB in ~3 s on
  this machine (test_compile_sandbox.py measures it), and a Rust allocation failure aborts the process.
- `slow_compile`: `loops` nested loops each updating its own local, all summed after the loops; each
  loop header gets a block parameter per enclosing loop's local, O(loops^2) work with memory growing
  slowly (5000 loops: tens of seconds at ~0.5 GB). A compile that is merely stuck.
- `looping_realloc`: the scripts/build-components-extra fixture whose cabi_realloc never returns when
  asked to shrink (tauon's allocator probe does that at compile time).
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

from support.components import extra_component_path

_START = '(func (export "_start") (drop (call $f (i64.const 0))))'


def compile_bomb(results: int = 1000, targets: int = 1000) -> bytes:
    ty = f"(type $t (func (result {' '.join(['i64'] * results)})))"
    opens = " ".join(f"(block $b{j} (type $t)" for j in range(targets))
    values = " ".join(["(local.get 0)"] * results)
    table = " ".join(f"$b{j}" for j in range(targets))
    closes = ")" * targets
    drops = " ".join(["drop"] * results)
    return bytes(wasmtime.wat2wasm(
        f"(module {ty} (func $f (param i64) (result i64) {opens} {values} "
        f"(br_table {table} (i32.wrap_i64 (local.get 0))) {closes} {drops} (local.get 0)) {_START})"))


def slow_compile(loops: int = 5000) -> bytes:
    body = " ".join(f"(loop $l{j} (local.set {j + 1} (i64.add (local.get {j + 1}) (local.get 0))) "
                    f"(br_if $l{j} (i64.eqz (local.get {j + 1})))" for j in range(loops))
    sums = " ".join(f"(local.set 0 (i64.add (local.get 0) (local.get {j + 1})))" for j in range(loops))
    locals_ = " ".join(["i64"] * loops)
    return bytes(wasmtime.wat2wasm(
        f"(module (func $f (param i64) (result i64) (local {locals_}) {body} {')' * loops} {sums} "
        f"(local.get 0)) {_START})"))


def looping_realloc() -> Path:
    return extra_component_path("looping-realloc")
