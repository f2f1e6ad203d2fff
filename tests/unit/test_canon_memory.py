"""Guest memories: bounds checks and the wasmtime implementation on a real core module's memory, which
grows from inside the guest (its own `cabi_realloc` calls memory.grow) while values are lowered."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import wasmtime

from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.memory import BytesMemory, CoreRealloc, WasmtimeMemory
from tauon.wasm.canon.types import ListType, Prim, TupleType

# A bump allocator that grows memory by whole pages when a block does not fit, as a guest's would.
GUEST = """
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 16))
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
        (result i32) (local $ptr i32) (local $end i32)
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


@pytest.fixture
def guest() -> tuple[wasmtime.Store, wasmtime.Memory, Any]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, GUEST), [])
    exports = instance.exports(store)
    memory = exports["memory"]
    realloc = exports["cabi_realloc"]
    assert isinstance(memory, wasmtime.Memory) and isinstance(realloc, wasmtime.Func)
    return store, memory, realloc


def test_wasmtime_memory_reads_and_writes_in_place(
        guest: tuple[wasmtime.Store, wasmtime.Memory, Any]) -> None:
    store, memory, _ = guest
    mem = WasmtimeMemory(memory, store)
    assert mem.size() == 65536
    mem.write(100, b"hello")
    mem.write(200, bytearray(b"xy"))
    mem.write(300, memoryview(b"abcdef")[2:4])
    assert memory.read(store, 100, 105) == b"hello"
    assert (mem.read(200, 2), mem.read(300, 2)) == (b"xy", b"cd")
    mem.pack(struct.Struct("<IQ"), 8, 7, 1 << 40)
    assert mem.unpack(struct.Struct("<IQ"), 8) == (7, 1 << 40)
    with pytest.raises(CanonTrap, match="0xfffe \\+ 4 is outside linear memory \\(65536 bytes\\)"):
        mem.load_u32(65534)
    with pytest.raises(CanonTrap, match="outside linear memory"):
        mem.write(65535, b"ab")


def test_lowering_a_mebibyte_grows_the_guest_memory_and_lifts_back(
        guest: tuple[wasmtime.Store, wasmtime.Memory, Any]) -> None:
    store, memory, realloc = guest
    mem = WasmtimeMemory(memory, store)
    cx = CallContext(mem, CoreRealloc(realloc, store))
    body = bytes(range(256)) * 4096
    t = TupleType((ListType(Prim("u8")), ListType(Prim("string")), ListType(Prim("u32"))))
    value = (body, ["a", "\u00e9t\u00e9"] * 1000, list(range(70000)))
    out: list[Any] = []
    compile_lowerer(t).lower_flat(cx, value, out)
    assert mem.size() > (1 << 20) + 70000 * 4  # grown by the guest, seen after the realloc calls
    assert compile_lifter(t).lift_flat(cx, iter(out)) == value


def test_scalar_loads_and_stores_are_little_endian() -> None:
    mem = BytesMemory(16)
    mem.store_int(0, 2, -2, signed=True)
    mem.store_int(2, 4, 0x01020304)
    mem.store_float(8, 8, -1.5)
    assert bytes(mem.data[:6]) == b"\xfe\xff\x04\x03\x02\x01"
    assert (mem.load_int(0, 2), mem.load_int(0, 2, signed=True)) == (0xFFFE, -2)
    assert mem.load_int(2, 4) == 0x01020304
    assert (mem.load_float(8, 8), mem.load_u32(2)) == (-1.5, 0x01020304)
    mem.store_float(4, 4, 0.5)
    assert mem.load_float(4, 4) == 0.5
    with pytest.raises(CanonTrap, match="0xc \\+ 8 is outside linear memory \\(16 bytes\\)"):
        mem.load_int(12, 8)


def test_bytes_memory_grows_and_checks() -> None:
    mem = BytesMemory(8)
    with pytest.raises(CanonTrap, match="0x6 \\+ 4"):
        mem.write(6, b"abcd")
    mem.grow(8)
    mem.write(6, b"abcd")
    assert mem.read(6, 4) == b"abcd" and mem.size() == 16
    mem.check(0, 16, "whole")
    with pytest.raises(CanonTrap, match="whole 0x0 \\+ 17"):
        mem.check(0, 17, "whole")


def test_core_realloc_calls_the_guest_and_reports_its_traps(
        guest: tuple[wasmtime.Store, wasmtime.Memory, Any]) -> None:
    store, _, realloc = guest
    fast = CoreRealloc(realloc, store)
    assert fast(0, 0, 8, 100) == 16
    assert realloc(store, 0, 0, 1, 0) == 116  # the same guest heap, moved on by the fast call
    engine = store.engine
    trapping = wasmtime.Instance(store, wasmtime.Module(engine, """(module (func (export "r")
        (param i32 i32 i32 i32) (result i32) unreachable))"""), []).exports(store)["r"]
    assert isinstance(trapping, wasmtime.Func)
    with pytest.raises(wasmtime.Trap, match="unreachable"):
        CoreRealloc(trapping, store)(0, 0, 1, 1)
    with pytest.raises(wasmtime.WasmtimeError, match="must have type"):
        CoreRealloc(wasmtime.Func(store, wasmtime.FuncType([], []), lambda: None), store)
