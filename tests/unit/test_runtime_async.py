"""The component-model async ABI in tauon's component runtime, on a small hand-written component run by
real wasmtime: callback-form async exports (the event loop, task.return, context.*), async-lowered host
calls that finish at once or later (subtasks), waitable sets, and streams both ways with backpressure;
and the traps the specification asks for when the guest breaks its rules.

The host side is a test `HostLinks` (Python functions and threads), the boundary the runtime calls
through.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.asynchost import ThreadedHost, load_wat
from tauon.wasm.canon.types import Prim
from tauon.wasm.component.guest import Trap
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.async_host import FutureReader, StreamReader, future
from tauon.wasm.runtime.guest import instantiate
from tauon.wasm.runtime.instance import HostImpl, RuntimeComponent
from tauon.wasm.runtime.plan import HostFunc
from tauon.wasm.runtime.tasks import AsyncGuestFunc, release

U32 = Prim("u32")

COMPONENT = r"""(component
  (type $st (stream u8))
  (type $fu (future u32))
  (import "test:host/api" (instance $h
    (export "quick" (func async (param "n" u32) (result u32)))
    (export "slow" (func async (param "n" u32) (result u32)))
    (export "source" (func (param "n" u32) (result (stream u8))))
    (export "sink" (func (param "s" (stream u8))))
    (export "take-future" (func (param "f" (future u32))))
    (export "give-future" (func (result (future u32))))
  ))
  (core module $libc
    (memory (export "memory") 8)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 60000)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (alias export $h "quick" (func $quick))
  (alias export $h "slow" (func $slow))
  (alias export $h "source" (func $source))
  (alias export $h "sink" (func $sink))
  (alias export $h "take-future" (func $take_future))
  (alias export $h "give-future" (func $give_future))
  (core func $quick_l (canon lower (func $quick) async (memory $mem)))
  (core func $slow_l (canon lower (func $slow) async (memory $mem)))
  (core func $source_l (canon lower (func $source)))
  (core func $sink_l (canon lower (func $sink)))
  (core func $take_future_l (canon lower (func $take_future)))
  (core func $give_future_l (canon lower (func $give_future)))
  (core func $fn (canon future.new $fu))
  (core func $fr (canon future.read $fu async (memory $mem)))
  (core func $fw (canon future.write $fu async (memory $mem)))
  (core func $fdr (canon future.drop-readable $fu))
  (core func $fdw (canon future.drop-writable $fu))
  (core func $bpd (canon backpressure.dec))
  (core func $tr (canon task.return (result u32)))
  (core func $sn (canon stream.new $st))
  (core func $sr (canon stream.read $st async (memory $mem)))
  (core func $sw (canon stream.write $st async (memory $mem)))
  (core func $sdr (canon stream.drop-readable $st))
  (core func $sdw (canon stream.drop-writable $st))
  (core func $wsn (canon waitable-set.new))
  (core func $wsd (canon waitable-set.drop))
  (core func $wj (canon waitable.join))
  (core func $std (canon subtask.drop))
  (core func $cg (canon context.get i32 0))
  (core func $cs (canon context.set i32 0))
  (core module $m
    (import "libc" "memory" (memory 8))
    (import "host" "quick" (func $quick (param i32 i32) (result i32)))
    (import "host" "slow" (func $slow (param i32 i32) (result i32)))
    (import "host" "source" (func $source (param i32) (result i32)))
    (import "host" "sink" (func $sink (param i32)))
    (import "host" "tr" (func $tr (param i32)))
    (import "host" "sn" (func $sn (result i64)))
    (import "host" "sr" (func $sr (param i32 i32 i32) (result i32)))
    (import "host" "sw" (func $sw (param i32 i32 i32) (result i32)))
    (import "host" "sdr" (func $sdr (param i32)))
    (import "host" "sdw" (func $sdw (param i32)))
    (import "host" "wsn" (func $wsn (result i32)))
    (import "host" "wsd" (func $wsd (param i32)))
    (import "host" "wj" (func $wj (param i32 i32)))
    (import "host" "std" (func $std (param i32)))
    (import "host" "cg" (func $cg (result i32)))
    (import "host" "cs" (func $cs (param i32)))
    (import "host" "take-future" (func $take_future (param i32)))
    (import "host" "give-future" (func $give_future (result i32)))
    (import "host" "fn" (func $fn (result i64)))
    (import "host" "fr" (func $fr (param i32 i32) (result i32)))
    (import "host" "fw" (func $fw (param i32 i32) (result i32)))
    (import "host" "fdr" (func $fdr (param i32)))
    (import "host" "fdw" (func $fdw (param i32)))
    (import "host" "bpd" (func $bpd))
    ;; globals of the stream tasks: the waitable set, the stream end, bytes so far, bytes to go
    (global $set (mut i32) (i32.const 0))
    (global $end (mut i32) (i32.const 0))
    (global $total (mut i32) (i32.const 0))
    (global $left (mut i32) (i32.const 0))

    ;; double: an async host call that returns at once (RETURNED, no subtask)
    (func (export "double") (param i32) (result i32)
      (if (i32.ne (call $quick (local.get 0) (i32.const 100)) (i32.const 2)) (then unreachable))
      (call $tr (i32.load (i32.const 100)))
      (i32.const 0))
    (func (export "no-event") (param i32 i32 i32) (result i32) unreachable)

    ;; wait-slow: a subtask, waited for in a waitable set kept in the task's context
    (func (export "wait-slow") (param i32) (result i32) (local $r i32) (local $s i32)
      (local.set $r (call $slow (local.get 0) (i32.const 200)))
      (if (i32.ne (i32.and (local.get $r) (i32.const 15)) (i32.const 1)) (then unreachable))
      (local.set $s (call $wsn))
      (call $wj (i32.shr_u (local.get $r) (i32.const 4)) (local.get $s))
      (call $cs (local.get $s))
      (i32.or (i32.const 2) (i32.shl (local.get $s) (i32.const 4))))
    (func (export "wait-slow-cb") (param $ev i32) (param $i i32) (param $p i32) (result i32)
      (if (i32.ne (local.get $ev) (i32.const 1)) (then unreachable))
      (if (i32.ne (local.get $p) (i32.const 2)) (then unreachable))
      (call $std (local.get $i))
      (call $tr (i32.load (i32.const 200)))
      (call $wsd (call $cg))
      (i32.const 0))

    ;; count: read a host stream of n bytes to its end, 1000 bytes at a time; the number of bytes
    (func $count-step (result i32) (local $r i32)
      (loop $again
        (local.set $r (call $sr (global.get $end) (i32.const 1024) (i32.const 1000)))
        (if (i32.eq (local.get $r) (i32.const -1)) (then
          (return (i32.or (i32.const 2) (i32.shl (global.get $set) (i32.const 4))))))
        (global.set $total (i32.add (global.get $total) (i32.shr_u (local.get $r) (i32.const 4))))
        (br_if $again (i32.eqz (i32.and (local.get $r) (i32.const 15)))))
      (call $sdr (global.get $end))
      (call $tr (global.get $total))
      (i32.const 0))
    (func (export "count") (param i32) (result i32)
      (global.set $total (i32.const 0))
      (global.set $end (call $source (local.get 0)))
      (global.set $set (call $wsn))
      (call $wj (global.get $end) (global.get $set))
      (call $count-step))
    (func (export "count-cb") (param $ev i32) (param $i i32) (param $p i32) (result i32)
      (if (i32.ne (local.get $ev) (i32.const 2)) (then unreachable))
      (global.set $total (i32.add (global.get $total) (i32.shr_u (local.get $p) (i32.const 4))))
      (if (i32.eq (i32.and (local.get $p) (i32.const 15)) (i32.const 1)) (then
        (call $wj (global.get $end) (i32.const 0))
        (call $sdr (global.get $end))
        (call $tr (global.get $total))
        (return (i32.const 0))))
      (call $count-step))

    ;; produce: write n bytes (the byte i is i mod 251) to a stream the host reads
    (func $produce-step (result i32) (local $r i32) (local $n i32)
      (loop $again
        (if (i32.eqz (global.get $left)) (then
          (call $wj (global.get $end) (i32.const 0))
          (call $sdw (global.get $end))
          (call $tr (global.get $total))
          (return (i32.const 0))))
        (local.set $n (global.get $left))
        (if (i32.gt_u (local.get $n) (i32.const 30000)) (then (local.set $n (i32.const 30000))))
        (local.set $r (call $sw (global.get $end)
          (i32.add (i32.const 524288) (i32.rem_u (global.get $total) (i32.const 251))) (local.get $n)))
        (if (i32.eq (local.get $r) (i32.const -1)) (then
          (return (i32.or (i32.const 2) (i32.shl (global.get $set) (i32.const 4))))))
        (if (i32.ne (i32.and (local.get $r) (i32.const 15)) (i32.const 0)) (then unreachable))
        (global.set $total (i32.add (global.get $total) (i32.shr_u (local.get $r) (i32.const 4))))
        (global.set $left (i32.sub (global.get $left) (i32.shr_u (local.get $r) (i32.const 4))))
        (br $again))
      unreachable)
    (func (export "produce") (param $n i32) (result i32) (local $pair i64) (local $i i32)
      (local.set $pair (call $sn))
      (global.set $end (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      (call $sink (i32.wrap_i64 (local.get $pair)))
      ;; the buffer is in memory grown after the runtime last looked at it: it must see the growth
      (if (i32.ne (call $sw (global.get $end) (i32.const 0) (i32.const 0)) (i32.const 0)) (then unreachable))
      (drop (memory.grow (i32.const 2)))
      (loop $fill  ;; 524288.. holds 0,1,..,250,0,1,.. for 31 KB: any window starting at k mod 251
        (i32.store8 (i32.add (i32.const 524288) (local.get $i)) (i32.rem_u (local.get $i) (i32.const 251)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $fill (i32.lt_u (local.get $i) (i32.const 31000))))
      (global.set $total (i32.const 0))
      (global.set $left (local.get $n))
      (global.set $set (call $wsn))
      (call $wj (global.get $end) (global.get $set))
      (call $produce-step))
    (func (export "produce-cb") (param $ev i32) (param $i i32) (param $p i32) (result i32)
      (if (i32.ne (local.get $ev) (i32.const 3)) (then unreachable))
      (global.set $total (i32.add (global.get $total) (i32.shr_u (local.get $p) (i32.const 4))))
      (global.set $left (i32.sub (global.get $left) (i32.shr_u (local.get $p) (i32.const 4))))
      (call $produce-step))

    ;; future-out: a future the guest writes and the host reads
    (func (export "future-out") (param $v i32) (result i32) (local $pair i64) (local $w i32)
      (local.set $pair (call $fn))
      (local.set $w (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      (call $take_future (i32.wrap_i64 (local.get $pair)))
      (i32.store (i32.const 300) (local.get $v))
      (if (i32.ne (call $fw (local.get $w) (i32.const 300)) (i32.const 0)) (then unreachable))
      (call $fdw (local.get $w))
      (call $tr (i32.const 0))
      (i32.const 0))
    ;; future-in: a future the host writes later, read by the guest through a waitable set
    (func (export "future-in") (param i32) (result i32) (local $r i32) (local $s i32)
      (global.set $end (call $give_future))
      (local.set $r (call $fr (global.get $end) (i32.const 400)))
      (if (i32.ne (local.get $r) (i32.const -1)) (then unreachable))
      (local.set $s (call $wsn))
      (call $wj (global.get $end) (local.get $s))
      (i32.or (i32.const 2) (i32.shl (local.get $s) (i32.const 4))))
    (func (export "future-in-cb") (param $ev i32) (param $i i32) (param $p i32) (result i32)
      (if (i32.ne (local.get $ev) (i32.const 4)) (then unreachable))
      (if (i32.ne (local.get $i) (global.get $end)) (then unreachable))
      (if (i32.ne (local.get $p) (i32.const 0)) (then unreachable))
      (call $wj (global.get $end) (i32.const 0))
      (call $fdr (global.get $end))
      (call $tr (i32.load (i32.const 400)))
      (i32.const 0))

    ;; leave-pending: returns while a read waits in a waitable set (the instance goes with them)
    (func (export "leave-pending") (param i32) (result i32) (local $pair i64) (local $r i32)
      (local.set $pair (call $fn))
      (local.set $r (i32.wrap_i64 (local.get $pair)))
      (if (i32.ne (call $fr (local.get $r) (i32.const 400)) (i32.const -1)) (then unreachable))
      (call $wj (local.get $r) (call $wsn))
      (call $tr (i32.const 5))
      (i32.const 0))

    ;; rule breakers
    (func (export "drop-unwritten") (param i32) (result i32) (local $pair i64)
      (local.set $pair (call $fn))
      (call $fdw (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      (i32.const 0))
    (func (export "bp-under") (param i32) (result i32) (call $bpd) (i32.const 0))
    (func (export "twice") (param i32) (result i32)
      (call $tr (i32.const 1)) (call $tr (i32.const 2)) (i32.const 0))
    (func (export "never") (param i32) (result i32) (i32.const 0))
    (func (export "bad-set") (param i32) (result i32) (i32.const 0x632))
    (func (export "bad-code") (param i32) (result i32) (i32.const 7))
    (func (export "drop-busy") (param i32) (result i32) (local $r i32)
      (local.set $r (call $slow (local.get 0) (i32.const 200)))
      (call $std (i32.shr_u (local.get $r) (i32.const 4)))
      (i32.const 0))
    (func (export "read-writable") (param i32) (result i32) (local $pair i64)
      (local.set $pair (call $sn))
      (drop (call $sr (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32)))
                      (i32.const 0) (i32.const 1)))
      (i32.const 0))
    (func (export "read-oob") (param i32) (result i32) (local $pair i64)
      (local.set $pair (call $sn))
      (drop (call $sr (i32.wrap_i64 (local.get $pair)) (i32.const 0x7fff0000) (i32.const 0x10000)))
      (i32.const 0)))
  (core instance $i (instantiate $m (with "libc" (instance $libc)) (with "host" (instance
    (export "quick" (func $quick_l)) (export "slow" (func $slow_l)) (export "source" (func $source_l))
    (export "sink" (func $sink_l)) (export "tr" (func $tr)) (export "sn" (func $sn))
    (export "sr" (func $sr)) (export "sw" (func $sw)) (export "sdr" (func $sdr)) (export "sdw" (func $sdw))
    (export "wsn" (func $wsn)) (export "wsd" (func $wsd)) (export "wj" (func $wj))
    (export "std" (func $std)) (export "cg" (func $cg)) (export "cs" (func $cs))
    (export "take-future" (func $take_future_l)) (export "give-future" (func $give_future_l))
    (export "fn" (func $fn)) (export "fr" (func $fr)) (export "fw" (func $fw)) (export "fdr" (func $fdr))
    (export "fdw" (func $fdw)) (export "bpd" (func $bpd))))))
  (func (export "double") async (param "n" u32) (result u32)
    (canon lift (core func $i "double") async (callback (core func $i "no-event"))))
  (func (export "wait-slow") async (param "n" u32) (result u32)
    (canon lift (core func $i "wait-slow") async (callback (core func $i "wait-slow-cb"))))
  (func (export "count") async (param "n" u32) (result u32)
    (canon lift (core func $i "count") async (callback (core func $i "count-cb"))))
  (func (export "produce") async (param "n" u32) (result u32)
    (canon lift (core func $i "produce") async (callback (core func $i "produce-cb"))))
  (func (export "future-out") async (param "n" u32) (result u32)
    (canon lift (core func $i "future-out") async (callback (core func $i "no-event"))))
  (func (export "future-in") async (param "n" u32) (result u32)
    (canon lift (core func $i "future-in") async (callback (core func $i "future-in-cb"))))
  (func (export "leave-pending") async (param "n" u32) (result u32)
    (canon lift (core func $i "leave-pending") async (callback (core func $i "no-event"))))
  (func (export "drop-unwritten") async (param "n" u32) (result u32)
    (canon lift (core func $i "drop-unwritten") async (callback (core func $i "no-event"))))
  (func (export "bp-under") async (param "n" u32) (result u32)
    (canon lift (core func $i "bp-under") async (callback (core func $i "no-event"))))
  (func (export "twice") async (param "n" u32) (result u32)
    (canon lift (core func $i "twice") async (callback (core func $i "no-event"))))
  (func (export "never") async (param "n" u32) (result u32)
    (canon lift (core func $i "never") async (callback (core func $i "no-event"))))
  (func (export "bad-set") async (param "n" u32) (result u32)
    (canon lift (core func $i "bad-set") async (callback (core func $i "no-event"))))
  (func (export "bad-code") async (param "n" u32) (result u32)
    (canon lift (core func $i "bad-code") async (callback (core func $i "no-event"))))
  (func (export "drop-busy") async (param "n" u32) (result u32)
    (canon lift (core func $i "drop-busy") async (callback (core func $i "no-event"))))
  (func (export "read-writable") async (param "n" u32) (result u32)
    (canon lift (core func $i "read-writable") async (callback (core func $i "no-event"))))
  (func (export "read-oob") async (param "n" u32) (result u32)
    (canon lift (core func $i "read-oob") async (callback (core func $i "no-event"))))
)"""


class Host(ThreadedHost):
    """`test:host/api`: `slow` completes on another thread after a short delay; `source` writes n
    bytes from a thread; `sink` reads a guest stream on a thread, slowly at first (backpressure)."""

    def __init__(self) -> None:
        super().__init__()
        self.received = b""
        self.sink_done = threading.Event()
        self.future_value: Any = None

    def impl(self, func: HostFunc) -> HostImpl:
        impls: dict[str, HostImpl] = {"quick": self._quick, "slow": self._slow,
                                      "source": self._source, "sink": self._sink,
                                      "take-future": self._take_future, "give-future": self._give_future}
        return impls[func.func]

    def _sink(self, state: Any, reader: StreamReader) -> None:
        def consume() -> None:
            time.sleep(0.1)  # let the guest fill the pipe and wait
            self.received = reader.read_all(timeout=30)
            self.sink_done.set()
        self._spawn(consume)

    def _take_future(self, state: Any, reader: FutureReader) -> None:
        def consume() -> None:  # the guest writes it after this call returns
            self.future_value = reader.read(timeout=30)
        self._spawn(consume)

    def _give_future(self, state: Any) -> FutureReader:
        reader, writer = future(U32)

        def later() -> None:
            time.sleep(0.05)
            writer.write(4242)
        self._spawn(later)
        return reader



@pytest.fixture
def host() -> Iterator[Host]:
    h = Host()
    yield h
    for t in h.threads:
        t.join(30)


@pytest.fixture
def component(engine: WasmEngine, tmp_path: Path, host: Host) -> RuntimeComponent:
    return load_wat(engine, tmp_path / "async.wasm", COMPONENT, host)


def run(engine: WasmEngine, component: RuntimeComponent, name: str, *args: Any,
        refs: list[weakref.ref[Any]] | None = None) -> list[Any]:
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    instance = instantiate(component, store, state=object())
    if refs is not None:
        refs.extend([weakref.ref(instance), weakref.ref(store)])
    returned: list[Any] = []
    try:
        AsyncGuestFunc(component, None, name).call(instance, instance.state, args, returned.append,
                                                   deadline=time.monotonic() + 30)
    finally:
        release(instance)
    return returned


def test_an_async_host_call_that_finishes_at_once_returns_eagerly(engine: WasmEngine,
                                                                 component: RuntimeComponent) -> None:
    assert run(engine, component, "double", 21) == [42]


def test_a_host_call_that_finishes_later_is_a_subtask_the_guest_waits_for(
        engine: WasmEngine, component: RuntimeComponent) -> None:
    assert run(engine, component, "wait-slow", 5) == [1005]


@pytest.mark.parametrize("n", [0, 1, 999, 100_000])
def test_the_guest_reads_a_host_stream_to_its_end(engine: WasmEngine, component: RuntimeComponent,
                                                  n: int) -> None:
    assert run(engine, component, "count", n) == [n]


def test_the_guest_writes_a_stream_the_host_reads_with_backpressure(
        engine: WasmEngine, component: RuntimeComponent, host: Host) -> None:
    n = 300_000  # far past the pipe's 64 KiB: the guest must wait for the slow reader
    assert run(engine, component, "produce", n) == [n]
    assert host.sink_done.wait(30)
    assert host.received == bytes(i % 251 for i in range(n))


def test_a_future_the_guest_writes_reaches_the_host(engine: WasmEngine, component: RuntimeComponent,
                                                    host: Host) -> None:
    assert run(engine, component, "future-out", 77) == [0]
    host.threads[0].join(30)
    assert host.future_value == 77


def test_a_future_the_host_writes_later_reaches_the_waiting_guest(engine: WasmEngine,
                                                                  component: RuntimeComponent) -> None:
    assert run(engine, component, "future-in", 0) == [4242]


@pytest.mark.parametrize(("name", "arg"), [("wait-slow", 1), ("count", 100_000), ("produce", 100_000),
                                           ("future-in", 0), ("future-out", 1), ("leave-pending", 0)])
def test_the_instance_and_store_are_freed_without_the_cyclic_collector(
        engine: WasmEngine, component: RuntimeComponent, host: Host, name: str, arg: int) -> None:
    """Subtasks, stream and future ends and waitable sets refer back to the instance's handle table:
    release() must break those cycles, or the Store (and its pool slot) waits for a full collection."""
    refs: list[weakref.ref[Any]] = []
    gc.disable()
    try:
        run(engine, component, name, arg, refs=refs)
        for t in host.threads:
            t.join(30)
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


@pytest.mark.parametrize(("name", "message"), [
    ("twice", "task.return called twice"),
    ("never", "exited without calling task.return"),
    ("bad-set", "handle index 99 is not in use"),
    ("bad-code", "unknown code 7"),
    ("drop-busy", "subtask.drop of the call to test:host/api#slow before it returned"),
    ("read-writable", "expected the readable end of a stream"),
    ("read-oob", "stream buffer"),
    ("drop-unwritten", "before a value was written"),
    ("bp-under", "backpressure counter underflow"),
])
def test_rule_breaking_guests_trap(engine: WasmEngine, component: RuntimeComponent, name: str,
                                   message: str) -> None:
    with pytest.raises(Trap, match=message) as info:
        run(engine, component, name, 1)
    assert info.value.kind == "trap"
