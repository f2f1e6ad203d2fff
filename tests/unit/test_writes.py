"""writes.py: the routing module sends even writes to the string import and odd ones to the list import;
real components gain the import (and still compile) when their layout is one of wit-component's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from tauon.wasm.component.writes import WRITES_IMPORT, _trampolines, route_writes

ROOT = Path(__file__).resolve().parents[2]


def test_even_writes_go_to_the_string_import_and_odd_ones_to_the_list_import() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, _trampolines([3]))
    calls: list[tuple[str, int, int]] = []
    ty = wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [])

    def recorder(kind: str) -> wasmtime.Func:
        return wasmtime.Func(store, ty, lambda h, ptr, n, ret: calls.append((kind, ptr, n)))

    table = wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(5, 5)), None)
    linker = wasmtime.Linker(engine)
    linker.define(store, "", "table", table)
    linker.define(store, "", "slow-0", recorder("list"))
    linker.define(store, "", "fast-0", recorder("string"))
    linker.instantiate(store, module)
    route = table.get(store, 3)  # the element segment put the router into slot 3
    assert isinstance(route, wasmtime.Func)
    empty = table.get(store, 2)  # and nowhere else
    assert not isinstance(empty, wasmtime.Func) and getattr(empty, "value", None) is None
    route(store, 7, 1024, 10, 0)
    route(store, 7, 1025, 10, 0)
    route(store, 7, 0, 0, 0)
    route(store, 7, 2048, -(2**31) + 4, 0)  # a length with the UTF-16 tag bit: never as a string
    assert calls == [("string", 1024, 10), ("list", 1025, 10), ("string", 0, 0), ("list", 2048, -(2**31) + 4)]


def imports(binary: bytes) -> set[str]:
    engine = wasmtime.Engine()
    return set(Component(engine, binary).type.imports(engine))


def test_wit_component_layouts_gain_the_import_and_others_are_left_alone() -> None:
    from support.components import component_path  # built by the project's scripts, cached

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    c = (ROOT / "tests/fixtures/wasi-http/build/handler.wasm").read_bytes()
    routed = route_writes(c)
    assert routed is not None
    assert imports(routed) == imports(c) | {WRITES_IMPORT}  # and wasmtime accepts it
    assert route_writes(routed) is None  # once is enough
    # Newer wit-component (componentize-py's) passes the fix-up one instance holding table and funcs.
    for name in ("js", "python-raw"):  # compiled by the daemon tests
        other = route_writes(component_path(name).read_bytes())
        assert other is not None and route_writes(other) is None, name
    assert route_writes(b"\0asm\x0d\0\x01\0") is None
    assert route_writes(b"garbage") is None
