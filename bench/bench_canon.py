"""Micro-benchmark of the canonical ABI's values layer (tauon.wasm.canon) against the C API codec
(tauon.wasm.component.codec) converting the same Python values.

Usage: .venv/bin/python bench/bench_canon.py [--repeat 7]

Three values: a wasi:http-shaped header list (`list<tuple<string, list<u8>>>`, 24 headers), a 1 MiB
`list<u8>`, and a 1000-row `list<record{id: u64, name: string, score: f64, active: bool}>`; and two
host calls' conversions (`get-random-bytes(16)`, with a result through memory, and `now() -> u64`).

- canon: lowering writes the value into a real wasmtime linear memory, allocating with the guest's
  own `cabi_realloc` (a core wasm bump allocator, called through wasmtime as `CoreRealloc` does), then
  lifting reads it back; this is the whole host-side cost on the new runtime.
- codec: lowering builds the C API's `wasmtime_component_val_t` tree, lifting reads one back. On that
  path wasmtime then copies between the tree and linear memory in Rust, which is not counted: the
  codec figures are a lower bound of the current path's cost.

Prints the median CPU time per operation of each (process time, which a loaded machine disturbs less
than wall time) and the ratio canon/codec (< 1: canon is faster).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from tauon.wasm.canon.calls import ImportCall
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.memory import CoreRealloc, WasmtimeMemory
from tauon.wasm.canon.types import FuncType, ListType, Prim, RecordType, TupleType, ValType
from tauon.wasm.component import _capi, codec, codec_basic

GUEST = """
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 16))
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
        (result i32) (local $ptr i32) (local $end i32)
    ;; start over past 32 MiB (the benchmark's lowered values are dead by then), so memory stays bounded
    (if (i32.gt_u (global.get $top) (i32.const 0x2000000)) (then (global.set $top (i32.const 16))))
    (local.set $ptr (i32.and (i32.add (global.get $top) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (i32.sub (local.get $end)
        (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (if (local.get $old) (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (global.set $top (local.get $end))
    (local.get $ptr)))
"""

STRING, U8 = Prim("string"), Prim("u8")
HEADERS_T = ListType(TupleType((STRING, ListType(U8))))
BODY_T = ListType(U8)
ROWS_T = ListType(RecordType((("id", Prim("u64")), ("name", STRING), ("score", Prim("f64")),
                              ("active", Prim("bool")))))


def values() -> dict[str, tuple[ValType, Any, codec.Codec]]:
    headers = [(f"x-header-{i}", f"value number {i} " .encode() * 3) for i in range(20)]
    headers += [("content-type", b"application/json"), ("host", b"example.com"), ("accept", b"*/*"),
                ("user-agent", b"bench/1.0")]
    body = bytes(range(256)) * 4096
    rows = [{"id": i, "name": f"row-{i}", "score": i * 0.5, "active": i % 2 == 0} for i in range(1000)]
    string, byte_list = codec_basic.string(), codec_basic.byte_list()
    row_codec = codec._record([("id", codec_basic.scalar(_capi.KIND_U64, "u64")), ("name", string),
                               ("score", codec_basic.scalar(_capi.KIND_F64, "f64")),
                               ("active", codec_basic.boolean())])
    return {
        "headers (24)": (HEADERS_T, headers, codec._list(codec._tuple([string, byte_list]))),
        "body 1 MiB": (BODY_T, body, byte_list),
        "rows (1000)": (ROWS_T, rows, codec._list(row_codec)),
    }


def median_seconds(fn: Callable[[], None], repeat: int) -> float:
    fn()  # warm up
    runs = []
    for _ in range(repeat):
        n, start = 0, time.process_time()
        while True:
            fn()
            n += 1
            elapsed = time.process_time() - start
            if elapsed > 0.2:
                break
        runs.append(elapsed / n)
    return statistics.median(runs)


def canon_ops(t: ValType, value: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, wasmtime.Module(engine, GUEST), []).exports(store)
    memory, realloc = exports["memory"], exports["cabi_realloc"]
    assert isinstance(memory, wasmtime.Memory) and isinstance(realloc, wasmtime.Func)
    cx = CallContext(WasmtimeMemory(memory, store), CoreRealloc(realloc, store))
    lowerer, lifter = compile_lowerer(t), compile_lifter(t)
    flat: list[Any] = []

    def lower() -> None:
        flat.clear()
        lowerer.lower_flat(cx, value, flat)

    lower()
    assert lifter.lift_flat(cx, iter(flat)) == value

    def lift() -> None:
        lifter.lift_flat(cx, iter(flat))
    return lower, lift


def scalar_call_ops() -> tuple[Callable[[], None], Callable[[], None]]:
    """One host call's conversions without memory, `now() -> u64` (as wasi:clocks' monotonic clock)."""
    call = ImportCall(FuncType((), Prim("u64")))
    cx = CallContext()
    now = 123456789

    def canon_call() -> None:
        call.invoke(cx, lambda: now, ())

    u64 = codec_basic.scalar(_capi.KIND_U64, "u64")

    def codec_call() -> None:
        out = _capi.Val()
        u64.lower(0, now, out)
    return canon_call, codec_call


def call_ops() -> tuple[Callable[[], None], Callable[[], None]]:
    """One host call's conversions, `get-random-bytes(len: u64) -> list<u8>` answering 16 bytes:
    canon's ImportCall (lift the flat argument, run the host function, lower the result through the
    return pointer with the guest's realloc) against the codec lifting the argument from a C value and
    lowering the result into one."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, wasmtime.Module(engine, GUEST), []).exports(store)
    memory, realloc = exports["memory"], exports["cabi_realloc"]
    assert isinstance(memory, wasmtime.Memory) and isinstance(realloc, wasmtime.Func)
    cx = CallContext(WasmtimeMemory(memory, store), CoreRealloc(realloc, store))
    answer = bytes(16)
    call = ImportCall(FuncType((("len", Prim("u64")),), BODY_T))
    retptr = cx.allocate(4, 8, "return area")

    def canon_call() -> None:
        call.invoke(cx, lambda n: answer, [16, retptr])

    u64, byte_list = codec_basic.scalar(_capi.KIND_U64, "u64"), codec_basic.byte_list()
    arg = _capi.Val()
    u64.lower(0, 16, arg)

    def codec_call() -> None:
        n = u64.lift(0, arg)
        out = _capi.Val()
        byte_list.lower(0, answer[:n], out)
        _capi.val_delete(ctypes.byref(out))
    return canon_call, codec_call


def codec_ops(c: codec.Codec, value: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    lowered = _capi.Val()
    c.lower(0, value, lowered)
    assert c.lift(0, lowered) == value

    def lower() -> None:
        v = _capi.Val()
        c.lower(0, value, v)
        _capi.val_delete(ctypes.byref(v))

    def lift() -> None:
        c.lift(0, lowered)
    return lower, lift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'value':<14} {'op':<6} {'canon':>12} {'codec':>12} {'canon/codec':>12}")
    for name, (t, value, c) in values().items():
        ours, theirs = canon_ops(t, value), codec_ops(c, value)
        for op, mine, ref in (("lower", ours[0], theirs[0]), ("lift", ours[1], theirs[1])):
            a, b = median_seconds(mine, args.repeat), median_seconds(ref, args.repeat)
            print(f"{name:<14} {op:<6} {a * 1e6:>10.1f}us {b * 1e6:>10.1f}us {a / b:>12.3f}")
    for name, (mine, ref) in (("call bytes(16)", call_ops()), ("call now()", scalar_call_ops())):
        a, b = median_seconds(mine, args.repeat), median_seconds(ref, args.repeat)
        print(f"{name:<14} {'call':<6} {a * 1e6:>10.1f}us {b * 1e6:>10.1f}us {a / b:>12.3f}")


if __name__ == "__main__":
    main()
