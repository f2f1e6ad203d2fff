"""tauon's own component runtime on small hand-written components: instantiation, host calls both ways,
resources, and the bounds checks that trap an untrusted guest instead of raising into the host.

The host side is a test `HostLinks` (a few Python functions), the boundary the runtime calls through;
the components are real, compiled and run by wasmtime.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from tauon.wasm.component.guest import Trap
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.guest import RuntimeGuestFunc, instantiate
from tauon.wasm.runtime.instance import HostImpl, RuntimeComponent
from tauon.wasm.runtime.load import load_component
from tauon.wasm.runtime.plan import HostFunc

LIBC = """
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
"""

# A component importing `test:host/api` (a string function and a resource) and exporting functions
# that call it correctly and incorrectly.
COMPONENT = """(component
  (import "test:host/api" (instance $h
    (export "thing" (type $thing (sub resource)))
    (export "upper" (func (param "s" string) (result string)))
    (export "make" (func (param "n" u32) (result (own $thing))))
    (export "value" (func (param "t" (borrow $thing)) (result u32)))
    (export "fail" (func))
  ))
  (alias export $h "thing" (type $thing))
""" + LIBC + """
  (alias export $h "upper" (func $upper))
  (alias export $h "make" (func $make))
  (alias export $h "value" (func $value))
  (alias export $h "fail" (func $fail))
  (core func $upper_l (canon lower (func $upper) (memory $mem) (realloc $realloc)))
  (core func $make_l (canon lower (func $make)))
  (core func $value_l (canon lower (func $value)))
  (core func $fail_l (canon lower (func $fail)))
  (core func $drop (canon resource.drop $thing))
  (core module $m
    (import "libc" "memory" (memory 1))
    (import "host" "upper" (func $upper (param i32 i32 i32)))
    (import "host" "make" (func $make (param i32) (result i32)))
    (import "host" "value" (func $value (param i32) (result i32)))
    (import "host" "fail" (func $fail))
    (import "host" "drop" (func $drop (param i32)))
    (func (export "shout") (param i32 i32) (result i32)
      (call $upper (local.get 0) (local.get 1) (i32.const 2000)) (i32.const 2000))
    (func (export "out-of-bounds") (result i32)
      (call $upper (i32.const 0x7ffffff0) (i32.const 64) (i32.const 2000)) (i32.const 2000))
    (func (export "bad-utf8") (result i32)
      (i32.store8 (i32.const 100) (i32.const 0xff))
      (call $upper (i32.const 100) (i32.const 1) (i32.const 2000)) (i32.const 2000))
    (func (export "roundtrip") (param i32) (result i32) (local $h i32)
      (local.set $h (call $make (local.get 0)))
      (call $value (local.get $h))
      (call $drop (local.get $h)))
    (func (export "bad-handle") (result i32) (call $value (i32.const 77)))
    (func (export "host-fails") (call $fail))
    (func (export "unreachable") unreachable))
  (core instance $i (instantiate $m (with "libc" (instance $libc)) (with "host" (instance
    (export "upper" (func $upper_l)) (export "make" (func $make_l)) (export "value" (func $value_l))
    (export "fail" (func $fail_l)) (export "drop" (func $drop))))))
  (func (export "shout") (param "s" string) (result string)
    (canon lift (core func $i "shout") (memory $mem) (realloc $realloc)))
  (func (export "out-of-bounds") (result string) (canon lift (core func $i "out-of-bounds") (memory $mem)))
  (func (export "bad-utf8") (result string) (canon lift (core func $i "bad-utf8") (memory $mem)))
  (func (export "roundtrip") (param "n" u32) (result u32) (canon lift (core func $i "roundtrip")))
  (func (export "bad-handle") (result u32) (canon lift (core func $i "bad-handle")))
  (func (export "host-fails") (canon lift (core func $i "host-fails")))
  (func (export "unreachable") (canon lift (core func $i "unreachable")))
)"""


class Host:
    """The host side of `test:host/api`: things are reps into `self.things`."""

    def __init__(self) -> None:
        self.things: dict[int, int] = {}
        self.dropped: list[int] = []

    def impl(self, func: HostFunc) -> HostImpl:
        impls: dict[str, HostImpl] = {"upper": lambda state, s: s.upper(), "make": self._make,
                                      "value": lambda state, rep: self.things[rep],
                                      "fail": self._fail}
        return impls[func.func]

    def _make(self, state: Any, n: int) -> int:
        rep = len(self.things) + 1
        self.things[rep] = n * 2
        return rep

    def _fail(self, state: Any) -> None:
        raise RuntimeError("the host says no")

    def drop(self, state: Any, rep: int) -> None:
        self.dropped.append(rep)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmEngine]:
    engine = WasmEngine(tmp_path_factory.mktemp("cache"))
    yield engine


def load(engine: WasmEngine, tmp_path: Path, text: str, host: Host) -> RuntimeComponent:
    path = tmp_path / "c.wasm"
    path.write_bytes(wasmtime.wat2wasm(text))
    wasmtime.component.Component(engine.engine, path.read_bytes())  # wasmtime validates it first
    return load_component(engine, path, host)


def call(engine: WasmEngine, component: RuntimeComponent, name: str, *args: Any) -> Any:
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    instance = instantiate(component, store, state=object())
    return RuntimeGuestFunc(component, None, name).call(store, instance, instance.state, *args)


def test_strings_cross_both_ways(engine: WasmEngine, tmp_path: Path) -> None:
    component = load(engine, tmp_path, COMPONENT, Host())
    assert call(engine, component, "shout", "héllo wörld") == "HÉLLO WÖRLD"
    assert call(engine, component, "shout", "") == ""


def test_host_resources_are_handles_in_the_guest_and_dropped_through_the_host(engine: WasmEngine,
                                                                             tmp_path: Path) -> None:
    host = Host()
    component = load(engine, tmp_path, COMPONENT, host)
    assert call(engine, component, "roundtrip", 21) == 42
    assert host.dropped == [1]


@pytest.mark.parametrize("name, message", [
    ("out-of-bounds", "outside linear memory"),
    ("bad-utf8", "invalid utf-8"),
    ("bad-handle", "handle index 77"),
])
def test_bad_guest_data_traps_the_guest(engine: WasmEngine, tmp_path: Path, name: str, message: str) -> None:
    component = load(engine, tmp_path, COMPONENT, Host())
    with pytest.raises(Trap) as info:
        call(engine, component, name)
    assert info.value.kind == "trap"
    assert message in str(info.value) and "test:host/api#" in str(info.value)


def test_a_failing_host_function_is_a_host_trap_with_its_exception(engine: WasmEngine,
                                                                   tmp_path: Path) -> None:
    component = load(engine, tmp_path, COMPONENT, Host())
    with pytest.raises(Trap) as info:
        call(engine, component, "host-fails")
    assert info.value.kind == "host"
    assert isinstance(info.value.host_error, RuntimeError)
    assert "the host says no" in str(info.value)


def test_a_guest_trap_is_a_trap(engine: WasmEngine, tmp_path: Path) -> None:
    component = load(engine, tmp_path, COMPONENT, Host())
    with pytest.raises(Trap) as info:
        call(engine, component, "unreachable")
    assert info.value.kind == "trap"
    assert "unreachable" in str(info.value)


def test_a_missing_export_is_a_lookup_error(engine: WasmEngine, tmp_path: Path) -> None:
    component = load(engine, tmp_path, COMPONENT, Host())
    with pytest.raises(LookupError, match="does not export"):
        RuntimeGuestFunc(component, "wasi:http/incoming-handler@0.2.0", "handle")


# One core module instantiated twice with different imports (so the wiring compiles it twice, renamed
# for each), and a module whose start function runs while it is instantiated.
TWICE = """(component
  (core module $one
    (global $g (export "n") (mut i32) (i32.const 0))
    (func $start (global.set $g (i32.const 41)))
    (start $start)
    (func (export "unused") (result i32) (i32.const 5)))
  (core module $two (global (export "n") (mut i32) (i32.const 7)))
  (core module $m (import "src" "n" (global $n (mut i32)))
    (func (export "get") (result i32) (i32.add (global.get $n) (i32.const 1))))
  (core instance $one (instantiate $one))
  (core instance $two (instantiate $two))
  (core instance $a (instantiate $m (with "src" (instance $one))))
  (core instance $b (instantiate $m (with "src" (instance (export "n" (global $two "n"))))))
  (func (export "first") (result u32) (canon lift (core func $a "get")))
  (func (export "second") (result u32) (canon lift (core func $b "get")))
)"""


def test_a_module_instantiated_twice_with_different_imports(engine: WasmEngine, tmp_path: Path) -> None:
    component = load(engine, tmp_path, TWICE, Host())
    assert len(component.modules) == 4  # $one, $two, and $m renamed once per import list
    assert [step.starts for step in component.wiring.steps] == [True, False, False, False]
    for _ in range(2):  # a second Store links the same way
        assert call(engine, component, "first") == 42
        assert call(engine, component, "second") == 8


def test_an_instance_and_its_store_go_without_the_cyclic_gc(engine: WasmEngine, tmp_path: Path) -> None:
    """Each request's Store holds a pooling slot: it must go when the request drops it, not when the
    cyclic GC next runs (the handle table's destructors once referred back to the instance)."""
    component = load(engine, tmp_path, COMPONENT, Host())
    gc.collect()
    gc.disable()
    try:
        store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
        instance = instantiate(component, store, state=object())
        assert RuntimeGuestFunc(component, None, "roundtrip").call(store, instance, None, 3) == 6
        assert RuntimeGuestFunc(component, None, "shout").call(store, instance, None, "a") == "A"
        gone = weakref.ref(instance)
        del instance, store
        assert gone() is None
    finally:
        gc.enable()
