"""routing.py: the routing module sends even writes to the string import and odd ones to the list import,
and reads to the string import first, then to the list import when that answers `closed`; real
components gain the import (and still compile) when their layout is one of wit-component's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from tauon.wasm.component.rewriting.contract import ASCII_SUFFIX, BYTES_IMPORT, READ_FUNCS, WRITE_FUNCS
from tauon.wasm.component.rewriting.routing import route_streams
from tauon.wasm.component.rewriting.routing_scan import Lowered as _Lowered
from tauon.wasm.component.rewriting.trampolines import keep_realloc_module
from tauon.wasm.component.rewriting.trampolines import trampolines as _trampolines

ROOT = Path(__file__).resolve().parents[2]


def test_even_writes_go_to_the_string_import_and_odd_ones_to_the_list_import() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, _trampolines([_Lowered(WRITE_FUNCS[0], 0, 0)], [3]))
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


def test_reads_take_the_list_import_only_when_the_string_import_answers_closed() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, _trampolines([_Lowered(WRITE_FUNCS[1], 0, 0),
                                                   _Lowered(READ_FUNCS[0], 1, 0, realloc=5)], [0, 1]))
    memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    table = wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(2, 2)), None)
    calls: list[str] = []
    answer = [b""]
    read_ty = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i64(), wasmtime.ValType.i32()], [])
    write_ty = wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [])

    def fast(handle: int, n: int, ret: int) -> None:
        calls.append("string")
        memory.write(store, answer[0], ret)

    linker = wasmtime.Linker(engine)
    linker.define(store, "", "table", table)
    linker.define(store, "", "memory", memory)
    linker.define(store, "", "slow-0", wasmtime.Func(store, write_ty, lambda *a: None))
    linker.define(store, "", "fast-0", wasmtime.Func(store, write_ty, lambda *a: None))
    linker.define(store, "", "slow-1", wasmtime.Func(store, read_ty, lambda h, n, ret: calls.append("list")))
    linker.define(store, "", "fast-1", wasmtime.Func(store, read_ty, fast))
    linker.instantiate(store, module)
    route = table.get(store, 1)
    assert isinstance(route, wasmtime.Func)
    # result<string, stream-error> at `ret`: discriminant at 0, then the payload at 4 (the string, or
    # the error variant: 0 last-operation-failed(error), 1 closed).
    for layout, expected in ((b"\0\0\0\0" + b"\x10\0\0\0" + b"\x05\0\0\0", ["string"]),  # ok: bytes
                             (b"\1\0\0\0" + b"\1\0\0\0", ["string", "list"]),              # closed
                             (b"\1\0\0\0" + b"\0\0\0\0" + b"\x07\0\0\0", ["string"])):  # failed
        calls.clear()
        answer[0] = layout
        route(store, 3, 4096, 64)
        assert calls == expected, layout


def test_the_read_allocator_keeps_a_shrunk_block_and_passes_everything_else_on() -> None:
    # wasmtime shrinks a latin1 string's block after writing it; some guests' allocators trap on that.
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    i32 = wasmtime.ValType.i32()
    calls: list[tuple[int, int, int, int]] = []

    def guest_realloc(old: int, old_size: int, align: int, size: int) -> int:
        calls.append((old, old_size, align, size))
        return 4096 + len(calls)

    linker = wasmtime.Linker(engine)
    linker.define(store, "", "realloc-0", wasmtime.Func(store, wasmtime.FuncType([i32] * 4, [i32]),
                                                      guest_realloc))
    module = wasmtime.Module(engine, keep_realloc_module())
    realloc = linker.instantiate(store, module).exports(store)["realloc-0"]
    assert isinstance(realloc, wasmtime.Func)
    assert realloc(store, 0, 0, 2, 300) == 4097              # a new block: the guest's
    assert realloc(store, 4097, 300, 2, 200) == 4097         # shrunk: the same block, guest not asked
    assert realloc(store, 4097, 300, 2, 300) == 4097         # the same size: likewise
    assert realloc(store, 4097, 300, 2, 600) == 4098         # grown: the guest's
    assert calls == [(0, 0, 2, 300), (4097, 300, 2, 600)]


def imports(binary: bytes) -> set[str]:
    engine = wasmtime.Engine()
    return set(Component(engine, binary).type.imports(engine))


def test_wit_component_layouts_gain_the_import_and_others_are_left_alone() -> None:
    from support.components import component_path  # built by the project's scripts, cached

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    c = (ROOT / "tests/fixtures/wasi-http/build/handler.wasm").read_bytes()
    routed = route_streams(c)
    assert routed is not None
    assert imports(routed) == imports(c) | {BYTES_IMPORT}  # and wasmtime accepts it
    assert route_streams(routed) is None  # once is enough
    # Newer wit-component (componentize-py's) passes the fix-up one instance holding table and funcs.
    for name in ("js", "python-raw"):  # compiled by the daemon tests
        original = component_path(name).read_bytes()
        other = route_streams(original)
        assert other is not None and route_streams(other) is None, name
        # Their reads are routed too (their allocators cannot take rewriting/reads.py's retyping); the JS
        # component's preview1 adapter reads into its caller's buffer, so those get the ASCII reads.
        added = other[len(original):]
        assert all(func.encode() in added for func in READ_FUNCS + WRITE_FUNCS), name
        assert ((READ_FUNCS[0] + ASCII_SUFFIX).encode() in added) == (name == "js"), name
        writes_only = route_streams(original, reads=False)
        assert writes_only is not None and READ_FUNCS[0].encode() not in writes_only[len(original):]
        assert imports(other) == imports(original) | {BYTES_IMPORT}, name
    assert route_streams(b"\0asm\x0d\0\x01\0") is None
    assert route_streams(b"garbage") is None
